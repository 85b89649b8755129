/**
 * GenerateDataKey outside the SDK's middleware stack (gateway/aws/kms-data-key.ts), against a loopback HTTP server
 * that plays KMS: the request is SigV4-signed JSON 1.1 with the right target and body, server errors and throttling
 * are retried, client errors are not, and errors carry KMS's exception name. (Against moto it runs in the envelope
 * interop tests, where the Ruby S3 Encryption Client decrypts what it encrypted.)
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDataKey, KmsError } from '../../gateway/aws/kms-data-key.js';
import { observeErrors } from '../../gateway/aws/signed-request.js';

let server: Server;
let endpoint: string;
const seen: Array<{ headers: IncomingMessage['headers']; body: string }> = [];
let answers: Array<{ status: number; body: unknown }> = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      seen.push({ headers: req.headers, body });
      const a = answers.shift() ?? { status: 500, body: { __type: 'KMSInternalException', message: 'no answer scripted' } };
      res.writeHead(a.status, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify(a.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => server.close());

const client = () => new KMSClient({ region: 'eu-west-1', endpoint, credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' }, maxAttempts: 1 });
const key = 'arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555';
const ok = { status: 200, body: { KeyId: key, Plaintext: Buffer.alloc(32, 7).toString('base64'), CiphertextBlob: Buffer.from('wrapped').toString('base64') } };

describe('generateDataKey', () => {
  it('sends a signed TrentService.GenerateDataKey for AES_256 with the context, and returns the key', async () => {
    seen.length = 0;
    answers = [ok];
    const out = await generateDataKey(client(), { keyId: key, encryptionContext: { 'aws:ses:message-id': 'm1' } });
    expect(Buffer.from(out.plaintext).equals(Buffer.alloc(32, 7))).toBe(true);
    expect(Buffer.from(out.ciphertextBlob).toString()).toBe('wrapped');
    expect(out.keyId).toBe(key);
    const [req] = seen;
    expect(req!.headers['x-amz-target']).toBe('TrentService.GenerateDataKey');
    expect(req!.headers['content-type']).toBe('application/x-amz-json-1.1');
    expect(req!.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/kms\/aws4_request, SignedHeaders=[^,]*host[^,]*x-amz-target/);
    expect(JSON.parse(req!.body)).toEqual({ KeyId: key, KeySpec: 'AES_256', EncryptionContext: { 'aws:ses:message-id': 'm1' } });
  });

  it('retries throttling and server errors, then succeeds', async () => {
    seen.length = 0;
    answers = [{ status: 400, body: { __type: 'ThrottlingException', message: 'slow down' } }, { status: 500, body: { __type: 'KMSInternalException', message: 'oops' } }, ok];
    const out = await generateDataKey(client(), { keyId: key, encryptionContext: {} });
    expect(out.plaintext.length).toBe(32);
    expect(seen).toHaveLength(3);
  });

  it('does not retry a client error; the error is named by KMS and reported to the observer', async () => {
    seen.length = 0;
    answers = [{ status: 400, body: { __type: 'com.amazonaws.kms#NotFoundException', message: `Key '${key}' does not exist` } }];
    const kms = client();
    const reported: string[] = [];
    observeErrors(kms, (op, name) => reported.push(`${op}/${name}`));
    const err = await generateDataKey(kms, { keyId: key, encryptionContext: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KmsError);
    expect((err as KmsError).name).toBe('NotFoundException');
    expect((err as KmsError).message).toContain('does not exist');
    expect((err as KmsError).$metadata.httpStatusCode).toBe(400);
    expect(seen).toHaveLength(1);
    expect(reported).toEqual(['GenerateDataKey/NotFoundException']);
  });

  it('gives up after three attempts at a failing server', async () => {
    seen.length = 0;
    answers = [];
    const err = (await generateDataKey(client(), { keyId: key, encryptionContext: {} }).catch((e: unknown) => e)) as KmsError;
    expect(err.name).toBe('KMSInternalException');
    expect(seen).toHaveLength(3);
  });
});
