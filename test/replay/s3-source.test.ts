/**
 * `s3://` replay sources against a real S3 and KMS API (moto): objects in SES's format written by the project's own
 * code (as the gateway writes them, plain and encrypted, single PUT and multipart) and by AWS's official S3
 * Encryption Client (Ruby, kms+context, as a v2 client writes). Each gives back exactly the original DATA with the
 * stored header block read off; each bad object is reported under its key and nothing else is affected.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReplayProblem } from '../../gateway/replay/source.js';
import { openSource } from '../../gateway/replay/sources.js';
import { buildHeaderBlock, type HeaderBlockInput } from '../../shared/ses/header-block.js';
import { newMessageId } from '../../shared/ses/message-id.js';
import { objectKey } from '../../shared/ses/object-key.js';
import { putMessage } from '../../gateway/store/put-message.js';
import { tempDir } from '../support/files.js';
import { startMoto, type Moto } from '../support/moto.js';
import { readSource, sourceOptions } from './helpers.js';

const run = promisify(execFile);
const RUBY_SCRIPT = join(import.meta.dirname, '..', 'interop', 's3ec.rb');
const REGION = 'us-east-1';
const ACCOUNT = '123456789012';
const BUCKET = 'replay-source';
const PREFIX = 'inbound';

let moto: Moto;
let s3: S3Client;
let kms: KMSClient;
let keyArn: string;
let dir: Awaited<ReturnType<typeof tempDir>>;

interface Stored {
  key: string;
  data: Buffer;
  block: HeaderBlockInput;
}
const stored = new Map<string, Stored>();

function blockInput(messageId: string, over: Partial<HeaderBlockInput> = {}): HeaderBlockInput {
  return {
    mailFrom: 'alice@sender.example',
    helo: 'mail.sender.example',
    clientIp: '192.0.2.10',
    clientHostname: 'mail.sender.example',
    byHost: 'mx1.gateway.example',
    messageId,
    recipients: ['support@example.com', 'sales@example.com'],
    receivedAt: new Date('2024-10-04T08:09:10Z'),
    ...over,
  };
}

function message(subject: string, body: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from(`From: Alice <alice@sender.example>\r\nTo: support@example.com\r\nSubject: ${subject}\r\n\r\n`), Buffer.from(body)]);
}

async function projectPut(name: string, data: Buffer, options: { encrypted: boolean; block?: Partial<HeaderBlockInput>; extraBlock?: string }) {
  const id = newMessageId();
  const key = objectKey(PREFIX, id);
  const block = blockInput(id, options.block);
  const plain = Buffer.concat([Buffer.from(buildHeaderBlock(block) + (options.extraBlock ?? '')), data]);
  await putMessage({
    s3,
    bucket: BUCKET,
    key,
    body: plain,
    length: plain.length,
    ...(options.encrypted ? { encryption: { kms, context: { messageId: id, ruleName: 'inbox', accountId: ACCOUNT, kmsKeyArn: keyArn } } } : {}),
  });
  stored.set(name, { key, data, block });
}

/** SES's own block: the gateway's fields plus SPF, authentication results and the two fields SES signs. */
const SES_SIGNED =
  'X-SES-RECEIPT: AEFBQUFBQUFBQUFITUxhd0lKNWNhY2Ni\r\nX-SES-DKIM-SIGNATURE: a=rsa-sha256; q=dns/txt; b=IlBDYhfKzN4Ly4=; c=relaxed/simple; s=224i4yxa5dv7c2xz3womw6peuasteono; d=amazonses.com; t=1597434585; v=1; bh=EHhulQ4FeXWlglHhsEJHZvmTi6Mua7yQbb2zgjT/kA4=; h=From:To:Cc:Bcc:Subject:Date:Message-ID:MIME-Version:Content-Type:X-SES-RECEIPT;\r\n';

beforeAll(async () => {
  moto = await startMoto();
  const cfg = { region: REGION, endpoint: moto.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } };
  s3 = new S3Client({ ...cfg, forcePathStyle: true });
  kms = new KMSClient(cfg);
  dir = await tempDir();
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  keyArn = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!;

  await projectPut('plain', message('plain, 8-bit', Buffer.from('Grüße\r\nFrom the gateway\r\n', 'utf8')), { encrypted: false, block: { scan: { spam: 'GRAY', virus: 'GRAY' } } });
  await projectPut('encrypted', message('encrypted', 'body\r\n'), { encrypted: true, block: { mailFrom: '' } });
  // Stored verbatim by the gateway (bare LF, no final line end): replayed verbatim, not "repaired".
  await projectPut('verbatim', Buffer.from('From: x@sender.example\nTo: support@example.com\n\nbare LF\nno final line end'), { encrypted: true });
  await projectPut('big', message('multipart upload', randomBytes(6 * 1024 * 1024).toString('base64').replace(/.{76}/g, '$&\r\n')), { encrypted: true });

  // By SES's own hand, as far as it can be imitated: its block with the signed fields, encrypted by the official client.
  const sesId = newMessageId();
  const sesBlock = blockInput(sesId, {
    byHost: 'inbound-smtp.us-east-1.amazonaws.com',
    clientIp: '2001:db8::25',
    spf: { result: 'pass', domain: 'sender.example' },
    dkim: [{ result: 'pass', domain: 'sender.example' }],
    dmarc: { result: 'pass', headerFrom: 'sender.example' },
    scan: { spam: 'PASS', virus: 'PASS' },
  });
  const sesData = Buffer.from('Return-Path: <bounce@lists.sender.example>\r\nReceived: by mail.sender.example; Fri, 4 Oct 2024 08:09:09 +0000\r\nFrom: a@sender.example\r\nTo: support@example.com\r\nSubject: via SES\r\n\r\nhello\r\n');
  const file = join(dir.path, 'ses-object');
  writeFileSync(file, Buffer.concat([Buffer.from(buildHeaderBlock(sesBlock) + SES_SIGNED), sesData]));
  const sesKey = objectKey(PREFIX, sesId);
  try {
    await run('ruby', [RUBY_SCRIPT, 'put', moto.endpoint, REGION, BUCKET, sesKey, file, keyArn], { env: { ...process.env, ...moto.env }, timeout: 120_000 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('ruby is not installed: apt-get install ruby-aws-sdk-s3 ruby-aws-sdk-kms');
    throw new Error(`the Ruby S3 Encryption Client failed: ${(err as { stderr?: string }).stderr ?? err}`);
  }
  stored.set('ruby', { key: sesKey, data: sesData, block: sesBlock });

  // Not SES's format: a bare message someone put there.
  const bareKey = `${PREFIX}/exported.eml`;
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: bareKey, Body: message('bare', 'x\r\n') }));
  stored.set('bare', { key: bareKey, data: Buffer.alloc(0), block: blockInput('') });
  // Tampered: one ciphertext byte of the encrypted object flipped, metadata kept.
  const good = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: stored.get('encrypted')!.key }));
  const body = Buffer.from(await good.Body!.transformToByteArray());
  body[body.length - 40]! ^= 1;
  const tamperedKey = `${PREFIX}/${newMessageId()}`;
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: tamperedKey, Body: body, Metadata: good.Metadata! }));
  stored.set('tampered', { key: tamperedKey, data: Buffer.alloc(0), block: blockInput('') });
  // SES's test write when a rule is created: no message.
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}/AMAZON_SES_SETUP_NOTIFICATION`, Body: 'Amazon SES setup notification' }));
}, 180_000);

afterAll(async () => {
  await moto?.stop();
  await dir?.remove();
});

const aws = () => ({ s3, kmsFor: () => kms });
const read = (arg: string) => readSource(openSource(arg, sourceOptions({ aws })));

describe('s3:// source', () => {
  it('gives back every stored message exactly, its header block read off, whoever wrote and encrypted it', async () => {
    const got = await read(`s3://${BUCKET}/${PREFIX}/`);
    const listing = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${PREFIX}/` }));
    const etags = new Map(listing.Contents!.map((o) => [o.Key!, o.ETag!]));
    for (const name of ['plain', 'encrypted', 'verbatim', 'big', 'ruby']) {
      const s = stored.get(name)!;
      const m = got.messages.find((x) => x.location === `s3://${BUCKET}/${s.key}`);
      expect(m, name).toBeDefined();
      expect(m!.data.equals(s.data), name).toBe(true);
      expect(m!.prepared.dataLength, name).toBe(s.data.length);
      expect(m!.prepared.identity).toBe(`s3://${BUCKET}/${s.key}`);
      expect(m!.prepared.contentTag).toBe(`etag:${etags.get(s.key)}`);
      const block = m!.prepared.hints.storedBlock!;
      expect(block).toMatchObject({ mailFrom: s.block.mailFrom, recipient: 'support@example.com', messageId: s.block.messageId, byHost: s.block.byHost });
      expect(m!.prepared.times[0]).toEqual({ at: new Date('2024-10-04T08:09:10Z'), from: 'Received (SES header block)' });
    }
    expect(got.messages.find((x) => x.location.endsWith(stored.get('ruby')!.key))!.prepared.hints.storedBlock!.signedBySes).toBe(true);
    expect(got.messages.find((x) => x.location.endsWith(stored.get('big')!.key))!.data.length).toBeGreaterThan(5 * 1024 * 1024);
  });

  it('reports an object not in SES format and a tampered one under their keys, and skips the setup object', async () => {
    const got = await read(`s3://${BUCKET}/${PREFIX}/`);
    const problems = got.problems.map((p) => [p.kind, p.location, p.reason]);
    expect(problems).toContainEqual(['malformed', `s3://${BUCKET}/${stored.get('bare')!.key}`, expect.stringMatching(/^is not a message stored by SES or the gateway: it does not begin with a Return-Path field/)]);
    expect(problems).toContainEqual(['malformed', `s3://${BUCKET}/${stored.get('tampered')!.key}`, expect.stringMatching(/^is tampered or damaged: message authentication failed/)]);
    expect(got.problems).toHaveLength(2);
    expect(got.messages).toHaveLength(5);
    expect(got.notes.map((n) => n.text)).toEqual([expect.stringMatching(/^1 SES setup notification object/)]);
  });

  it('a tampered object fails only when its end is read: the body errors before it ends', async () => {
    for await (const item of openSource(`s3://${BUCKET}/${stored.get('tampered')!.key}`, sourceOptions({ aws }))) {
      if (item instanceof ReplayProblem || !('prepare' in item)) throw new Error('expected one object');
      const m = await item.prepare();
      let bytes = 0;
      const outcome = await new Promise<unknown>((resolve) => {
        const body = m.body();
        body.on('data', (c: Buffer) => (bytes += c.length));
        body.on('error', resolve);
        body.on('end', () => resolve('ended'));
      });
      expect(outcome).toBeInstanceOf(ReplayProblem);
      expect(bytes).toBeGreaterThan(0); // bytes went out first: whoever stores them must drop them on the error
    }
  });

  it('an object rewritten between the listing and its read is reported, not replayed under the old version\'s id', async () => {
    const key = `${PREFIX}-changing/${newMessageId()}`;
    const plain = (text: string) => Buffer.concat([Buffer.from(buildHeaderBlock(blockInput(key.split('/')[1]!))), message(text, 'x\r\n')]);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: plain('first') }));
    for await (const item of openSource(`s3://${BUCKET}/${PREFIX}-changing/`, sourceOptions({ aws }))) {
      if (item instanceof ReplayProblem || !('prepare' in item)) throw new Error('expected one object');
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: plain('second') }));
      const err = await item.prepare().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ReplayProblem);
      expect((err as ReplayProblem).reason).toBe('changed since it was listed (another ETag): run the replay again');
    }
  });

  it('mailroom replay s3://… --dry-run --json, configured through the environment as every command is', async () => {
    const config = join(dir.path, 'mailroom.json');
    writeFileSync(config, JSON.stringify({ region: REGION, accountId: ACCOUNT, ruleSetName: 'replay', rules: [{ name: 'archive', recipients: ['example.com'], s3Action: { bucketName: 'archive', objectKeyPrefix: 'replayed' } }] }));
    const env = { PATH: process.env.PATH, HOME: dir.path, ...moto.env };
    const cli = join(import.meta.dirname, '..', '..', 'bin', 'mailroom.js');
    const r = await run('node', [cli, 'replay', `s3://${BUCKET}/${PREFIX}/`, '--config', config, '--dry-run', '--json'], { env, timeout: 60_000 }).then(
      (x) => ({ code: 0, stdout: x.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    );
    expect(r.code).toBe(1);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.at(-1)).toMatchObject({ type: 'summary', stored: 5, malformed: 2 });
    const ruby = events.find((e) => e.location === `s3://${BUCKET}/${stored.get('ruby')!.key}`)!;
    expect(ruby).toMatchObject({ mailFrom: 'alice@sender.example', recipients: ['support@example.com'], timestamp: '2024-10-04T08:09:10.000Z', timestampSource: 'Received (SES header block)', dataLength: stored.get('ruby')!.data.length });
    expect(ruby.rules).toEqual([{ rule: 'archive', bucket: 'archive', key: `replayed/${String(ruby.messageId)}` }]);
    expect(ruby.messageId).not.toBe(stored.get('ruby')!.block.messageId); // a new id: the old one names the old object
  });

  it('a bucket that does not exist, and a prefix with nothing under it, are reported', async () => {
    expect((await read('s3://no-such-bucket/x/')).problems.map((p) => [p.kind, p.location, p.reason])).toEqual([['failed', 's3://no-such-bucket/x/', expect.stringMatching(/^cannot be listed: /)]]);
    expect((await read(`s3://${BUCKET}/nothing-here/`)).problems.map((p) => [p.kind, p.reason])).toEqual([['failed', 'holds no objects: check the bucket and the object key prefix']]);
  });
});
