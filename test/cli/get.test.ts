/** `mailroom get` against moto, configured only through the environment conventions every command uses. */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptionFor } from '../../gateway/store/put-message.js';
import { newMessageId } from '../../shared/ses/message-id.js';
import { objectKey } from '../../shared/ses/object-key.js';
import { putMessage } from '../../gateway/store/put-message.js';
import { tempDir } from '../support/files.js';
import { startMoto, type Moto } from '../support/moto.js';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '..', '..', 'bin', 'mailroom.js');
const BUCKET = 'get-bucket';
const MESSAGE = Buffer.from('Return-Path: <a@example.com>\r\nSubject: hi\r\n\r\nbody\r\n.. dot-stuffed? no: stored as received\r\n');

let moto: Moto;
let s3: S3Client;
let kms: KMSClient;
let keyArn: string;
let dir: Awaited<ReturnType<typeof tempDir>>;
let env: NodeJS.ProcessEnv;

async function cli(...args: string[]) {
  return run('node', [CLI, 'get', ...args], { env, encoding: 'buffer', timeout: 60_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr.toString() }),
    (e: { code: number; stdout: Buffer; stderr: Buffer }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr.toString() }),
  );
}

beforeAll(async () => {
  moto = await startMoto();
  const cfg = { region: 'us-east-1', endpoint: moto.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } };
  s3 = new S3Client({ ...cfg, forcePathStyle: true });
  kms = new KMSClient(cfg);
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  keyArn = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;
  dir = await tempDir();
  // Only the documented variables: no profile, the endpoint for every service, credentials from the chain (env).
  // The SDK's Node-version notice setting passes through (vitest.config.ts turns the notice off on Node < 22).
  env = { PATH: process.env.PATH, HOME: dir.path, AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL: moto.endpoint, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED };
});

afterAll(async () => {
  await moto?.stop();
  await dir?.remove();
});

async function putEncrypted(): Promise<string> {
  const id = newMessageId();
  const key = objectKey('inbound', id);
  await putMessage({ s3, bucket: BUCKET, key, body: Readable.from([MESSAGE]), length: MESSAGE.length, encryption: { kms, context: { messageId: id, ruleName: 'r1', accountId: '123456789012', kmsKeyArn: keyArn } } });
  return key;
}

describe('mailroom get', () => {
  it('decrypts an SES-encrypted message to a file and to stdout', async () => {
    const key = await putEncrypted();
    const out = join(dir.path, 'msg.eml');
    const r = await cli(`s3://${BUCKET}/${key}`, '-o', out);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(readFileSync(out).equals(MESSAGE)).toBe(true);
    const s = await cli(`s3://${BUCKET}/${key}`);
    expect(s.code).toBe(0);
    expect(s.stdout.equals(MESSAGE)).toBe(true);
  });

  it('passes an unencrypted message through unchanged', async () => {
    const key = `plain/${newMessageId()}`;
    await putMessage({ s3, bucket: BUCKET, key, body: Readable.from([MESSAGE]), length: MESSAGE.length });
    const s = await cli(`s3://${BUCKET}/${key}`);
    expect(s.code).toBe(0);
    expect(s.stdout.equals(MESSAGE)).toBe(true);
  });

  it('refuses a tampered object with exit 1 and leaves no output file', async () => {
    const key = await putEncrypted();
    const obj = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    const body = Buffer.from(await obj.Body!.transformToByteArray());
    body[3]! ^= 1;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${key}-bad`, Body: body, Metadata: obj.Metadata! }));
    const out = join(dir.path, 'bad.eml');
    const r = await cli(`s3://${BUCKET}/${key}-bad`, '-o', out);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('mailroom get: message authentication failed: the ciphertext or its tag was altered (or the IV/data key does not belong to it); discard any output\n');
    expect(existsSync(out)).toBe(false);
    expect(statSync(dir.path).isDirectory()).toBe(true);
  });

  it('says clearly when the object does not exist', async () => {
    const r = await cli(`s3://${BUCKET}/inbound/nope`);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`mailroom get: s3://${BUCKET}/inbound/nope does not exist (check the bucket, the object key prefix and the message id)\n`);
  });

  it('rejects a malformed URL with usage, exit 2', async () => {
    const r = await cli('https://example.com/x');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('"https://example.com/x" is not an S3 URL; write it as s3://<bucket>/<key>');
  });
});

describe('the encrypting stream holds the length it declared', () => {
  it('fails when the body is longer or shorter than declared', async () => {
    const ctx = { messageId: newMessageId(), ruleName: 'r1', accountId: '123456789012', kmsKeyArn: keyArn };
    const short = (await encryptionFor({ kms, context: ctx }, 10)).createCipherStream();
    await expect(Readable.from([Buffer.alloc(5)]).pipe(short).toArray()).rejects.toThrow('message is 5 bytes, not the 10 declared in x-amz-unencrypted-content-length');
    const long = (await encryptionFor({ kms, context: ctx }, 3)).createCipherStream();
    await expect(Readable.from([Buffer.alloc(5)]).pipe(long).toArray()).rejects.toThrow('message is longer than the 3 bytes declared in x-amz-unencrypted-content-length');
  });
  it('is single-use: a second stream would reuse the IV', async () => {
    const enc = await encryptionFor({ kms, context: { messageId: newMessageId(), ruleName: 'r1', accountId: '123456789012', kmsKeyArn: keyArn } }, 1);
    enc.createCipherStream();
    expect(() => enc.createCipherStream()).toThrow('this encryption was already used');
  });
});
