/**
 * "Is this object there already?" — the HEAD replay sends per rule's key (gateway/aws/s3-head-object.ts, one signed
 * request outside the SDK's middleware stack) and what replay makes of the answers (gateway/replay/bucket-check.ts),
 * against a loopback server that plays S3: a HEAD of the SDK-resolved path with the key encoded as S3 wants, the
 * empty payload's hash, a signature that checks out under a verifier written from the SigV4 specification; 200 and
 * 404 are answers, 403 is "cannot tell" (said once, the bucket not asked again), server errors are retried.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { objectExists } from '../../gateway/aws/s3-head-object.js';
import { encodeKeyPath } from '../../gateway/aws/s3-put-object.js';
import { BucketCheck } from '../../gateway/replay/bucket-check.js';
import { verifySigV4 } from '../support/sigv4.js';

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
let server: Server;
let endpoint: string;
const seen: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }> = [];
let answers: number[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers });
      res.writeHead(answers.shift() ?? 500, { 'x-amz-request-id': 'test' });
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => server.close());

const client = () => new S3Client({ region: 'eu-west-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: SECRET }, maxAttempts: 1, requestChecksumCalculation: 'WHEN_REQUIRED' });

describe('objectExists', () => {
  it('HEADs the key, signed as SigV4 says: 200 is there, 404 is not', async () => {
    seen.length = 0;
    answers = [200, 404];
    const s3 = client();
    const key = "replayed/a b/c!'()*+&=é";
    expect(await objectExists(s3, 'mail-a', key)).toBe(true);
    expect(await objectExists(s3, 'mail-a', key)).toBe(false);
    for (const req of seen) {
      expect(req.method).toBe('HEAD');
      expect(req.url).toBe(`/mail-a/${encodeKeyPath(key)}`);
      expect(req.headers['x-amz-content-sha256']).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
      expect(verifySigV4(req, SECRET)).toBe(true);
    }
    s3.destroy();
  });

  it('retries a server error; a refusal is thrown with its status', async () => {
    seen.length = 0;
    answers = [503, 200, 403];
    const s3 = client();
    expect(await objectExists(s3, 'mail-a', 'k')).toBe(true);
    expect(seen).toHaveLength(2);
    const err = await objectExists(s3, 'mail-a', 'k').catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'Forbidden', $metadata: { httpStatusCode: 403 } });
    s3.destroy();
  });
});

describe('BucketCheck', () => {
  it('present, absent, and for a bucket that refuses HEAD: unknown, said once, not asked again', async () => {
    seen.length = 0;
    answers = [200, 404, 403];
    const s3 = client();
    const refused: string[] = [];
    const check = new BucketCheck(() => s3, (bucket, why) => refused.push(`${bucket}: ${why}`));
    expect(await check.presence('mail-a', 'eu-west-1', 'x/1')).toBe('present');
    expect(await check.presence('mail-a', 'eu-west-1', 'x/2')).toBe('absent');
    expect(await check.presence('mail-b', 'eu-west-1', 'x/3')).toBe('unknown');
    expect(await check.presence('mail-b', 'eu-west-1', 'x/4')).toBe('unknown');
    expect(seen).toHaveLength(3);
    expect(refused).toEqual(['mail-b: HEAD of s3://mail-b/x/3 was refused (403 Forbidden)']);
    s3.destroy();
  });
});
