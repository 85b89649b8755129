/**
 * The Intake as a source that is not SMTP uses it (replay): envelope and rules given, no client, a caller-chosen
 * message id and receipt time; and the refusals every source hears — too big, DATA that would continue the header
 * block, a body that fails before its end — each leaving nothing behind. Real spool, real Redis.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Intake, type IntakeMessage } from '../../gateway/intake/intake.js';
import { Enqueuer } from '../../gateway/queue/enqueue.js';
import { DELIVERIES_QUEUE, type DeliveryJobData } from '../../gateway/queue/jobs.js';
import { silentLogger } from '../../gateway/runtime/log.js';
import { messageIdFromBytes } from '../../shared/ses/message-id.js';
import { tempDir } from '../support/files.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { spooledFiles, spooledMessage, TestSpool } from '../support/spool.js';

let redis: RedisServer;
let dir: Awaited<ReturnType<typeof tempDir>>;
let spool: TestSpool;
let jobs: Enqueuer;
let intake: Intake;
const PREFIX = 'intake-test';

beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedis(), tempDir('mailroom-intake-')]);
  spool = new TestSpool(dir.path, { spareFiles: true });
  await spool.init({ clearIncoming: true });
  jobs = new Enqueuer({ redis: { url: redis.url, cluster: false }, prefix: PREFIX, timeoutMs: 5_000, policy: { attempts: 3, backoffBaseMs: 100, keepCompleted: 10 } }, silentLogger());
  await jobs.ready(10_000);
  intake = new Intake({ directory: spool.directory, writer: spool.writer, jobs, log: silentLogger(), jobsTimeoutMs: 5_000, maxMessageBytes: 1_000, identity: { byHost: 'mx.intake.test', accountId: '123456789012', region: 'us-east-1' } });
}, 60_000);

afterAll(async () => {
  await intake?.settled();
  intake?.close();
  await jobs?.close();
  await spool?.close();
  await redis?.stop();
  await dir?.remove();
});

const message = (over: Partial<IntakeMessage> = {}): IntakeMessage => ({
  mailFrom: 'archive@origin.example',
  rules: [{ name: 'replayed', recipients: ['user@example.com'], scanEnabled: false, s3Action: { bucketName: 'bucket-r', objectKeyPrefix: 'r/' } }],
  ...over,
});

describe('the intake for a source that is not SMTP', () => {
  it('keeps the caller\'s message id and receipt time, records no client, and adds the delivery job', async () => {
    const id = messageIdFromBytes(createHash('sha512').update('a replayed message').digest());
    const receivedAt = new Date('2019-04-23T14:32:52.123Z');
    const data = Buffer.from('Subject: from the archive\r\n\r\nbody\r\n');
    const outcome = await intake.accept(message({ messageId: id, receivedAt }), Readable.from([data]));
    expect(outcome).toEqual({ accepted: true, messageId: id, dataLength: data.length });
    const file = (await spooledFiles(dir.path)).map((n) => n.replace(/\.msg$/, '')).find(() => true)!;
    const entries = (await spool.openFile(file)).entries;
    const entry = entries.find((e) => e.record.envelope.messageId === id)!;
    expect(entry.record.envelope).toEqual({ messageId: id, receivedAt: receivedAt.toISOString(), mailFrom: 'archive@origin.example', byHost: 'mx.intake.test', accountId: '123456789012', region: 'us-east-1' });
    const msg = await spooledMessage(spool, file, entry.at, id);
    expect(msg.data?.equals(data)).toBe(true);
    const deliveries = new Queue(DELIVERIES_QUEUE, { connection: { url: redis.url } as never, prefix: PREFIX });
    try {
      const job = await deliveries.getJob(file);
      expect((job?.data as DeliveryJobData).messages.map((m) => m.envelope.messageId)).toEqual([id]);
    } finally {
      await deliveries.close();
    }
  });

  it('refuses what no source may store, keeping nothing: too big, DATA that would continue the header block, a body that fails, no rule', async () => {
    const before = await spooledFiles(dir.path);
    const tooBig = await intake.accept(message(), Readable.from([Buffer.alloc(600, 97), Buffer.alloc(600, 97)]));
    expect(tooBig).toMatchObject({ accepted: false, refusal: { kind: 'too-big', dataLength: 1_200, limitBytes: 1_000 } });
    const folded = await intake.accept(message(), Readable.from([Buffer.from(' PASS\r\nSubject: x\r\n\r\nbody\r\n')]));
    expect(folded).toMatchObject({ accepted: false, refusal: { kind: 'malformed', reason: expect.stringMatching(/starts with a space or tab/) } });
    const failing = new Readable({
      read() {
        this.push(Buffer.from('Subject: half\r\n'));
        this.destroy(new Error('the archive was cut short'));
      },
    });
    const failed = await intake.accept(message(), failing);
    expect(failed).toMatchObject({ accepted: false, refusal: { kind: 'body-failed', reason: 'the archive was cut short' } });
    const nobody = await intake.accept(message({ rules: [] }), Readable.from([Buffer.from('Subject: x\r\n\r\n')]));
    expect(nobody).toMatchObject({ accepted: false, refusal: { kind: 'no-rule' } });
    await intake.settled();
    expect(await spooledFiles(dir.path)).toEqual(before);
    expect(intake.isBusy(tooBig.messageId) || intake.isBusy(failed.messageId)).toBe(false);
  });
});
