/**
 * The gateway end to end with real parts: nodemailer → SMTP → spool → Redis/BullMQ → S3 (+KMS) → SNS → SQS, all in
 * moto. What a downstream consumer sees must be what SES would have written.
 */
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { spooledFiles, spoolFileHolding } from '../support/spool.js';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildReceivedNotification, serializeNotification, SNS_SUBJECT, type ReceivedNotification } from '../../shared/notification/index.js';
import { buildHeaderBlock } from '../../shared/ses/header-block.js';
import type { ReceivingConfigInput } from '../../shared/config/index.js';
import {
  ACCOUNT,
  createBuckets,
  createKey,
  createTopicWithQueue,
  rawMessage,
  RawSmtp,
  receiveSns,
  REGION,
  run,
  RUBY_SCRIPT,
  selfSignedCert,
  sendRaw,
  startTestGateway,
  storedBytes,
  waitFor,
  startBackends,
  type Backends,
} from './helpers.js';

const HOST = 'mx.gateway.test';
const HELO = 'client.example.net';

let backends: Backends;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let keyArn: string;
let topic: { topicArn: string; queueUrl: string };

function config(): ReceivingConfigInput {
  return {
    region: REGION,
    accountId: ACCOUNT,
    ruleSetName: 'gateway-e2e',
    rules: [
      { name: 'support', recipients: ['support@example.com'], scanEnabled: true, s3Action: { bucketName: 'mail-a', objectKeyPrefix: 'inbound', kmsKeyArn: keyArn, topicArn: topic.topicArn } },
      { name: 'archive', recipients: ['example.com'], s3Action: { bucketName: 'mail-b', objectKeyPrefix: 'archive/', kmsKeyArn: keyArn } },
      { name: 'subs', recipients: ['.sub.example.org'], s3Action: { bucketName: 'mail-b' } },
      { name: 'secure', recipients: ['secure@tls.example'], tlsPolicy: 'Require', s3Action: { bucketName: 'mail-a', objectKeyPrefix: 'secure' } },
      { name: 'off', enabled: false, recipients: ['off.example'], s3Action: { bucketName: 'mail-a' } },
    ],
    gateway: {
      hostname: HOST,
      spoolDir: join(backends.dir.path, 'spool'),
      smtp: { port: 0, reverseDns: false, tls: { certFile: join(backends.dir.path, 'cert.pem'), keyFile: join(backends.dir.path, 'key.pem') } },
      redis: { url: backends.redis.url, prefix: 'e2e' },
      worker: { concurrency: 4, backoffBaseMs: 200, backoffMaxMs: 1000 },
      upload: { multipartThresholdBytes: 8 * 1024 * 1024, partSizeBytes: 5 * 1024 * 1024 },
    },
  };
}

beforeAll(async () => {
  backends = await startBackends('mailroom-e2e-', { motoEnv: true });
  await createBuckets(backends.aws, 'mail-a', 'mail-b');
  keyArn = await createKey(backends.aws);
  topic = await createTopicWithQueue(backends.aws, 'inbound');
  await selfSignedCert(backends.dir.path);
  gw = await startTestGateway(config());
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  await backends?.stop();
});

/** Whether some spool file still holds the message (a batch file is named by its spare's id, not by a message). */
const stillSpooled = async (messageId: string) => (await spoolFileHolding(join(backends.dir.path, 'spool'), messageId)) !== undefined;

function expectedHeaderBlock(messageId: string, recipients: string[], receivedAt: Date, scan: boolean, mailFrom = 'sender@origin.example'): Buffer {
  return Buffer.from(
    buildHeaderBlock({ mailFrom, helo: HELO, clientIp: '127.0.0.1', byHost: HOST, messageId, recipients, receivedAt, ...(scan ? { scan: { spam: 'GRAY', virus: 'GRAY' } } : {}) }),
    'utf8',
  );
}

describe('accepted mail lands as SES would write it', () => {
  it('encrypted object at the SES key, readable by the project and the Ruby S3 Encryption Client, notification via SQS, one object per rule', async () => {
    const data = rawMessage(
      [
        ['From', 'Sender <sender@origin.example>'],
        ['To', 'Support <support+billing@example.com>, other@example.com'],
        ['Subject', 'Invoice 42'],
        ['Message-ID', '<e2e-1@origin.example>'],
        ['Date', 'Tue, 23 Apr 2019 11:32:42 -0300'],
      ],
      'Hello,\r\n.leading dot line\r\nbye\r\n',
    );
    const sent = await sendRaw(gw.port, { from: 'sender@origin.example', to: ['support+billing@example.com', 'other@example.com'] }, data, { name: HELO });
    expect(sent.response).toMatch(/^250 Ok [0-9a-v]{38}[08go]1$/);
    const id = sent.messageId;

    // The one notification (only "support" has a topic) tells us the receipt time the header block used.
    const [env] = await receiveSns(backends.aws, topic.queueUrl, 1);
    expect(env).toBeDefined();
    expect(env!.Subject).toBe(SNS_SUBJECT);
    expect(env!.TopicArn).toBe(topic.topicArn);
    const n = JSON.parse(env!.Message) as ReceivedNotification;
    const receivedAt = new Date(n.mail.timestamp);

    // support: only its own recipient, +label matched; scan-enabled ⇒ GRAY verdict headers.
    const supportKey = `inbound/${id}`;
    const a = await storedBytes(backends.aws, 'mail-a', supportKey);
    const supportHb = expectedHeaderBlock(id, ['support+billing@example.com'], receivedAt, true);
    expect(a.body.equals(Buffer.concat([supportHb, Buffer.from(data, 'latin1')]))).toBe(true);
    expect(JSON.parse(a.metadata['x-amz-matdesc']!)).toEqual({ 'aws:ses:message-id': id, 'aws:ses:rule-name': 'support', 'aws:ses:source-account': ACCOUNT, kms_cmk_id: keyArn });

    // archive: both recipients (domain condition), its own bucket, its own rule name in the encryption context.
    const archiveKey = `archive/${id}`;
    const b = await storedBytes(backends.aws, 'mail-b', archiveKey);
    expect(b.body.equals(Buffer.concat([expectedHeaderBlock(id, ['support+billing@example.com', 'other@example.com'], receivedAt, false), Buffer.from(data, 'latin1')]))).toBe(true);
    expect(JSON.parse(b.metadata['x-amz-matdesc']!)['aws:ses:rule-name']).toBe('archive');
    // No client checksum on the object (gateway.upload.checksums WHEN_REQUIRED): nothing SES is not known to write.
    const checks = await backends.aws.s3.send(new HeadObjectCommand({ Bucket: 'mail-a', Key: supportKey, ChecksumMode: 'ENABLED' }));
    expect(Object.keys(checks).filter((k) => k.startsWith('Checksum') && k !== 'ChecksumType')).toEqual([]);

    // The official client decrypts it to the same bytes.
    const out = join(backends.dir.path, `ruby-${id}`);
    await run('ruby', [RUBY_SCRIPT, 'get', backends.moto.endpoint, REGION, 'mail-a', supportKey, out], { env: { ...process.env, ...backends.moto.env }, timeout: 60_000 });
    const { readFile } = await import('node:fs/promises');
    expect((await readFile(out)).equals(a.body)).toBe(true);

    // The notification is exactly the shared builder's document for this message and key (bar processing time).
    const expected = buildReceivedNotification({
      timestamp: receivedAt,
      processingTimeMillis: n.receipt.processingTimeMillis,
      source: 'sender@origin.example',
      messageId: id,
      recipients: ['support+billing@example.com'],
      headerBlock: a.body,
      verdicts: { spam: 'GRAY', virus: 'GRAY', spf: 'GRAY', dkim: 'GRAY', dmarc: 'GRAY' },
      action: { topicArn: topic.topicArn, bucketName: 'mail-a', objectKeyPrefix: 'inbound' },
    });
    expect(n).toEqual(expected);
    expect(env!.Message).toBe(serializeNotification(expected));
    expect(n.receipt.action.objectKey).toBe(supportKey);
    expect(n.mail.commonHeaders.subject).toBe('Invoice 42');

    // Both rules done ⇒ the spool file is released.
    await waitFor('spool release', async () => !(await stillSpooled(id)));
  });

  it('a 12 MB message goes up multipart, encrypted, byte-exact', async () => {
    const line = `${'x'.repeat(998)}\r\n`;
    const body = line.repeat(Math.ceil((12 * 1024 * 1024) / line.length));
    const data = rawMessage([['From', 'big@origin.example'], ['To', 'other@example.com'], ['Subject', 'big']], body);
    const sent = await sendRaw(gw.port, { from: 'sender@origin.example', to: ['other@example.com'] }, data, { name: HELO });
    const id = sent.messageId;
    expect(id).not.toBe('');
    const key = `archive/${id}`;
    const head = await waitFor('big object', () => backends.aws.s3.send(new HeadObjectCommand({ Bucket: 'mail-b', Key: key })), 60_000, 250);
    expect(head.ETag).toMatch(/-\d+"$/); // multipart ETag
    const stored = await storedBytes(backends.aws, 'mail-b', key);
    const text = stored.body.toString('latin1');
    expect(text.slice(0, 12)).toBe('Return-Path:');
    const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
    expect(sha(stored.body.subarray(stored.body.length - Buffer.byteLength(data, 'latin1')))).toBe(sha(Buffer.from(data, 'latin1')));
  }, 90_000);
});

describe('recipients are matched as SES matches them', () => {
  it('+label, domain and .subdomain accepted; unknown, bare parent domain and disabled rules get 550 5.1.1 while the rest is delivered', async () => {
    const to = ['x@a.sub.example.org', 'nobody@unknown.example', 'y@sub.example.org', 'z@off.example'];
    const sent = await sendRaw(gw.port, { from: 'sender@origin.example', to }, rawMessage([['Subject', 'match']], 'hi\r\n'), { name: HELO });
    expect(sent.accepted).toEqual(['x@a.sub.example.org']);
    expect(sent.rejected.sort()).toEqual(['nobody@unknown.example', 'y@sub.example.org', 'z@off.example']);
    for (const e of sent.rejectedErrors) expect(e.response).toMatch(/^550 5\.1\.1 /);
    const stored = await waitFor('subs object', () => storedBytes(backends.aws, 'mail-b', sent.messageId), 30_000, 250);
    expect(stored.body.toString('latin1')).toContain(`for x@a.sub.example.org;`);
  });

  it('a message no rule accepts is refused whole', async () => {
    await expect(sendRaw(gw.port, { from: 'sender@origin.example', to: ['nobody@unknown.example'] }, rawMessage([['Subject', 'x']], 'x\r\n'))).rejects.toThrow(/550 5\.1\.1/);
  });
});

describe('TLS policy Require', () => {
  it('refuses the rule\'s recipients without TLS (530 5.7.0) and accepts them after STARTTLS', async () => {
    const c = await RawSmtp.connect(gw.port);
    expect(await c.command(`EHLO ${HELO}`)).toContain('STARTTLS');
    expect(await c.command('MAIL FROM:<sender@origin.example>')).toMatch(/^250/);
    expect(await c.command('RCPT TO:<secure@tls.example>')).toMatch(/^530 5\.7\.0 /);
    expect(await c.command('RCPT TO:<other@example.com>')).toMatch(/^250/); // Optional rules still take mail
    c.close();

    const sent = await sendRaw(gw.port, { from: 'sender@origin.example', to: ['secure@tls.example'] }, rawMessage([['Subject', 'tls']], 'secret\r\n'), { requireTLS: true, name: HELO });
    expect(sent.accepted).toEqual(['secure@tls.example']);
    const stored = await waitFor('secure object', () => storedBytes(backends.aws, 'mail-a', `secure/${sent.messageId}`), 30_000, 250);
    // SES writes "with SMTP" even for TLS senders (docs/ses-format.md#header-block).
    expect(stored.body.toString('latin1')).toContain(`by ${HOST} with SMTP id ${sent.messageId}`);
  });
});

describe('size limit', () => {
  it('advertises SIZE, refuses a declared or streamed oversize with 552, and keeps nothing of it', async () => {
    const small = await startTestGateway({ ...config(), maxMessageSize: 64 * 1024, gateway: { ...config().gateway, spoolDir: join(backends.dir.path, 'spool-small'), nodeId: 'e2e-small', smtp: { port: 0, reverseDns: false } } }, { smtp: true, workers: false });
    try {
      const c = await RawSmtp.connect(small.port);
      const ehlo = (await c.command(`EHLO ${HELO}`)).split('\n').map((l) => l.slice(4));
      expect(ehlo).toEqual(expect.arrayContaining(['PIPELINING', '8BITMIME', 'SMTPUTF8', 'SIZE 65536']));
      expect(ehlo).not.toContain('STARTTLS'); // no certificate configured here
      expect(ehlo.some((l) => l.startsWith('AUTH'))).toBe(false);
      expect(await c.command('MAIL FROM:<sender@origin.example> SIZE=70000')).toMatch(/^552 /);
      expect(await c.command('MAIL FROM:<sender@origin.example>')).toMatch(/^250/);
      expect(await c.command('RCPT TO:<other@example.com>')).toMatch(/^250/);
      const reply = await c.data(`Subject: big\r\n\r\n${'y'.repeat(200 * 1024)}\r\n`);
      expect(reply).toMatch(/^552 5\.3\.4 /);
      // The session goes on: the next message is fine.
      expect(await c.command('MAIL FROM:<sender@origin.example>')).toMatch(/^250/);
      expect(await c.command('RCPT TO:<other@example.com>')).toMatch(/^250/);
      expect(await c.data('Subject: small\r\n\r\nok\r\n')).toMatch(/^250 Ok /);
      c.close();
      const spool = join(backends.dir.path, 'spool-small');
      expect(await readdir(join(spool, 'incoming'))).toEqual([]);
      expect(await spooledFiles(spool)).toHaveLength(1);
    } finally {
      await small.stop();
    }
  });
});
