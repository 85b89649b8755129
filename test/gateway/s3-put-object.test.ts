/**
 * PutObject outside the SDK's middleware stack (gateway/aws/s3-put-object.ts), against a loopback HTTP server that
 * plays S3: the request is a PUT to the SDK-resolved URL with the key encoded as S3 wants, the metadata headers and
 * the payload hash, and its SigV4 signature checks out under a verifier written here from the SigV4 specification
 * (not the signer that made it). Server errors and SlowDown are retried, client errors are not, errors carry S3's
 * code; clients that add request checksums go through the SDK. (Against moto it runs in the gateway e2e tests,
 * where the Ruby S3 Encryption Client decrypts what was stored.)
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeKeyPath, putObject, putTarget } from '../../gateway/aws/s3-put-object.js';
import { observeErrors } from '../../gateway/aws/signed-request.js';
import { verifySigV4 } from '../support/sigv4.js';

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
let server: Server;
let endpoint: string;
const seen: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: Buffer }> = [];
let answers: Array<{ status: number; body?: string; etag?: string }> = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) });
      const a = answers.shift() ?? { status: 500, body: '<Error><Code>InternalError</Code><Message>no answer scripted</Message></Error>' };
      res.writeHead(a.status, { 'content-type': 'application/xml', ...(a.etag ? { etag: a.etag } : {}) });
      res.end(a.body ?? '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => server.close());

const client = (extra: Record<string, unknown> = {}) =>
  new S3Client({ region: 'eu-west-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: SECRET }, maxAttempts: 1, requestChecksumCalculation: 'WHEN_REQUIRED', ...extra });
const ok = { status: 200, etag: '"abc"' };

describe('putObject', () => {
  it('PUTs the body to the bucket and key with content type, metadata and payload hash, signed as SigV4 says', async () => {
    seen.length = 0;
    answers = [ok];
    const body = Buffer.from('Return-Path: <a@b.example>\r\n\r\nhello\r\n');
    const key = "in/a b/c!'()*+&=é";
    const out = await putObject(client(), { bucket: 'mail-a', key, body, contentType: 'application/octet-stream', metadata: { 'X-Amz-Matdesc': '{"a":"b"}', 'x-amz-iv': 'aXY=' } });
    expect(out).toEqual({ etag: '"abc"' });
    const [req] = seen;
    expect(req!.method).toBe('PUT');
    expect(req!.url).toBe(`/mail-a/${encodeKeyPath(key)}`);
    expect(decodeURIComponent(req!.url.slice('/mail-a/'.length))).toBe(key);
    expect(req!.body.equals(body)).toBe(true);
    expect(req!.headers['content-type']).toBe('application/octet-stream');
    expect(req!.headers['content-length']).toBe(String(body.length));
    expect(req!.headers['x-amz-meta-x-amz-matdesc']).toBe('{"a":"b"}');
    expect(req!.headers['x-amz-meta-x-amz-iv']).toBe('aXY=');
    expect(req!.headers['x-amz-content-sha256']).toBe(createHash('sha256').update(body).digest('hex'));
    expect(String(req!.headers.authorization)).toMatch(/Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/s3\/aws4_request/);
    expect(verifySigV4(req!, SECRET)).toBe(true);
    expect(verifySigV4(req!, 'another secret')).toBe(false);
  });

  it('retries SlowDown and server errors (the body is in memory), then succeeds', async () => {
    seen.length = 0;
    answers = [{ status: 503, body: '<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>' }, { status: 500, body: '<Error><Code>InternalError</Code><Message>oops</Message></Error>' }, ok];
    await putObject(client(), { bucket: 'mail-a', key: 'k1', body: Buffer.from('x'), contentType: 'text/plain' });
    expect(seen).toHaveLength(3);
    expect(seen.every((r) => r.body.toString() === 'x' && verifySigV4(r, SECRET))).toBe(true);
  });

  it('does not retry a client error, names it by S3 code with the status, and reports it', async () => {
    seen.length = 0;
    answers = [{ status: 403, body: '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied &amp; more</Message></Error>' }];
    const s3 = client();
    const reported: string[] = [];
    observeErrors(s3, (op, name) => reported.push(`${op}:${name}`));
    const err = await putObject(s3, { bucket: 'mail-a', key: 'k2', body: Buffer.from('x'), contentType: 'text/plain' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'AccessDenied', message: 'Access Denied & more', $metadata: { httpStatusCode: 403 } });
    expect(seen).toHaveLength(1);
    expect(reported).toEqual(['PutObject:AccessDenied']);
  });

  it('stops when aborted', async () => {
    const ac = new AbortController();
    ac.abort(new Error('shutting down'));
    await expect(putObject(client(), { bucket: 'mail-a', key: 'k3', body: Buffer.from('x'), contentType: 'text/plain', abortSignal: ac.signal })).rejects.toThrow('shutting down');
  });

  it('leaves clients that add request checksums to the SDK (which sends its CRC32)', async () => {
    seen.length = 0;
    answers = [ok];
    await putObject(client({ requestChecksumCalculation: 'WHEN_SUPPORTED' }), { bucket: 'mail-a', key: 'k4', body: Buffer.from('x'), contentType: 'text/plain' });
    expect(seen).toHaveLength(1);
    expect(Object.keys(seen[0]!.headers).some((h) => h.startsWith('x-amz-checksum-') || h === 'x-amz-sdk-checksum-algorithm')).toBe(true);
  });

  it("resolves the bucket's endpoint by the SDK's own rules", async () => {
    const aws = (extra: Record<string, unknown>) => new S3Client({ region: 'eu-west-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, requestChecksumCalculation: 'WHEN_REQUIRED', ...extra });
    expect((await putTarget(aws({}), 'mail-a'))!.url.href).toBe('https://mail-a.s3.eu-west-1.amazonaws.com/');
    // Dots in a bucket name would break the TLS wildcard: path style, as the SDK does.
    expect((await putTarget(aws({}), 'mail.example.com'))!.url.href).toBe('https://s3.eu-west-1.amazonaws.com/mail.example.com');
    expect((await putTarget(aws({ useFipsEndpoint: true, region: 'us-east-1' }), 'mail-a'))!.url.href).toBe('https://mail-a.s3-fips.us-east-1.amazonaws.com/');
    expect((await putTarget(client(), 'mail-a'))!.url.href).toBe(`${endpoint}/mail-a`);
  });
});
