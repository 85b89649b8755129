/**
 * `mailroom replay` storing, through the real path and as an operator runs it (the CLI, spawned): source → replay
 * spool → Redis jobs → workers → S3 with the SES envelope under KMS (moto) → SNS → SQS. Archives written by Python's
 * `mailbox` module; SES objects written by AWS's official S3 Encryption Client (Ruby). What lands must be what SES
 * (or the gateway) would have written: the source's DATA with CRLF line ends behind one header block, the
 * notification the shared builder makes — and only once per source message, whatever is run again or killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HeadObjectCommand, PutObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DELIVERIES_QUEUE, deliveryBatch, type DeliveryJobData } from '../../gateway/queue/jobs.js';
import { putMessage } from '../../gateway/store/put-message.js';
import { buildReceivedNotification, type ReceivedNotification } from '../../shared/notification/index.js';
import { buildHeaderBlock, type HeaderBlockInput } from '../../shared/ses/header-block.js';
import { newMessageId } from '../../shared/ses/message-id.js';
import { objectKey } from '../../shared/ses/object-key.js';
import { ACCOUNT, createBuckets, createKey, createTopicWithQueue, listKeys, receiveSns, REGION, run, RUBY_SCRIPT, startBackends, storedBytes, waitFor, type Backends } from '../gateway/helpers.js';
import { writeArchives, type Archives } from './helpers.js';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'mailroom.js');
const HOST = 'replay.gateway.test';
const PREFIX = 'replay-store';

let b: Backends;
let a: Archives;
let keyA: string;
let keyB: string;
let inbox: { topicArn: string; queueUrl: string };
let moved: { topicArn: string; queueUrl: string };
let config: string;
/** An mbox of many messages (Python's mailbox), for the runs that are stopped half way. */
let many: string;
const MANY = 240;

interface SesObject {
  key: string;
  data: Buffer;
  block: HeaderBlockInput;
}
const sesObjects: SesObject[] = [];

function configInput(over: { maxMessageSize?: number; prefix?: string; spoolDir?: string } = {}) {
  return {
    region: REGION,
    accountId: ACCOUNT,
    ruleSetName: 'replay-store',
    ...(over.maxMessageSize ? { maxMessageSize: over.maxMessageSize } : {}),
    rules: [
      { name: 'inbox', recipients: ['example.com'], scanEnabled: true, s3Action: { bucketName: 'replayed', objectKeyPrefix: over.prefix ?? 'inbox', kmsKeyArn: keyA, topicArn: inbox.topicArn } },
      { name: 'moved', recipients: ['moved.example'], s3Action: { bucketName: 'moved', objectKeyPrefix: 'from-ses/', kmsKeyArn: keyB, topicArn: moved.topicArn } },
    ],
    gateway: {
      hostname: HOST,
      spoolDir: over.spoolDir ?? join(b.dir.path, 'gateway-spool'),
      redis: { url: b.redis.url, prefix: PREFIX },
      // A replay killed mid-delivery leaves jobs that the next run takes over once their lock runs out.
      worker: { lockDurationMs: 3_000, stalledIntervalMs: 1_000, keepCompleted: 100_000, backoffBaseMs: 200, backoffMaxMs: 1_000, shutdownTimeoutMs: 5_000 },
    },
  };
}

async function writeConfig(name: string, over: Parameters<typeof configInput>[0] = {}): Promise<string> {
  const path = join(b.dir.path, `${name}.json`);
  await writeFile(path, JSON.stringify(configInput(over)));
  return path;
}

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** --json lines. */
  events: Array<Record<string, unknown>>;
}

function start(command: string, args: string[], input?: Buffer): { child: ChildProcess; done: Promise<Result> } {
  const env: NodeJS.ProcessEnv = { ...process.env, ...b.moto.env, MAILROOM_CONFIG: '', LOG_LEVEL: '' };
  for (const k of ['AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL_KMS', 'AWS_ENDPOINT_URL_SNS', 'AWS_PROFILE', 'MAILROOM_SPOOL_DIR', 'MAILROOM_NODE_ID', 'REDIS_URL']) delete env[k];
  const child = spawn(process.execPath, [CLI, command, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin!.end(input);
  const kill = setTimeout(() => child.kill('SIGKILL'), 150_000);
  const done = new Promise<Result>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(kill);
      const events = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code, signal, stdout, stderr, events });
    }),
  );
  return { child, done };
}

const replay = (args: string[], input?: Buffer) => start('replay', args, input).done;
const ofType = (r: Result, type: string) => r.events.filter((e) => e.type === type);
const summary = (r: Result) => r.events.find((e) => e.type === 'summary')!;

interface MessageEvent {
  location: string;
  messageId: string;
  mailFrom: string;
  recipients: string[];
  timestamp: string | null;
  client: { ip: string; hostname?: string; helo: string } | null;
  rules: Array<{ rule: string; bucket: string; key: string }>;
}

/** Every SNS envelope the queue holds now and gets within `quietMs` more. */
async function drainQueue(queueUrl: string, quietMs = 2_000): Promise<ReceivedNotification[]> {
  const out: ReceivedNotification[] = [];
  for (;;) {
    const got = await receiveSns(b.aws, queueUrl, 1_000, quietMs);
    out.push(...got.map((e) => JSON.parse(e.Message) as ReceivedNotification));
    if (got.length === 0) return out;
  }
}

beforeAll(async () => {
  b = await startBackends('mailroom-replay-store-');
  a = await writeArchives(b.dir.path);
  await createBuckets(b.aws, 'replayed', 'moved', 'ses-source', 'bad-source');
  keyA = await createKey(b.aws);
  keyB = await createKey(b.aws);
  inbox = await createTopicWithQueue(b.aws, 'replayed');
  moved = await createTopicWithQueue(b.aws, 'moved');
  config = await writeConfig('mailroom');
  many = join(b.dir.path, 'many.mbox');
  await run('python3', [join(import.meta.dirname, 'fixtures', 'write_mbox.py'), many, String(MANY)], { timeout: 60_000 });

  // Objects in SES's format, encrypted by the official S3 Encryption Client (as SES's own are read back by it).
  const signed = 'X-SES-RECEIPT: AEFBQUFBQUFBQUFITUxhd0lKNWNhY2Ni\r\nX-SES-DKIM-SIGNATURE: a=rsa-sha256; q=dns/txt; b=IlBDYhfKzN4Ly4=; c=relaxed/simple; s=224i4yxa5dv7c2xz3womw6peuasteono; d=amazonses.com; t=1597434585; v=1; bh=EHhulQ4FeXWlglHhsEJHZvmTi6Mua7yQbb2zgjT/kA4=; h=From:To:Cc:Bcc:Subject:Date:Message-ID:MIME-Version:Content-Type:X-SES-RECEIPT;\r\n';
  for (const [i, body] of ['hello\r\nFrom the bucket\r\n', `${randomBytes(3000).toString('base64')}\r\n`].entries()) {
    const id = newMessageId();
    const block: HeaderBlockInput = {
      mailFrom: `sender${i}@origin.example`,
      helo: 'mail.origin.example',
      clientIp: '192.0.2.25',
      clientHostname: 'mail.origin.example',
      byHost: 'inbound-smtp.us-east-1.amazonaws.com',
      messageId: id,
      recipients: ['support@example.com'],
      receivedAt: new Date(`2024-10-0${i + 4}T08:09:10Z`),
      spf: { result: 'pass', domain: 'origin.example' },
      scan: { spam: 'PASS', virus: 'PASS' },
    };
    const data = Buffer.from(`Return-Path: <sender${i}@origin.example>\r\nFrom: s@origin.example\r\nTo: support@example.com\r\nSubject: via SES ${i}\r\n\r\n${body}`);
    const file = join(b.dir.path, `ses-${i}`);
    await writeFile(file, Buffer.concat([Buffer.from(buildHeaderBlock(block) + signed), data]));
    const key = objectKey('inbound', id);
    await run('ruby', [RUBY_SCRIPT, 'put', b.moto.endpoint, REGION, 'ses-source', key, file, keyA], { env: { ...process.env, ...b.moto.env }, timeout: 120_000 });
    sesObjects.push({ key, data, block });
  }
}, 240_000);

afterAll(async () => {
  await b?.stop();
});

/** The DATA each source message must come back as (the Python writer's own CRLF rendering), by location. */
function expectedByLocation(single: string): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  const mbox = join(a.dir, a.manifest.mboxrd.path);
  for (const e of a.manifest.mboxrd.messages) m.set(`${mbox}:${e.line} (byte ${e.offset})`, a.expected(e.name));
  for (const e of a.manifest.maildir.messages) m.set(join(a.dir, e.path), a.expected(e.name));
  for (const e of a.manifest.emldir.messages) m.set(join(a.dir, e.path), a.expected(e.name));
  m.set(single, a.expected('plain'));
  m.set('standard input', a.expected('eightbit'));
  return m;
}

describe('each source kind, through the real path', () => {
  let first: Result;
  let single: string;
  let stdin: Buffer;
  const storedKeys = () => listKeys(b.aws, 'replayed', 'inbox/');

  beforeAll(async () => {
    single = join(b.dir.path, 'single.eml');
    await copyFile(join(a.dir, 'export', 'inbox', '0001.eml'), single);
    stdin = await readFile(join(a.dir, 'export', 'sent', '2022', '0003.eml'));
    first = await replay([join(a.dir, a.manifest.mboxrd.path), join(a.dir, a.manifest.maildir.path), join(a.dir, a.manifest.emldir.path), single, '-', '--config', config, '--deliver', '--json'], stdin);
  }, 180_000);

  it('stores each message exactly as its DATA with CRLF behind one header block, encrypted under the rule\'s key; one notification each, the builder\'s own', async () => {
    expect(first.stderr).toMatch(/storing through the replay spool .*gateway-spool\/replay \(node replay-[^)]+\), delivered by this process/);
    // The Maildir's picture is the one problem; it is reported with its place and nothing else is affected.
    expect(ofType(first, 'problem').map((p) => [p.kind, p.location])).toEqual([['malformed', join(a.dir, a.manifest.maildir.notMail[0]!)]]);
    expect(first.code).toBe(1);
    // Nothing on stderr but what replay says (no runtime warning from deliveries in flight).
    expect(first.stderr.split('\n').filter((l) => l && !l.startsWith('mailroom replay: '))).toEqual([]);
    const messages = ofType(first, 'message') as unknown as MessageEvent[];
    const expected = expectedByLocation(single);
    expect(messages.map((m) => m.location).sort()).toEqual([...expected.keys()].sort());
    expect(summary(first)).toMatchObject({ stored: expected.size, delivered: expected.size, notDelivered: 0, alreadyStored: 0, malformed: 1, failed: 0 });
    expect((await storedKeys()).sort()).toEqual(messages.map((m) => m.rules[0]!.key).sort());

    const notifications = new Map((await drainQueue(inbox.queueUrl)).map((n) => [n.mail.messageId, n]));
    expect(notifications.size).toBe(messages.length);
    for (const m of messages) {
      const [rule] = m.rules;
      expect(m.rules).toHaveLength(1);
      expect(rule).toMatchObject({ rule: 'inbox', bucket: 'replayed', key: `inbox/${m.messageId}` });
      const stored = await storedBytes(b.aws, 'replayed', rule!.key);
      const n = notifications.get(m.messageId)!;
      expect(n, m.location).toBeDefined();
      // The source's time; a message with none (standard input without a Date) gets the replay's own.
      const receivedAt = new Date(m.timestamp ?? n.mail.timestamp);
      const block = Buffer.from(buildHeaderBlock({ mailFrom: m.mailFrom, byHost: HOST, messageId: m.messageId, recipients: m.recipients, receivedAt, scan: { spam: 'GRAY', virus: 'GRAY' } }));
      // Not from SMTP: the Received field says so ("with local id").
      expect(block.toString()).toContain(`by ${HOST} with local id ${m.messageId}`);
      expect(stored.body.equals(Buffer.concat([block, expected.get(m.location)!])), m.location).toBe(true);
      expect(JSON.parse(stored.metadata['x-amz-matdesc']!)).toEqual({ 'aws:ses:message-id': m.messageId, 'aws:ses:rule-name': 'inbox', 'aws:ses:source-account': ACCOUNT, kms_cmk_id: keyA });
      expect(n).toEqual(
        buildReceivedNotification({
          timestamp: receivedAt,
          processingTimeMillis: n.receipt.processingTimeMillis,
          source: m.mailFrom,
          messageId: m.messageId,
          recipients: m.recipients,
          headerBlock: stored.body,
          verdicts: { spam: 'GRAY', virus: 'GRAY', spf: 'GRAY', dkim: 'GRAY', dmarc: 'GRAY' },
          action: { topicArn: inbox.topicArn, bucketName: 'replayed', objectKeyPrefix: 'inbox' },
        }),
      );
    }
    // The 6 MiB message went up in parts, as SES uploads messages of 5 MB and more.
    const big = messages.find((m) => expected.get(m.location)!.length > 5 * 1024 * 1024)!;
    expect((await b.aws.s3.send(new HeadObjectCommand({ Bucket: 'replayed', Key: big.rules[0]!.key }))).ETag).toMatch(/-\d+"$/);
    // Everything delivered: the replay spool holds nothing.
    expect(await readdir(join(b.dir.path, 'gateway-spool', 'replay', 'messages')).then((n) => n.length)).toBe(0);
  });

  it('run again: nothing new is stored or announced, every message counted as already there (the checkpoint); through a fresh spool, by a HEAD of each key', async () => {
    const before = new Map<string, string>();
    for (const key of await storedKeys()) before.set(key, (await b.aws.s3.send(new HeadObjectCommand({ Bucket: 'replayed', Key: key }))).ETag!);
    const args = [join(a.dir, a.manifest.mboxrd.path), join(a.dir, a.manifest.maildir.path), join(a.dir, a.manifest.emldir.path), single, '-', '--config', config, '--deliver', '--json'];
    const again = await replay(args, stdin);
    const total = before.size;
    expect(summary(again)).toMatchObject({ stored: 0, alreadyStored: total, malformed: 1 });
    expect(new Set(ofType(again, 'skipped').map((e) => JSON.stringify(e.alreadyThere)))).toEqual(new Set([JSON.stringify({ inbox: 'checkpoint' })]));

    const fresh = await replay([...args, '--spool-dir', join(b.dir.path, 'fresh-spool')], stdin);
    expect(summary(fresh)).toMatchObject({ stored: 0, alreadyStored: total });
    expect(new Set(ofType(fresh, 'skipped').map((e) => JSON.stringify(e.alreadyThere)))).toEqual(new Set([JSON.stringify({ inbox: 'bucket' })]));

    for (const [key, etag] of before) expect((await b.aws.s3.send(new HeadObjectCommand({ Bucket: 'replayed', Key: key }))).ETag, key).toBe(etag);
    expect((await storedKeys()).length).toBe(total);
    expect(await drainQueue(inbox.queueUrl)).toEqual([]);
  });
});

describe('s3:// objects SES stored (written by the official S3 Encryption Client), into another rule with another key', () => {
  it('each is stored once under the new rule: the original DATA behind one new header block, readable by mailroom get and the Ruby client', async () => {
    const r = await replay(['s3://ses-source/inbound/', '--config', config, '--rule', 'moved', '--deliver', '--json', '--spool-dir', join(b.dir.path, 's3-spool')]);
    expect(r.code, r.stderr).toBe(0);
    const messages = ofType(r, 'message') as unknown as MessageEvent[];
    expect(messages).toHaveLength(sesObjects.length);
    const notifications = new Map((await drainQueue(moved.queueUrl)).map((n) => [n.mail.messageId, n]));
    for (const o of sesObjects) {
      const m = messages.find((e) => e.location === `s3://ses-source/${o.key}`)!;
      expect(m.messageId).not.toBe(o.block.messageId);
      expect(m.rules).toEqual([{ rule: 'moved', bucket: 'moved', key: `from-ses/${m.messageId}` }]);
      // The original envelope from the stored block: MAIL FROM, its one recipient, receipt time, the SMTP client.
      const block = Buffer.from(
        buildHeaderBlock({ mailFrom: o.block.mailFrom, helo: o.block.helo!, clientIp: o.block.clientIp!, clientHostname: o.block.clientHostname!, byHost: HOST, messageId: m.messageId, recipients: ['support@example.com'], receivedAt: o.block.receivedAt }),
      );
      const want = Buffer.concat([block, o.data]);

      const get = await new Promise<{ code: number | null; out: Buffer }>((resolve) => {
        const { child } = start('get', [`s3://moved/${m.rules[0]!.key}`]);
        const chunks: Buffer[] = [];
        child.stdout!.removeAllListeners('data');
        child.stdout!.on('data', (c: Buffer) => chunks.push(c));
        child.on('close', (code) => resolve({ code, out: Buffer.concat(chunks) }));
      });
      expect(get.code).toBe(0);
      expect(get.out.equals(want)).toBe(true);
      // One header block: SES's own (its signed fields with it) was read off, not stored again.
      expect(get.out.toString('latin1')).not.toContain('X-SES-RECEIPT');
      expect(get.out.toString('latin1').match(/^Received: /gm)).toHaveLength(1);

      const viaRuby = join(b.dir.path, `ruby-${m.messageId}`);
      await run('ruby', [RUBY_SCRIPT, 'get', b.moto.endpoint, REGION, 'moved', m.rules[0]!.key, viaRuby], { env: { ...process.env, ...b.moto.env }, timeout: 120_000 });
      expect((await readFile(viaRuby)).equals(want)).toBe(true);
      const head = await b.aws.s3.send(new HeadObjectCommand({ Bucket: 'moved', Key: m.rules[0]!.key }));
      expect(JSON.parse(head.Metadata!['x-amz-matdesc']!)).toMatchObject({ 'aws:ses:rule-name': 'moved', kms_cmk_id: keyB });

      const n = notifications.get(m.messageId)!;
      expect(n).toEqual(
        buildReceivedNotification({
          timestamp: o.block.receivedAt,
          processingTimeMillis: n.receipt.processingTimeMillis,
          source: o.block.mailFrom,
          messageId: m.messageId,
          recipients: ['support@example.com'],
          headerBlock: want,
          verdicts: { spam: 'DISABLED', virus: 'DISABLED', spf: 'GRAY', dkim: 'GRAY', dmarc: 'GRAY' },
          action: { topicArn: moved.topicArn, bucketName: 'moved', objectKeyPrefix: 'from-ses/' },
        }),
      );
    }
    expect(notifications.size).toBe(sesObjects.length);
  });
});

describe('bad input, stored for real', () => {
  it('each is reported with where it is and why; everything else is stored; nothing of a bad message is', async () => {
    // An object not in SES's format, and an encrypted one tampered with, beside a good one.
    await b.aws.s3.send(new PutObjectCommand({ Bucket: 'bad-source', Key: 'in/exported.eml', Body: 'From: a@origin.example\r\nTo: user@example.com\r\n\r\nbare\r\n' }));
    const good = sesObjects[0]!;
    const plain = Buffer.concat([Buffer.from(buildHeaderBlock({ ...good.block, messageId: newMessageId() })), good.data]);
    const encrypted = async (key: string) => {
      const id = key.split('/')[1]!;
      await putMessage({ s3: b.aws.s3, bucket: 'bad-source', key, body: plain, length: plain.length, encryption: { kms: b.aws.kms, context: { messageId: id, ruleName: 'inbox', accountId: ACCOUNT, kmsKeyArn: keyA } } });
    };
    const goodKey = `in/${newMessageId()}`;
    const tamperedKey = `in/${newMessageId()}`;
    await encrypted(goodKey);
    await encrypted(tamperedKey);
    const obj = await b.aws.s3.send(new GetObjectCommand({ Bucket: 'bad-source', Key: tamperedKey }));
    const bytes = Buffer.from(await obj.Body!.transformToByteArray());
    bytes[bytes.length - 30]! ^= 1;
    await b.aws.s3.send(new PutObjectCommand({ Bucket: 'bad-source', Key: tamperedKey, Body: bytes, Metadata: obj.Metadata! }));

    const small = await writeConfig('small', { maxMessageSize: 1024 * 1024, prefix: 'bad' });
    const missing = join(b.dir.path, 'no-such-archive.mbox');
    const r = await replay(
      [join(a.dir, 'cut-midline.mbox'), join(a.dir, a.manifest.maildir.path), join(a.dir, a.manifest.mboxrd.path), 's3://bad-source/in/', missing, '--config', small, '--deliver', '--json', '--spool-dir', join(b.dir.path, 'bad-spool')],
    );
    expect(r.code).toBe(1);
    const mbox = join(a.dir, a.manifest.mboxrd.path);
    const big = a.manifest.mboxrd.messages.find((e) => e.name === 'big')!;
    const problems = ofType(r, 'problem').map((p) => [p.kind, p.location, p.reason]);
    expect(problems).toEqual(
      expect.arrayContaining([
        ['malformed', `${join(a.dir, 'cut-midline.mbox')}:${a.manifest.truncated.line} (byte ${a.manifest.truncated.offset})`, expect.stringMatching(/cut short/)],
        ['malformed', join(a.dir, a.manifest.maildir.notMail[0]!), expect.stringMatching(/^is not a mail message/)],
        ['malformed', `${mbox}:${big.line} (byte ${big.offset})`, expect.stringMatching(/over the limit of 1048576 bytes/)],
        ['malformed', 's3://bad-source/in/exported.eml', expect.stringMatching(/^is not a message stored by SES or the gateway/)],
        ['malformed', `s3://bad-source/${tamperedKey}`, expect.stringMatching(/^is tampered or damaged/)],
        ['failed', missing, expect.stringMatching(/^does not exist/)],
      ]),
    );
    // cut-midline.mbox holds its own copy of the big one before the cut.
    expect(problems).toHaveLength(7);
    // Problems are on stderr too, for the operator watching.
    expect(r.stderr).toContain(`mailroom replay: malformed: s3://bad-source/${tamperedKey} is tampered or damaged`);
    const messages = ofType(r, 'message') as unknown as MessageEvent[];
    expect(messages.map((m) => m.location)).toContain(`s3://bad-source/${goodKey}`);
    expect(summary(r)).toMatchObject({ stored: messages.length, malformed: 6, failed: 1, delivered: messages.length, notDelivered: 0 });
    // Exactly the messages reported stored have objects: nothing of the tampered one (its stream failed at its end).
    expect((await listKeys(b.aws, 'replayed', 'bad/')).sort()).toEqual(messages.map((m) => m.rules[0]!.key).sort());
    await drainQueue(inbox.queueUrl);
  });
});

describe('deliveries that fail for good (--deliver)', () => {
  it('are reported with their source messages and the command to retry them; the summary counts them as not delivered; exit 1', async () => {
    const input = configInput({ prefix: 'nowhere' });
    input.rules[0]!.s3Action.bucketName = 'no-such-bucket';
    (input.gateway.worker as Record<string, unknown>).attempts = 1;
    const cfg = join(b.dir.path, 'nowhere.json');
    await writeFile(cfg, JSON.stringify(input));
    const spool = join(b.dir.path, 'nowhere-spool');
    const r = await replay([join(a.dir, a.manifest.emldir.path), '--config', cfg, '--deliver', '--json', '--spool-dir', spool]);
    expect(r.code).toBe(1);
    const nodeId = (await readFile(join(spool, 'node-id'), 'utf8')).trim();
    const failed = ofType(r, 'problem');
    expect(failed.map((p) => p.location).sort()).toEqual(a.manifest.emldir.messages.map((m) => join(a.dir, m.path)).sort());
    for (const p of failed) {
      expect(p.kind).toBe('failed');
      expect(p.reason).toMatch(new RegExp(`^was not delivered to rule "inbox" \\(.*NoSuchBucket.*\\): mailroom queue failed --node ${nodeId} lists it, mailroom queue retry tries again$`));
    }
    expect(summary(r)).toMatchObject({ stored: 3, delivered: 0, notDelivered: 3 });
    expect(r.stderr).toMatch(/3 accepted message\(s\) are not delivered yet: they stay in /);
    // The bucket's absence was said too (the workers' start-up check), on stderr above the bar.
    expect(r.stderr).toMatch(/mailroom replay: (warning|error): .*no-such-bucket/);
  }, 120_000);
});

/** Every delivery job of the replay node's queue, completed or not: message id → how many jobs carried it. */
async function jobsPerMessage(nodeId: string): Promise<Map<string, number>> {
  const q = new Queue<DeliveryJobData>(DELIVERIES_QUEUE, { connection: { url: b.redis.url } as never, prefix: `${PREFIX}:node:${nodeId}` });
  try {
    const counts = new Map<string, number>();
    for (const job of await q.getJobs(['completed', 'active', 'waiting', 'delayed', 'failed', 'prioritized'], 0, -1)) {
      for (const m of deliveryBatch(job.data).messages) counts.set(m.envelope.messageId, (counts.get(m.envelope.messageId) ?? 0) + 1);
    }
    return counts;
  } finally {
    await q.close();
  }
}

async function activeMessages(nodeId: string): Promise<Set<string>> {
  const q = new Queue<DeliveryJobData>(DELIVERIES_QUEUE, { connection: { url: b.redis.url } as never, prefix: `${PREFIX}:node:${nodeId}` });
  try {
    return new Set((await q.getJobs(['active'], 0, -1)).flatMap((j) => deliveryBatch(j.data).messages.map((m) => m.envelope.messageId)));
  } finally {
    await q.close();
  }
}

/** The checkpoint's 'accepted' lines: accepts recorded (an 'accepting' line only says one began). */
const lines = async (path: string) => (await readFile(path, 'utf8').catch(() => '')).split('\n').filter((l) => l.includes('"state":"accepted"')).length;

describe('stopped half way', () => {
  it('kill -9 while storing and delivering, then the same command again: every source message accepted once, stored, announced', async () => {
    const prefix = 'killed';
    const cfg = await writeConfig('killed', { prefix });
    const spool = join(b.dir.path, 'killed-spool');
    const args = [many, '--config', cfg, '--deliver', '--json', '--spool-dir', spool, '--rate', '60'];
    const { child, done } = start('replay', args);
    await waitFor('half the messages accepted', async () => (await lines(join(spool, 'replay-checkpoint.jsonl'))) >= MANY / 2, 90_000, 50);
    child.kill('SIGKILL');
    expect((await done).signal).toBe('SIGKILL');
    const nodeId = (await readFile(join(spool, 'node-id'), 'utf8')).trim();
    // What the kill interrupted: deliveries it held (taken over later, the gateway's at-least-once).
    const interrupted = await activeMessages(nodeId);

    const again = await replay(args);
    expect(again.code, again.stderr).toBe(0);
    const s = summary(again);
    expect((s.stored as number) + (s.alreadyStored as number)).toBe(MANY);
    expect(s.alreadyStored as number).toBeGreaterThanOrEqual(MANY / 2);
    const keys = await listKeys(b.aws, 'replayed', `${prefix}/`);
    expect(keys).toHaveLength(MANY);
    // Accepted once each: one delivery job ever carried each message.
    const jobs = await jobsPerMessage(nodeId);
    expect(jobs.size).toBe(MANY);
    expect([...jobs.values()].every((n) => n === 1)).toBe(true);
    expect(new Set(keys.map((k) => k.slice(prefix.length + 1)))).toEqual(new Set(jobs.keys()));
    // Announced at least once each; twice only where the kill cut a delivery between its publish and its end.
    const announced = new Map<string, number>();
    for (const n of await drainQueue(inbox.queueUrl)) if (n.receipt.action.objectKey?.startsWith(`${prefix}/`)) announced.set(n.mail.messageId, (announced.get(n.mail.messageId) ?? 0) + 1);
    expect(announced.size).toBe(MANY);
    for (const [id, count] of announced) if (count > 1) expect(interrupted.has(id), id).toBe(true);
    expect(await readdir(join(spool, 'messages')).then((n) => n.length)).toBe(0);
  }, 240_000);

  it('kill -9 while accepting (no --deliver), the same command again, then a mailroom worker on the replay spool: each message stored and announced exactly once', async () => {
    const prefix = 'queued';
    const cfg = await writeConfig('queued', { prefix });
    const spool = join(b.dir.path, 'queued-spool');
    const args = [many, '--config', cfg, '--json', '--spool-dir', spool, '--rate', '80'];
    const { child, done } = start('replay', args);
    await waitFor('half the messages accepted', async () => (await lines(join(spool, 'replay-checkpoint.jsonl'))) >= MANY / 2, 90_000, 50);
    child.kill('SIGKILL');
    await done;
    const again = await replay(args);
    expect(again.code, again.stderr).toBe(0);
    const nodeId = (await readFile(join(spool, 'node-id'), 'utf8')).trim();
    // It says which process delivers, and nothing is delivered until that runs.
    expect(again.stderr).toContain(`mailroom worker --config ${cfg} --spool-dir ${spool} --node-id ${nodeId}`);
    expect(summary(again)).toMatchObject({ queued: summary(again).stored, spoolDir: spool, nodeId });
    expect(await listKeys(b.aws, 'replayed', `${prefix}/`)).toEqual([]);

    const worker = start('worker', ['--config', cfg, '--spool-dir', spool, '--node-id', nodeId]);
    try {
      await waitFor('every message delivered', async () => (await listKeys(b.aws, 'replayed', `${prefix}/`)).length === MANY && (await readdir(join(spool, 'messages'))).filter((n) => n.endsWith('.msg')).length === 0, 120_000, 500);
    } finally {
      worker.child.kill('SIGTERM');
      await worker.done;
    }
    const announced = new Map<string, number>();
    for (const n of await drainQueue(inbox.queueUrl)) if (n.receipt.action.objectKey?.startsWith(`${prefix}/`)) announced.set(n.mail.messageId, (announced.get(n.mail.messageId) ?? 0) + 1);
    expect(announced.size).toBe(MANY);
    expect([...announced.values()].every((n) => n === 1)).toBe(true);
    expect([...(await jobsPerMessage(nodeId)).values()].every((n) => n === 1)).toBe(true);
  }, 240_000);

  it('SIGINT: stops reading, finishes what is in hand, prints the summary and exits 1; a second replay of the same spool meanwhile is refused; the same command again finishes the rest', async () => {
    const prefix = 'interrupted';
    const cfg = await writeConfig('interrupted', { prefix });
    const spool = join(b.dir.path, 'interrupted-spool');
    // Slow enough that the second replay's start (seconds on a busy machine) comes well before the last message.
    const args = [many, '--config', cfg, '--deliver', '--json', '--spool-dir', spool, '--rate', '10'];
    const { child, done } = start('replay', args);
    await waitFor('some messages accepted', async () => (await lines(join(spool, 'replay-checkpoint.jsonl'))) >= 20, 90_000, 50);

    const second = await replay(args);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`cannot store through the replay spool ${spool}: the spool ${spool} is in use by process ${child.pid}`));

    child.kill('SIGINT');
    const r = await done;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/SIGINT: stopping — no further message is read/);
    expect(r.stderr).toMatch(/interrupted before every source was read: run the same command again/);
    const s = summary(r);
    expect(s).toMatchObject({ interrupted: true, failed: 0 });
    expect(s.stored as number).toBeLessThan(MANY);
    const rest = await replay(args.filter((x) => x !== '--rate' && x !== '10'));
    expect(rest.code, rest.stderr).toBe(0);
    // What the first run accepted and did not deliver before it stopped is in the spool: skipped, and delivered now.
    expect(summary(rest)).toMatchObject({ stored: MANY - (s.stored as number), alreadyStored: s.stored, interrupted: false, notDelivered: 0 });
    expect(await listKeys(b.aws, 'replayed', `${prefix}/`)).toHaveLength(MANY);
    expect([...(await jobsPerMessage((await readFile(join(spool, 'node-id'), 'utf8')).trim())).values()].every((n) => n === 1)).toBe(true);
    await drainQueue(inbox.queueUrl);
  }, 240_000);
});

describe('the window between an accept and its checkpoint line', () => {
  const keep = async (path: string, state: string) => writeFile(path, (await readFile(path, 'utf8')).split('\n').filter((l) => l.includes(`"state":"${state}"`)).map((l) => `${l}\n`).join(''));
  const reasons = (r: Result) => ofType(r, 'skipped').map((e) => e.alreadyThere);

  it('an accept whose line never reached the checkpoint (a crash between the two) is not accepted again: found in the spool, then in its bucket', async () => {
    const prefix = 'window';
    const cfg = await writeConfig('window', { prefix });
    const spool = join(b.dir.path, 'window-spool');
    const checkpoint = join(spool, 'replay-checkpoint.jsonl');
    const source = join(a.dir, a.manifest.emldir.path);
    const args = [source, '--config', cfg, '--json', '--spool-dir', spool];
    expect(summary(await replay(args))).toMatchObject({ stored: 3 });
    const nodeId = (await readFile(join(spool, 'node-id'), 'utf8')).trim();
    const deliver = async () => {
      const worker = start('worker', ['--config', cfg, '--spool-dir', spool, '--node-id', nodeId]);
      try {
        await waitFor('delivered', async () => (await listKeys(b.aws, 'replayed', `${prefix}/`)).length === 3 && (await readdir(join(spool, 'messages'))).length === 0, 60_000, 250);
      } finally {
        worker.child.kill('SIGTERM');
        await worker.done;
      }
    };

    // Accepted, not yet delivered (no worker ran), and the checkpoint lost all of it: the spool says so.
    await writeFile(checkpoint, '');
    const spooled = await replay(args);
    expect(summary(spooled)).toMatchObject({ stored: 0, alreadyStored: 3 });
    expect(reasons(spooled)).toEqual([{ inbox: 'spool' }, { inbox: 'spool' }, { inbox: 'spool' }]);
    await deliver();
    // Delivered and released, and still nothing in the checkpoint: the bucket says so.
    await writeFile(checkpoint, '');
    const stored = await replay(args);
    expect(summary(stored)).toMatchObject({ stored: 0, alreadyStored: 3 });
    expect(reasons(stored)).toEqual([{ inbox: 'bucket' }, { inbox: 'bucket' }, { inbox: 'bucket' }]);
    expect([...(await jobsPerMessage(nodeId)).values()]).toEqual([1, 1, 1]);
    expect((await drainQueue(inbox.queueUrl)).filter((n) => n.receipt.action.objectKey?.startsWith(`${prefix}/`))).toHaveLength(3);
  }, 180_000);

  it('--no-bucket-check: the bucket is asked only about accepts begun and not recorded — and a replay spool that never saw a message stores it again', async () => {
    const prefix = 'trusted';
    const cfg = await writeConfig('trusted', { prefix });
    const spool = join(b.dir.path, 'trusted-spool');
    const checkpoint = join(spool, 'replay-checkpoint.jsonl');
    const args = [join(a.dir, a.manifest.emldir.path), '--config', cfg, '--json', '--spool-dir', spool, '--deliver', '--no-bucket-check'];
    expect(summary(await replay(args))).toMatchObject({ stored: 3, delivered: 3 });
    // A crash after each accept and before its "accepted" line: only the "accepting" lines are left.
    await keep(checkpoint, 'accepting');
    const again = await replay(args);
    expect(summary(again)).toMatchObject({ stored: 0, alreadyStored: 3 });
    expect(reasons(again)).toEqual([{ inbox: 'bucket' }, { inbox: 'bucket' }, { inbox: 'bucket' }]);
    expect((await drainQueue(inbox.queueUrl)).filter((n) => n.receipt.action.objectKey?.startsWith(`${prefix}/`))).toHaveLength(3);

    // Through a spool that knows nothing of them, without the check: stored, and announced, again (as documented).
    const elsewhere = await replay([...args.slice(0, 5), join(b.dir.path, 'trusted-spool-2'), '--deliver', '--no-bucket-check']);
    expect(summary(elsewhere)).toMatchObject({ stored: 3, alreadyStored: 0 });
    expect(await listKeys(b.aws, 'replayed', `${prefix}/`)).toHaveLength(3);
    expect((await drainQueue(inbox.queueUrl)).filter((n) => n.receipt.action.objectKey?.startsWith(`${prefix}/`))).toHaveLength(3);
  }, 180_000);
});

describe('progress while storing', () => {
  it('on a pseudo-terminal: the bar, then what is delivered; the summary after', async () => {
    const cfg = await writeConfig('tty', { prefix: 'tty' });
    const env = Object.entries({ ...b.moto.env, MAILROOM_CONFIG: '', LOG_LEVEL: '' })
      .map(([k, v]) => `${k}='${v}'`)
      .join(' ');
    const command = `stty cols 200; env ${env} ${process.execPath} ${CLI} replay '${many}' --config '${cfg}' --deliver --rate 60 --spool-dir '${join(b.dir.path, 'tty-spool')}' >/dev/null`;
    const { stdout: tty } = await run('script', ['-q', '-e', '-c', command, '/dev/null'], { timeout: 120_000 }).catch((e: { stdout: string }) => ({ stdout: e.stdout }));
    const frames = tty.split('\r\x1b[2K').filter((f) => f.startsWith('replay: '));
    expect(frames.length).toBeGreaterThan(5);
    expect(frames.some((f) => /^replay: \[=*>? *\] \d+%  \d+ messages  [\d.]+\/[\d.]+ MB  [\d.]+ msg\/s  [\d.]+ MB\/s  ETA \S+  \d+ delivered/.test(f))).toBe(true);
    expect(tty).toMatch(new RegExp(`mailroom replay: ${MANY} messages, [\\d.]+ MB in \\S+\\r?\\n\\s+stored\\s+${MANY}\\r?\\n`));
    await drainQueue(inbox.queueUrl);
  }, 180_000);
});
