/**
 * Observability: Prometheus /metrics counts what happened (accepted, refused by reason, deliveries, upload bytes and
 * latency, S3/KMS/SNS errors, queue depth, spool), /healthz and /readyz answer (and /readyz says which dependency is
 * missing), and the JSON log lines about a message carry its id and nothing of its body or header values.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivingConfigInput } from '../../shared/config/index.js';
import { isMessageId } from '../../shared/ses/message-id.js';
import { startGateway, type RunningGateway } from '../../gateway/gateway.js';
import { ReadinessCheck } from '../../gateway/observability/health.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/files.js';
import { ACCOUNT, capturedLog, createBuckets, createTopicWithQueue, listKeys, rawMessage, RawSmtp, REGION, runtimeFor, sendRaw, waitFor, startBackends, type Backends, type SendResult } from './helpers.js';

let backends: Backends;

const BODY_MARK = 'BODY-MARK-7f3a9c';
const HEADER_MARK = 'HEADER-MARK-51be0d';
const MISSING_KEY = `arn:aws:kms:${REGION}:${ACCOUNT}:key/00000000-0000-4000-8000-000000000000`;

beforeAll(async () => {
  backends = await startBackends('mailroom-obs-', { motoEnv: true });
  await createBuckets(backends.aws, 'obs', 'obs-t');
}, 120_000);

afterAll(async () => {
  await backends?.stop();
});

interface Answer {
  status: number;
  body: string;
  type: string;
}

async function get(port: number, path: string): Promise<Answer> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(10_000) });
  return { status: r.status, body: await r.text(), type: r.headers.get('content-type') ?? '' };
}

/** The value of one series in exposition text (labels exactly as rendered), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

// One gateway per layout, started once: the tests below read what its metrics, health answers and log lines show
// after the same mail (four accepted for four rules, two refused), then change its world (the missing bucket
// appears, Redis goes away) in the order they are written. With the workers in a thread of their own (`mailroom
// gateway`'s default on machines with two CPUs) their log lines and metric events travel to the SMTP thread's logger
// and registry: the same assertions hold.
describe.each([
  { layout: 'workers in the SMTP thread', deliveryThread: false, v: '' },
  { layout: 'workers in a delivery thread', deliveryThread: true, v: '-t' },
])('metrics, health and logs ($layout)', ({ deliveryThread, v }) => {
  let gw: RunningGateway | undefined;
  let http: number;
  let spoolDir: string;
  let redisStopped = false;
  // At debug: every line, per-message ones included, is checked.
  const { log, lines, raw } = capturedLog('debug');
  /** What /healthz, /metrics and /readyz answered before any mail. */
  let before: { healthz: Answer; metrics: Answer; readyz: Answer };
  /** The four accepted messages (each for one rule), the DATA each was sent with, and when the first send began. */
  let sent: { ok: SendResult; lost: SendResult; nokey: SendResult; notopic: SendResult };
  const sentData: string[] = [];
  let sentAt: number;
  /** The replies of the session that met the refusals. */
  let refusalReplies: { mailFrom: string; unknownRcpt: string; knownRcpt: string; oversizeData: string };
  /** /metrics once the deliveries settled: ok delivered; nobucket, nokey and notopic failed twice each. */
  let settled: Answer;

  const ids = () => new Set(Object.values(sent).map((s) => s.messageId));
  const byMsg = (m: string) => lines.filter((l) => l.msg === m);
  /** Spool file id of each accepted message, as its `accepted` line names it. */
  const fileOf = () => new Map(byMsg('accepted').map((l) => [l.messageId as string, l.spoolFile as string]));

  beforeAll(async () => {
    const topic = await createTopicWithQueue(backends.aws, `obs${v}`);
    spoolDir = join(backends.dir.path, `spool${v}`);
    const config: ReceivingConfigInput = {
      region: REGION,
      accountId: ACCOUNT,
      ruleSetName: 'obs',
      maxMessageSize: 64 * 1024,
      rules: [
        { name: 'ok', recipients: ['ok.example'], s3Action: { bucketName: `obs${v}`, objectKeyPrefix: 'ok', topicArn: topic.topicArn } },
        { name: 'nobucket', recipients: ['missing.example'], s3Action: { bucketName: `obs-missing${v}`, objectKeyPrefix: 'm' } },
        { name: 'nokey', recipients: ['kms.example'], s3Action: { bucketName: `obs${v}`, objectKeyPrefix: 'k', kmsKeyArn: MISSING_KEY } },
        { name: 'notopic', recipients: ['sns.example'], s3Action: { bucketName: `obs${v}`, objectKeyPrefix: 's', topicArn: `arn:aws:sns:${REGION}:${ACCOUNT}:no-such-topic` } },
      ],
      gateway: {
        hostname: 'mx.obs.test',
        nodeId: 'obs-1',
        spoolDir,
        smtp: { port: 0, reverseDns: false },
        redis: { url: backends.redis.url, prefix: `{obs${v}}` },
        worker: { concurrency: 4, attempts: 2, backoffBaseMs: 100, backoffMaxMs: 200, shutdownTimeoutMs: 2_000 },
        http: { port: 0, readyCacheMs: 100, checkTimeoutMs: 2_000 },
      },
    };
    gw = await startGateway(runtimeFor(config), { smtp: true, workers: true, deliveryThread }, log);
    const port = gw.smtpAddress!.port;
    http = gw.httpAddress!.port;
    before = { healthz: await get(http, '/healthz'), metrics: await get(http, '/metrics'), readyz: await get(http, '/readyz') };

    const send = (to: string, subject: string) => {
      const data = rawMessage([['Subject', subject], ['X-Private', HEADER_MARK]], `${BODY_MARK}\r\n`);
      sentData.push(data);
      return sendRaw(port, { from: 'sender@origin.example', to: [to] }, data);
    };
    sentAt = Date.now();
    sent = {
      ok: await send('user@ok.example', 'fine'),
      lost: await send('user@missing.example', 'no bucket'),
      nokey: await send('user@kms.example', 'no key'),
      notopic: await send('user@sns.example', 'no topic'),
    };

    // Refusals: an unknown recipient and an oversize message.
    const c = await RawSmtp.connect(port);
    await c.command('EHLO client.example.net');
    const mailFrom = await c.command('MAIL FROM:<sender@origin.example>');
    const unknownRcpt = await c.command('RCPT TO:<nobody@elsewhere.example>');
    const knownRcpt = await c.command('RCPT TO:<user@ok.example>');
    const oversizeData = await c.data(`Subject: big\r\n\r\n${'y'.repeat(100 * 1024)}\r\n`);
    c.close();
    refusalReplies = { mailFrom, unknownRcpt, knownRcpt, oversizeData };

    settled = await waitFor(
      'deliveries settled',
      async () => {
        const m = await get(http, '/metrics');
        // The in-process counters move when the worker finishes a job; BullMQ's failed set (sampled from Redis)
        // may trail by a moment, so wait for both views to agree.
        const done =
          sample(m.body, 'mailroom_deliveries_total{result="failed"}') === 3 &&
          sample(m.body, 'mailroom_deliveries_total{result="delivered"}') === 1 &&
          sample(m.body, 'mailroom_queue_jobs{queue="deliveries",state="failed"}') === 3;
        return done ? m : undefined;
      },
      30_000,
      200,
    );
  }, 90_000);

  afterAll(async () => {
    if (redisStopped) await backends.redis.restart();
    await gw?.stop();
  });

  describe('before any mail', () => {
    it('/healthz answers ok', () => {
      expect(before.healthz).toMatchObject({ status: 200, body: 'ok\n' });
    });

    it('the spool has no age', () => {
      expect(sample(before.metrics.body, 'mailroom_spool_oldest_seconds')).toBe(0);
    });

    it("/readyz is 503 while a rule's bucket does not exist, and names that bucket with S3's 404", () => {
      expect(before.readyz.status).toBe(503);
      const nr = JSON.parse(before.readyz.body) as { ready: boolean; checks: Record<string, string> };
      expect(nr.ready).toBe(false);
      expect(nr.checks).toMatchObject({ redis: 'ok', spool: 'ok', [`s3:obs${v}`]: 'ok' });
      expect(nr.checks[`s3:obs-missing${v}`]).toMatch(/404/);
    });
  });

  describe('/metrics after four accepted and two refused messages', () => {
    it('is Prometheus text format 0.0.4', () => {
      expect(settled.type).toMatch(/^text\/plain; version=0\.0\.4/);
    });

    it('counts each accepted message and its DATA bytes', () => {
      expect(Object.values(sent).map((s) => isMessageId(s.messageId))).toEqual([true, true, true, true]);
      expect(sample(settled.body, 'mailroom_smtp_accepted_total')).toBe(4);
      expect(sample(settled.body, 'mailroom_smtp_accepted_bytes_total')).toBe(sentData.reduce((n, d) => n + Buffer.byteLength(d), 0));
    });

    it('counts refusals by class, code and reason: an unknown mailbox (550 5.1.1), an oversize message (552 5.3.4)', () => {
      expect(refusalReplies.mailFrom).toMatch(/^250/);
      expect(refusalReplies.unknownRcpt).toMatch(/^550 5\.1\.1/);
      expect(refusalReplies.knownRcpt).toMatch(/^250/);
      expect(refusalReplies.oversizeData).toMatch(/^552 5\.3\.4/);
      expect(sample(settled.body, 'mailroom_smtp_rejected_total{class="5xx",code="550",reason="bad_mailbox"}')).toBe(1);
      expect(sample(settled.body, 'mailroom_smtp_rejected_total{class="5xx",code="552",reason="too_big"}')).toBe(1);
    });

    it('counts deliveries by result: one delivered, three retried once and then failed, none in flight', () => {
      expect(sample(settled.body, 'mailroom_deliveries_total{result="delivered"}')).toBe(1);
      expect(sample(settled.body, 'mailroom_deliveries_total{result="retry"}')).toBe(3);
      expect(sample(settled.body, 'mailroom_deliveries_total{result="failed"}')).toBe(3);
      expect(sample(settled.body, 'mailroom_deliveries_in_flight')).toBe(0);
    });

    it('times the two uploads (ok, and notopic whose object is stored though its publish fails) and counts the bytes stored', async () => {
      expect(sample(settled.body, 'mailroom_upload_duration_seconds_count')).toBe(2);
      expect(sample(settled.body, 'mailroom_upload_duration_seconds_bucket{le="+Inf"}')).toBe(2);
      const stored = await Promise.all(
        [`ok/${sent.ok.messageId}`, `s/${sent.notopic.messageId}`].map(async (Key) => (await backends.aws.s3.send(new HeadObjectCommand({ Bucket: `obs${v}`, Key }))).ContentLength!),
      );
      expect(sample(settled.body, 'mailroom_upload_bytes_total')).toBe(stored[0]! + stored[1]!);
    });

    it('counts AWS errors by service, operation and error name: the missing bucket, KMS key and topic, once per attempt', () => {
      expect(sample(settled.body, 'mailroom_s3_errors_total{operation="PutObject",error="NoSuchBucket"}')).toBe(2);
      expect(sample(settled.body, 'mailroom_kms_errors_total{operation="GenerateDataKey",error="NotFoundException"}')).toBe(2);
      expect(sample(settled.body, 'mailroom_sns_errors_total{operation="PublishBatch",error="NotFoundException"}')).toBe(2);
    });

    it('samples the queues at scrape: the three failed deliveries, nothing waiting', () => {
      expect(sample(settled.body, 'mailroom_queue_jobs{queue="deliveries",state="failed"}')).toBe(3);
      expect(sample(settled.body, 'mailroom_queue_jobs{queue="deliveries",state="waiting"}')).toBe(0);
      // Each file had one rule, so its delivery job releases it: no release parents in the spool queue.
      expect(sample(settled.body, 'mailroom_queue_jobs{queue="spool",state="waiting"}')).toBe(0);
    });

    it('gauges the spool: the files of the three undelivered messages, their bytes on disk, the age of the oldest', async () => {
      await waitFor('spool gauge', async () => sample((await get(http, '/metrics')).body, 'mailroom_spool_files') === 3, 10_000, 500);
      const spooled = (await get(http, '/metrics')).body;
      const files = fileOf();
      const onDisk = await Promise.all([sent.lost, sent.nokey, sent.notopic].map(async (s) => (await stat(join(spoolDir, 'messages', `${files.get(s.messageId)}.msg`))).size));
      expect(sample(spooled, 'mailroom_spool_bytes')).toBe(onDisk.reduce((a, b) => a + b, 0));
      // The three stuck messages' files have waited since they were written: their age, no more.
      const oldest = sample(spooled, 'mailroom_spool_oldest_seconds')!;
      expect(oldest).toBeGreaterThan(0);
      expect(oldest).toBeLessThanOrEqual((Date.now() - sentAt) / 1000 + 1);
    });

    it("names the node in mailroom_node_info", () => {
      expect(sample(settled.body, 'mailroom_node_info{node_id="obs-1"}')).toBe(1);
    });

    it('counts the batch files the accepted messages went to disk in, each written into a spare or created', () => {
      // Sent one after another, each message had a spool round, and so a batch file, of its own.
      expect(new Set(fileOf().values()).size).toBe(4);
      expect(sample(settled.body, 'mailroom_spool_batch_files_total{file="spare"}')! + sample(settled.body, 'mailroom_spool_batch_files_total{file="created"}')!).toBe(4);
    });

    it("stores the delivered message under its rule's prefix", async () => {
      expect(await listKeys(backends.aws, `obs${v}`, 'ok/')).toEqual([`ok/${sent.ok.messageId}`]);
    });
  });

  describe('log lines', () => {
    it('carry no body and no header value', () => {
      for (const l of raw) {
        expect(l).not.toContain(BODY_MARK);
        expect(l).not.toContain(HEADER_MARK);
      }
    });

    it('all name the node', () => {
      for (const l of lines) expect(l.node, JSON.stringify(l)).toBe('obs-1');
    });

    it('mark a delivery made in the delivery thread as such, and only such a delivery', () => {
      expect(lines.some((l) => l.msg === 'delivered' && l.thread === 'delivery')).toBe(deliveryThread);
    });

    it('name each accepted message and its spool file (a batch file named by its spare\'s id, not after a message)', () => {
      expect(new Set(byMsg('accepted').map((l) => l.messageId))).toEqual(ids());
      const files = fileOf();
      for (const id of ids()) expect(isMessageId(files.get(id) ?? '')).toBe(true);
    });

    it('name the delivered message, its rule and its job, which a file with one rule names after the file', () => {
      expect(byMsg('delivered').map((l) => [l.messageId, l.rule, l.jobId])).toEqual([[sent.ok.messageId, 'ok', fileOf().get(sent.ok.messageId)]]);
    });

    it('of a failed job list its undelivered messages and name the job: two attempts for each of the three', () => {
      const failures = [...byMsg('delivery failed; will retry'), ...byMsg('delivery failed for good; spool file kept; retry with `mailroom queue retry`')];
      expect(failures).toHaveLength(6);
      // One message each here: every message was alone in its spool file.
      for (const f of failures) {
        const [messageId, ...more] = f.messageIds as string[];
        expect(more).toEqual([]);
        expect(ids().has(messageId!)).toBe(true);
        expect(f.jobId).toBe(fileOf().get(messageId!));
      }
    });

    it("of each attempt name the message it did not deliver", () => {
      const attempts = byMsg('message not delivered in this attempt');
      expect(attempts).toHaveLength(6);
      for (const a of attempts) expect(ids().has(a.messageId as string)).toBe(true);
    });
  });

  describe('as the world changes', () => {
    it('/readyz turns ready once the missing bucket exists', async () => {
      await backends.aws.s3.send(new CreateBucketCommand({ Bucket: `obs-missing${v}` }));
      const ready = await waitFor('ready', async () => {
        const r = await get(http, '/readyz');
        return r.status === 200 ? r : undefined;
      }, 10_000, 200);
      expect(JSON.parse(ready.body)).toMatchObject({ ready: true, checks: { redis: 'ok', spool: 'ok', [`s3:obs${v}`]: 'ok', [`s3:obs-missing${v}`]: 'ok' } });
    });

    it('with Redis gone, /readyz says in words that Redis does not answer at its URL; /healthz and /metrics still answer', async () => {
      await backends.redis.stop();
      redisStopped = true;
      const down = await waitFor('not ready without redis', async () => {
        const r = await get(http, '/readyz');
        return r.status === 503 ? r : undefined;
      }, 10_000, 200);
      // In words, not ioredis's ("Stream isn't writeable and enableOfflineQueue options is false").
      expect((JSON.parse(down.body) as { checks: Record<string, string> }).checks.redis).toMatch(new RegExp(`^Redis at ${backends.redis.url.replace(/[/.]/g, '\\$&')}/? does not answer`));
      expect(down.body).not.toMatch(/Stream isn't writeable|enableOfflineQueue/);
      // The process is fine.
      expect((await get(http, '/healthz')).status).toBe(200);
      // Scraping still works: queue gauges keep their last value rather than failing the scrape.
      expect((await get(http, '/metrics')).status).toBe(200);
    });

    it('a shutdown that begins while Redis is away still ends (BullMQ\'s close alone would wait forever)', async () => {
      if (!redisStopped) {
        await backends.redis.stop();
        redisStopped = true;
      }
      const stopping = gw!.stop();
      await backends.redis.restart();
      redisStopped = false;
      await stopping;
      gw = undefined;
    });
  });
});

describe('/readyz while Redis is away', () => {
  it('says plainly that Redis does not answer at the URL, without its password', async () => {
    const port = await freePort();
    const dir = await tempDir();
    const check = new ReadinessCheck({ redis: { url: `redis://relay:pa55-w0rd@127.0.0.1:${port}`, cluster: false }, spoolDir: dir.path, buckets: [], timeoutMs: 2_000, cacheMs: 0, draining: () => false });
    try {
      // The first look connects and is refused; later ones find the client reconnecting (where a ping says only
      // "Stream isn't writeable…"): both name the cause.
      for (let i = 0; i < 3; i++) {
        const r = await check.check();
        expect(r.ready).toBe(false);
        expect(r.checks.spool).toBe('ok');
        expect(r.checks.redis).toBe(`Redis at redis://relay:***@127.0.0.1:${port} does not answer: nothing listens there (connect ECONNREFUSED 127.0.0.1:${port})`);
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    } finally {
      check.close();
      await dir.remove();
    }
  });
});
