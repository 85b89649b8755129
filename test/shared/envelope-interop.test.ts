/**
 * The S3 Encryption Client envelope against the official client, both directions, through a real S3+KMS API
 * (moto_server). The Ruby EncryptionV2 client is the oracle: if it reads what we write, so do SES's consumers.
 */
import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CreateAliasCommand, CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvelopeError, copyStoredMessage, openStoredMessage } from '../../shared/envelope/index.js';
import { newMessageId } from '../../shared/ses/message-id.js';
import { putMessage } from '../../gateway/store/put-message.js';
import { randomFile, sha256File, tempDir } from '../support/files.js';
import { startMoto, type Moto } from '../support/moto.js';

const run = promisify(execFile);
const RUBY_SCRIPT = join(import.meta.dirname, '..', 'interop', 's3ec.rb');
const REGION = 'us-east-1';
const ACCOUNT = '123456789012';
const BUCKET = 'interop-bucket';
const MB = 1024 * 1024;
const SIZES: Array<[string, number]> = [
  ['empty', 0],
  ['1 KB', 1024],
  ['12 MB (multipart)', 12 * MB],
  ['40 MB', 40 * MB],
];

let moto: Moto;
let s3: S3Client;
let kms: KMSClient;
let dir: { path: string; remove: () => Promise<void> };
let customerKeyArn: string;
let sesManagedKeyArn: string;
const inputs = new Map<number, { path: string; sha: string }>();

async function ruby(...args: string[]): Promise<{ ok: boolean; stderr: string }> {
  try {
    await run('ruby', [RUBY_SCRIPT, ...args], { env: { ...process.env, ...moto.env }, timeout: 120_000, maxBuffer: 1 << 20 });
    return { ok: true, stderr: '' };
  } catch (err) {
    const e = err as { code?: unknown; stderr?: string };
    if (e.code === 'ENOENT') throw new Error('ruby is not installed: apt-get install ruby-aws-sdk-s3 ruby-aws-sdk-kms');
    return { ok: false, stderr: e.stderr ?? String(err) };
  }
}

async function projectGet(key: string, out: string): Promise<void> {
  const msg = await openStoredMessage(s3, () => kms, BUCKET, key);
  await copyStoredMessage(msg, createWriteStream(out));
}

async function projectPut(key: string, file: string, kmsKeyArn: string, ruleName = 'interop-rule') {
  const messageId = key.split('/').pop()!;
  return putMessage({
    s3,
    bucket: BUCKET,
    key,
    body: createReadStream(file),
    length: statSync(file).size,
    encryption: { kms, context: { messageId, ruleName, accountId: ACCOUNT, kmsKeyArn } },
    // The default tuning: SES's own choice of when to go multipart is part of the object (its ETag).
  });
}

beforeAll(async () => {
  moto = await startMoto();
  const clientCfg = { region: REGION, endpoint: moto.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } };
  s3 = new S3Client({ ...clientCfg, forcePathStyle: true });
  kms = new KMSClient(clientCfg);
  dir = await tempDir();
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  customerKeyArn = (await kms.send(new CreateKeyCommand({ Description: 'customer key' }))).KeyMetadata!.Arn!;
  // moto has no AWS-managed alias/aws/ses until one is made; in AWS it exists in every account.
  const managed = (await kms.send(new CreateKeyCommand({ Description: 'stands in for the AWS-managed SES key' }))).KeyMetadata!;
  await kms.send(new CreateAliasCommand({ AliasName: 'alias/aws/ses', TargetKeyId: managed.KeyId! }));
  sesManagedKeyArn = `arn:aws:kms:${REGION}:${ACCOUNT}:alias/aws/ses`;
  for (const [, size] of SIZES) {
    const path = join(dir.path, `in-${size}`);
    await randomFile(path, size);
    inputs.set(size, { path, sha: await sha256File(path) });
  }
}, 180_000);

afterAll(async () => {
  await moto?.stop();
  await dir?.remove();
});

describe('project writes, official S3 Encryption Client reads', () => {
  for (const keyKind of ['customer key', 'alias/aws/ses'] as const) {
    for (const [label, size] of SIZES) {
      it(`${label}, ${keyKind}`, async () => {
        const keyArn = keyKind === 'customer key' ? customerKeyArn : sesManagedKeyArn;
        const key = `inbound/${newMessageId()}`;
        const input = inputs.get(size)!;
        const res = await projectPut(key, input.path, keyArn);
        // SES uploads messages of 5 MB and more in parts (docs/ses-format.md#multipart-upload): 5 MiB parts, so a multipart ETag's part count.
        const stored = size + 16;
        expect(res.multipart).toBe(stored >= 5 * MB);
        expect(res.etag).toMatch(stored >= 5 * MB ? new RegExp(`^"[0-9a-f]{32}-${Math.ceil(stored / (5 * MB))}"$`) : /^"[0-9a-f]{32}"$/);

        // The object is exactly what SES writes: seven metadata entries, legacy kms wrap, sorted compact matdesc.
        const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
        expect(head.ContentLength).toBe(size + 16);
        expect(Object.keys(head.Metadata!).sort()).toEqual([
          'x-amz-cek-alg', 'x-amz-iv', 'x-amz-key-v2', 'x-amz-matdesc', 'x-amz-tag-len', 'x-amz-unencrypted-content-length', 'x-amz-wrap-alg',
        ]);
        expect(head.Metadata!['x-amz-wrap-alg']).toBe('kms');
        expect(head.Metadata!['x-amz-cek-alg']).toBe('AES/GCM/NoPadding');
        expect(head.Metadata!['x-amz-tag-len']).toBe('128');
        expect(head.Metadata!['x-amz-unencrypted-content-length']).toBe(String(size));
        expect(Buffer.from(head.Metadata!['x-amz-iv']!, 'base64')).toHaveLength(12);
        expect(head.Metadata!['x-amz-matdesc']).toBe(
          `{"aws:ses:message-id":"${key.split('/')[1]}","aws:ses:rule-name":"interop-rule","aws:ses:source-account":"${ACCOUNT}","kms_cmk_id":"${keyArn}"}`,
        );

        const viaRuby = join(dir.path, `ruby-out-${size}-${keyKind.length}`);
        const r = await ruby('get', moto.endpoint, REGION, BUCKET, key, viaRuby);
        expect(r.stderr).toBe('');
        expect(await sha256File(viaRuby)).toBe(input.sha);

        const viaProject = join(dir.path, `proj-out-${size}-${keyKind.length}`);
        await projectGet(key, viaProject);
        expect(await sha256File(viaProject)).toBe(input.sha);
      });
    }
  }
});

describe('official S3 Encryption Client writes (kms+context), project reads', () => {
  for (const [label, size] of SIZES) {
    it(`${label}, customer key`, async () => {
      const key = `from-ruby/${size}`;
      const input = inputs.get(size)!;
      const w = await ruby('put', moto.endpoint, REGION, BUCKET, key, input.path, customerKeyArn);
      expect(w.stderr).toBe('');
      const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
      expect(head.Metadata!['x-amz-wrap-alg']).toBe('kms+context');
      const out = join(dir.path, `from-ruby-${size}`);
      await projectGet(key, out);
      expect(await sha256File(out)).toBe(input.sha);
    });
  }
  it('1 KB, alias/aws/ses', async () => {
    const key = 'from-ruby/alias';
    const input = inputs.get(1024)!;
    expect((await ruby('put', moto.endpoint, REGION, BUCKET, key, input.path, 'alias/aws/ses')).stderr).toBe('');
    const out = join(dir.path, 'from-ruby-alias');
    await projectGet(key, out);
    expect(await sha256File(out)).toBe(input.sha);
  });
});

describe('tampering is refused by both', () => {
  /** Re-writes an object with an altered body or metadata, as an attacker with s3:PutObject could. */
  async function tamper(key: string, edit: { body?: (b: Buffer) => Buffer; metadata?: (m: Record<string, string>) => void }) {
    const obj = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    let body: Buffer = Buffer.from(await obj.Body!.transformToByteArray());
    const metadata = { ...obj.Metadata! };
    if (edit.body) body = edit.body(body);
    edit.metadata?.(metadata);
    const bad = `${key}-tampered`;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: bad, Body: body, Metadata: metadata }));
    return bad;
  }

  async function expectRefused(key: string, code: EnvelopeError['code']) {
    const out = join(dir.path, `tampered-${Math.random()}`);
    const err = await projectGet(key, out).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(EnvelopeError);
    expect((err as EnvelopeError).code).toBe(code);
    const r = await ruby('get', moto.endpoint, REGION, BUCKET, key, `${out}.ruby`);
    expect(r.ok).toBe(false);
    return err as EnvelopeError;
  }

  let key: string;
  beforeAll(async () => {
    key = `inbound/${newMessageId()}`;
    await projectPut(key, inputs.get(1024)!.path, customerKeyArn);
  });

  it('a flipped ciphertext byte', async () => {
    const bad = await tamper(key, { body: (b) => (b[100]! ^= 1, b) });
    const err = await expectRefused(bad, 'authentication-failed');
    expect(err.message).toMatch(/ciphertext or its tag was altered/);
  });

  it('a flipped tag byte', async () => {
    const bad = await tamper(key, { body: (b) => (b[b.length - 1]! ^= 0x80, b) });
    await expectRefused(bad, 'authentication-failed');
  });

  it('an edited matdesc (another message id)', async () => {
    const bad = await tamper(key, {
      metadata: (m) => {
        m['x-amz-matdesc'] = m['x-amz-matdesc']!.replace(/"aws:ses:message-id":"[^"]+"/, `"aws:ses:message-id":"${newMessageId()}"`);
      },
    });
    const err = await expectRefused(bad, 'kms-refused');
    expect(err.message).toMatch(/x-amz-matdesc or x-amz-key-v2 was altered/);
  });
});
