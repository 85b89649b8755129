/**
 * publishNotifications (SNS PublishBatch) against moto: subscribers get the same envelope, Subject and Message bytes
 * as from publishNotification (Publish). Splitting and per-entry/per-call failures are checked with a stub client.
 */
import { PublishBatchCommand, type PublishBatchCommandInput, type PublishBatchCommandOutput, type SNSClient } from '@aws-sdk/client-sns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildReceivedNotification, serializeNotification, SNS_SUBJECT, type ReceivedNotification } from '../../shared/notification/index.js';
import { publishNotification, publishNotifications, type NotificationToPublish } from '../../gateway/worker/notify.js';
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

type Reply = (input: PublishBatchCommandInput) => Promise<Partial<PublishBatchCommandOutput>>;

/** A stand-in SNSClient that records each PublishBatch input and answers with `reply` (all Successful by default). */
function stubSns(reply: Reply = async (input) => ({ Successful: input.PublishBatchRequestEntries!.map((e) => ({ Id: e.Id, MessageId: `m-${e.Id}` })), Failed: [] })) {
  const calls: PublishBatchCommandInput[] = [];
  const sns = {
    send: async (command: unknown) => {
      expect(command).toBeInstanceOf(PublishBatchCommand);
      const input = (command as PublishBatchCommand).input;
      calls.push(input);
      return reply(input);
    },
  } as unknown as SNSClient;
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

  it('delivers 23 notifications in 3 PublishBatch calls with the envelope, Subject and Message Publish delivers', async () => {
    const { topicArn, queueUrl } = await createTopicWithQueue(aws, 'notify-batch');
    const batchSizes: number[] = [];
    aws.sns.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'PublishBatchCommand') batchSizes.push((args.input as PublishBatchCommandInput).PublishBatchRequestEntries!.length);
        return next(args);
      },
      { step: 'initialize', name: 'countPublishBatch' },
    );

    const batch = items(23, topicArn);
    const outcomes = await publishNotifications(aws.sns, topicArn, batch);
    expect(batchSizes).toEqual([10, 10, 3]);
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

    // The single-publish path, through the same subscription: the same envelope shape, Subject and bytes.
    const single = notification(99, topicArn);
    await publishNotification(aws.sns, topicArn, single);
    const [viaPublish] = await receiveSns(aws, queueUrl, 1);
    expect(viaPublish).toBeDefined();
    expect(viaPublish!.Type).toBe('Notification');
    expect(viaPublish!.Subject).toBe(SNS_SUBJECT);
    expect(Buffer.from(viaPublish!.Message, 'utf8').equals(Buffer.from(serializeNotification(single), 'utf8'))).toBe(true);
    const keys = (env: object) => Object.keys(env).sort();
    for (const env of received) expect(keys(env)).toEqual(keys(viaPublish!));
  });
});

describe('publishNotifications batching (stub client)', () => {
  it('sends at most 10 entries per call, in order, with batch-local Ids and the Publish Subject/Message', async () => {
    const { sns, calls } = stubSns();
    const batch = items(23);
    const outcomes = await publishNotifications(sns, TOPIC_ARN, batch);
    expect(calls.map((c) => c.PublishBatchRequestEntries!.map((e) => e.Id))).toEqual([
      ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8', 'n9'],
      ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8', 'n9'],
      ['n0', 'n1', 'n2'],
    ]);
    const entries = calls.flatMap((c) => c.PublishBatchRequestEntries!);
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
    expect(calls.map((c) => c.PublishBatchRequestEntries!.length)).toEqual([2, 1, 1, 1, 1]);
    expect(calls.map((c) => c.PublishBatchRequestEntries!.map((e) => Buffer.byteLength(e.Message!) + Buffer.byteLength(e.Subject!)))).toEqual([
      [131_072, 131_072],
      [131_073],
      [131_072],
      [300_000],
      [5_000],
    ]);
  });
});

describe('publishNotifications failures (stub client)', () => {
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
    const boom = Object.assign(new Error('throttled'), { name: 'Throttled' });
    const { sns, calls } = stubSns(async (input) => {
      if (n++ === 0) throw boom;
      return { Successful: input.PublishBatchRequestEntries!.map((e) => ({ Id: e.Id, MessageId: `m-${e.Id}` })) };
    });
    const outcomes = await publishNotifications(sns, TOPIC_ARN, items(12));
    expect(calls).toHaveLength(2);
    for (let i = 0; i < 10; i++) expect(outcomes.get(`k${i}`)).toEqual({ ok: false, error: boom });
    expect(outcomes.get('k10')).toEqual({ ok: true, snsMessageId: 'm-n0' });
    expect(outcomes.get('k11')).toEqual({ ok: true, snsMessageId: 'm-n1' });
  });

  it('turns a non-Error rejection into an Error', async () => {
    const { sns } = stubSns(async () => {
      throw 'socket hang up'; // eslint-disable-line @typescript-eslint/only-throw-error
    });
    const outcome = (await publishNotifications(sns, TOPIC_ARN, items(1))).get('k0');
    expect(outcome?.ok === false && outcome.error).toBeInstanceOf(Error);
    expect(outcome?.ok === false && outcome.error.message).toBe('socket hang up');
  });
});
