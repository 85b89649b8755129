/**
 * publishNotifications (SNS PublishBatch, sent as one signed Query-protocol request) against moto: subscribers get
 * the same envelope, Subject and Message bytes as from an SDK Publish. Splitting, per-entry and
 * per-call failures and retries are checked against a loopback SNS that reads the form and answers SNS's XML.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildReceivedNotification, serializeNotification, SNS_SUBJECT, type ReceivedNotification } from '../../shared/notification/index.js';
import { isPermanentSnsRefusal, publishNotifications, type NotificationToPublish } from '../../gateway/worker/notify.js';
import { startMoto, type Moto } from '../support/moto.js';
import { awsClients, createTopicWithQueue, receiveSns, type AwsFixture } from './helpers.js';

const TOPIC_ARN = 'arn:aws:sns:us-east-1:123456789012:notify-batch';

/** A notification per index; the non-ASCII Subject header makes "byte-identical" mean more than ASCII equality. */
function notification(i: number, topicArn = TOPIC_ARN): ReceivedNotification {
  const messageId = `batch${String(i).padStart(4, '0')}kksd5uhl2b598fhhro1scu3d05a39id0gdg1`;
  const headerBlock = [
    'Return-Path: <bob@sender.example>',
    `Received: from mail.sender.example by inbound-smtp.us-east-1.amazonaws.com with SMTP id ${messageId} for no-reply@receiver.example; Tue, 23 Apr 2019 14:32:52 +0000 (UTC)`,
    'From: Bob Sender <bob@sender.example>',
    'To: no-reply@receiver.example',
    `Subject: Grüße Nr. ${i} — ✓`,
    '',
    '',
  ].join('\r\n');
  return buildReceivedNotification({
    timestamp: new Date(Date.UTC(2019, 3, 23, 14, 32, 52, i)),
    processingTimeMillis: 400 + i,
    source: 'bob@sender.example',
    messageId,
    recipients: ['no-reply@receiver.example'],
    headerBlock,
    verdicts: { spam: 'DISABLED', virus: 'DISABLED', spf: 'GRAY', dkim: 'GRAY', dmarc: 'GRAY' },
    action: { topicArn, bucketName: 'receive-email-bucket', objectKeyPrefix: 'in/' },
  });
}

const items = (n: number, topicArn?: string): NotificationToPublish[] => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, notification: notification(i, topicArn) }));

/** Message+Subject bytes of one entry, as the batcher counts them. */
const entryBytes = (n: ReceivedNotification) => Buffer.byteLength(serializeNotification(n)) + Buffer.byteLength(SNS_SUBJECT);

/** Pads `mail.source` so the entry's Message+Subject is exactly `bytes` long (ASCII padding: 1 byte per char). */
function sized(i: number, bytes: number): NotificationToPublish {
  const n = notification(i);
  const padded = { ...n, mail: { ...n.mail, source: n.mail.source + 'x'.repeat(bytes - entryBytes(n)) } };
  expect(entryBytes(padded)).toBe(bytes);
  return { key: `k${i}`, notification: padded };
}

interface BatchInput {
  TopicArn: string;
  PublishBatchRequestEntries: Array<{ Id: string; Message: string; Subject?: string }>;
}
type BatchOutput = { Successful?: Array<{ Id: string; MessageId: string }>; Failed?: Array<{ Id: string; Code: string; SenderFault: boolean; Message: string }> };
/** Answers a call: an output, or throws { name, status } for an SNS error answer, or 'drop' to cut the connection. */
type Reply = (input: BatchInput) => Promise<BatchOutput | 'drop'>;

const xmlEscape = (v: string) => v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const members = (list: Array<Record<string, string | boolean>>) => list.map((m) => `<member>${Object.entries(m).map(([k, v]) => `<${k}>${xmlEscape(String(v))}</${k}>`).join('')}</member>`).join('');

/** A loopback SNS: parses each PublishBatch form into `calls` and answers with `reply` (all Successful by default). */
let fake: Server | undefined;
let fakeUrl = '';
let reply: Reply;
const calls: BatchInput[] = [];
const allOk: Reply = async (input) => ({ Successful: input.PublishBatchRequestEntries.map((e) => ({ Id: e.Id, MessageId: `m-${e.Id}` })), Failed: [] });

beforeAll(async () => {
  fake = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      const form = new URLSearchParams(body);
      expect(form.get('Action')).toBe('PublishBatch');
      expect(String(req.headers.authorization)).toMatch(/^AWS4-HMAC-SHA256 Credential=testing\/\d{8}\/us-east-1\/sns\/aws4_request/);
      const entries: BatchInput['PublishBatchRequestEntries'] = [];
      for (let n = 1; form.has(`PublishBatchRequestEntries.member.${n}.Id`); n++) {
        const m = `PublishBatchRequestEntries.member.${n}`;
        entries.push({ Id: form.get(`${m}.Id`)!, Message: form.get(`${m}.Message`)!, ...(form.has(`${m}.Subject`) ? { Subject: form.get(`${m}.Subject`)! } : {}) });
      }
      const input = { TopicArn: form.get('TopicArn')!, PublishBatchRequestEntries: entries };
      calls.push(input);
      reply(input).then(
        (out) => {
          if (out === 'drop') return req.socket.destroy();
          res.writeHead(200, { 'content-type': 'text/xml' });
          res.end(`<PublishBatchResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishBatchResult><Successful>${members(out.Successful ?? [])}</Successful><Failed>${members(out.Failed ?? [])}</Failed></PublishBatchResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PublishBatchResponse>`);
        },
        (err: { name: string; status: number; message: string }) => {
          res.writeHead(err.status, { 'content-type': 'text/xml' });
          res.end(`<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type><Code>${err.name}</Code><Message>${xmlEscape(err.message)}</Message></Error><RequestId>r</RequestId></ErrorResponse>`);
        },
      );
    });
  });
  await new Promise<void>((r) => fake!.listen(0, '127.0.0.1', r));
  fakeUrl = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
});
afterAll(() => fake?.close());

function stubSns(answer: Reply = allOk) {
  calls.length = 0;
  reply = answer;
  const sns = new SNSClient({ region: 'us-east-1', endpoint: fakeUrl, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
  return { sns, calls };
}

describe('publishNotifications against moto', () => {
  let moto: Moto;
  let aws: AwsFixture;

  beforeAll(async () => {
    moto = await startMoto();
    aws = awsClients(moto);
  });
  afterAll(async () => {
    aws?.destroy();
    await moto?.stop();
  });

  it('delivers 23 notifications by PublishBatch with the envelope, Subject and Message Publish delivers', async () => {
    const { topicArn, queueUrl } = await createTopicWithQueue(aws, 'notify-batch');
    const batch = items(23, topicArn);
    const outcomes = await publishNotifications(aws.sns, topicArn, batch);
    expect([...outcomes.keys()].sort()).toEqual(batch.map((b) => b.key).sort());
    for (const [key, outcome] of outcomes) expect(outcome, key).toMatchObject({ ok: true, snsMessageId: expect.any(String) });

    const received = await receiveSns(aws, queueUrl, 23);
    expect(received).toHaveLength(23);
    const byMessageId = new Map(batch.map(({ key, notification: n }) => [n.mail.messageId, { key, n }]));
    const snsIds = new Set([...outcomes.values()].map((o) => (o.ok ? o.snsMessageId : undefined)));
    for (const env of received) {
      expect(env.Type).toBe('Notification');
      expect(env.TopicArn).toBe(topicArn);
      expect(env.Subject).toBe(SNS_SUBJECT);
      const sent = byMessageId.get((JSON.parse(env.Message) as ReceivedNotification).mail.messageId);
      expect(sent).toBeDefined();
      expect(Buffer.from(env.Message, 'utf8').equals(Buffer.from(serializeNotification(sent!.n), 'utf8'))).toBe(true);
      expect(snsIds.has((env as unknown as { MessageId: string }).MessageId)).toBe(true);
      byMessageId.delete(sent!.n.mail.messageId);
    }
    expect(byMessageId.size).toBe(0);

    // A plain SDK Publish of the same notification, through the same subscription: the same envelope shape, Subject
    // and bytes.
    const single = notification(99, topicArn);
    await aws.sns.send(new PublishCommand({ TopicArn: topicArn, Subject: SNS_SUBJECT, Message: serializeNotification(single) }));
    const [viaPublish] = await receiveSns(aws, queueUrl, 1);
    expect(viaPublish).toBeDefined();
    expect(viaPublish!.Type).toBe('Notification');
    expect(viaPublish!.Subject).toBe(SNS_SUBJECT);
    expect(Buffer.from(viaPublish!.Message, 'utf8').equals(Buffer.from(serializeNotification(single), 'utf8'))).toBe(true);
    const keys = (env: object) => Object.keys(env).sort();
    for (const env of received) expect(keys(env)).toEqual(keys(viaPublish!));
  });
});

describe('publishNotifications batching (loopback SNS)', () => {
  it('sends at most 10 entries per call, in order, with batch-local Ids and the Publish Subject/Message', async () => {
    const { sns, calls } = stubSns();
    const batch = items(23);
    const outcomes = await publishNotifications(sns, TOPIC_ARN, batch);
    expect(calls.map((c) => c.PublishBatchRequestEntries.map((e) => e.Id))).toEqual([
      ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8', 'n9'],
      ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8', 'n9'],
      ['n0', 'n1', 'n2'],
    ]);
    const entries = calls.flatMap((c) => c.PublishBatchRequestEntries);
    expect(calls.every((c) => c.TopicArn === TOPIC_ARN)).toBe(true);
    expect(entries.map((e) => e.Subject)).toEqual(batch.map(() => SNS_SUBJECT));
    expect(entries.map((e) => e.Message)).toEqual(batch.map((b) => serializeNotification(b.notification)));
    expect(outcomes.get('k12')).toEqual({ ok: true, snsMessageId: 'm-n2' });
    expect(outcomes.size).toBe(23);
  });

  it('uses PublishBatch for a single item too', async () => {
    const { sns, calls } = stubSns();
    const outcomes = await publishNotifications(sns, TOPIC_ARN, items(1));
    expect(calls).toHaveLength(1);
    expect(outcomes.get('k0')).toEqual({ ok: true, snsMessageId: 'm-n0' });
  });

  it('makes no call for no items', async () => {
    const { sns, calls } = stubSns();
    expect((await publishNotifications(sns, TOPIC_ARN, [])).size).toBe(0);
    expect(calls).toHaveLength(0);
  });

  it('splits on 262,144 bytes of Message+Subject per call; an oversized entry goes alone', async () => {
    const { sns, calls } = stubSns();
    // 131,072 + 131,072 fills a call exactly; the next byte over starts a new one.
    await publishNotifications(sns, TOPIC_ARN, [sized(0, 131_072), sized(1, 131_072), sized(2, 131_073), sized(3, 131_072), sized(4, 300_000), sized(5, 5_000)]);
    expect(calls.map((c) => c.PublishBatchRequestEntries.length)).toEqual([2, 1, 1, 1, 1]);
    expect(calls.map((c) => c.PublishBatchRequestEntries.map((e) => Buffer.byteLength(e.Message) + Buffer.byteLength(e.Subject!)))).toEqual([
      [131_072, 131_072],
      [131_073],
      [131_072],
      [300_000],
      [5_000],
    ]);
  });
});

describe('publishNotifications failures (loopback SNS)', () => {
  it('reports entries listed in Failed with the Code as name, and entries with no result', async () => {
    const { sns } = stubSns(async () => ({
      Successful: [{ Id: 'n0', MessageId: 'm0' }],
      Failed: [{ Id: 'n1', Code: 'InternalError', SenderFault: false, Message: 'x' }],
    }));
    const outcomes = await publishNotifications(sns, TOPIC_ARN, items(3));
    expect(outcomes.get('k0')).toEqual({ ok: true, snsMessageId: 'm0' });
    const failed = outcomes.get('k1');
    expect(failed?.ok).toBe(false);
    if (failed?.ok !== false) return;
    expect(failed.error).toBeInstanceOf(Error);
    expect(failed.error.name).toBe('InternalError');
    expect(failed.error.message).toContain('x');
    expect(failed.error.message).toContain('SenderFault: false');
    const missing = outcomes.get('k2');
    expect(missing?.ok === false && missing.error.message).toBe('SNS PublishBatch returned no result for entry');
  });

  it('fails every entry of a rejected call, and still sends the later calls', async () => {
    let n = 0;
    const { sns, calls } = stubSns(async (input) => {
      if (n++ === 0) throw { name: 'AuthorizationError', status: 403, message: 'not allowed to publish' };
      return { Successful: input.PublishBatchRequestEntries.map((e) => ({ Id: e.Id, MessageId: `m-${e.Id}` })) };
    });
    const outcomes = await publishNotifications(sns, TOPIC_ARN, items(12));
    expect(calls).toHaveLength(2); // a client error is not retried
    for (let i = 0; i < 10; i++) expect(outcomes.get(`k${i}`)).toMatchObject({ ok: false, error: { name: 'AuthorizationErrorException', message: 'not allowed to publish', $metadata: { httpStatusCode: 403 } } });
    expect(outcomes.get('k10')).toEqual({ ok: true, snsMessageId: 'm-n0' });
    expect(outcomes.get('k11')).toEqual({ ok: true, snsMessageId: 'm-n1' });
  });

  it('retries throttling, server errors and dropped connections, then succeeds', async () => {
    let n = 0;
    const { sns, calls } = stubSns(async (input) => {
      n++;
      if (n === 1) throw { name: 'Throttled', status: 400, message: 'Rate exceeded' };
      if (n === 2) return 'drop';
      return allOk(input);
    });
    const outcomes = await publishNotifications(sns, TOPIC_ARN, items(3));
    expect(calls).toHaveLength(3);
    expect(calls.every((c) => c.PublishBatchRequestEntries.length === 3)).toBe(true);
    expect([...outcomes.values()].every((o) => o.ok)).toBe(true);
  });

  it('gives up after three attempts with an Error for every entry', async () => {
    const { sns, calls } = stubSns(async () => 'drop');
    const outcome = (await publishNotifications(sns, TOPIC_ARN, items(1))).get('k0');
    expect(calls).toHaveLength(3);
    expect(outcome?.ok === false && outcome.error).toBeInstanceOf(Error);
  });

  it('tells a refusal of the notification itself (never retried) from what an operator can fix or time heals', async () => {
    const { sns } = stubSns(async () => ({
      Failed: [
        { Id: 'n0', Code: 'InvalidParameter', SenderFault: true, Message: 'Invalid parameter: Message too long' },
        { Id: 'n1', Code: 'InternalError', SenderFault: false, Message: 'x' },
        { Id: 'n2', Code: 'KMSAccessDenied', SenderFault: true, Message: 'the topic key is not usable' },
      ],
    }));
    const outcomes = await publishNotifications(sns, TOPIC_ARN, items(3));
    const permanent = (k: string) => {
      const o = outcomes.get(k);
      return o?.ok === false && isPermanentSnsRefusal(o.error);
    };
    expect([permanent('k0'), permanent('k1'), permanent('k2')]).toEqual([true, false, false]);

    for (const [name, status, expected] of [
      ['InvalidParameter', 400, true],
      ['ParameterValueInvalid', 400, true],
      ['AuthorizationError', 403, false],
      ['NotFound', 404, false],
      ['Throttled', 400, false],
    ] as const) {
      const { sns: one } = stubSns(async () => {
        throw { name, status, message: 'refused' };
      });
      const o = (await publishNotifications(one, TOPIC_ARN, items(1))).get('k0');
      expect(o?.ok === false && isPermanentSnsRefusal(o.error), name).toBe(expected);
    }
  });

  it('a call SNS finds too long (BatchRequestTooLong) goes again an entry per call', async () => {
    const { sns, calls } = stubSns(async (input) => {
      if (input.PublishBatchRequestEntries.length > 1) throw { name: 'BatchRequestTooLong', status: 400, message: 'The length of all the messages put together is more than the limit.' };
      return allOk(input);
    });
    const outcomes = await publishNotifications(sns, TOPIC_ARN, items(3));
    expect(calls.map((c) => c.PublishBatchRequestEntries.map((e) => e.Id))).toEqual([['n0', 'n1', 'n2'], ['n0'], ['n0'], ['n0']]);
    expect([...outcomes.values()].every((o) => o.ok)).toBe(true);
    // Alone and still too long: refused for good.
    const { sns: alone } = stubSns(async () => {
      throw { name: 'BatchRequestTooLong', status: 400, message: 'too long' };
    });
    const o = (await publishNotifications(alone, TOPIC_ARN, items(1))).get('k0');
    expect(o?.ok === false && isPermanentSnsRefusal(o.error)).toBe(true);
  });
});
