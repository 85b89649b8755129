/**
 * Observability: Prometheus /metrics counts what happened (accepted, refused by reason, deliveries, upload bytes and
 * latency, S3/KMS/SNS errors, queue depth, spool), /healthz and /readyz answer (and /readyz says which dependency is
 * missing), and the JSON log lines about a message carry its id and nothing of its body or header values.
 */
import { join } from 'node:path';
import { isMessageId } from '../../shared/ses/message-id.js';
import { Writable } from 'node:stream';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivingConfigInput } from '../../shared/config/index.js';
import { startGateway, type RunningGateway } from '../../gateway/gateway.js';
import { streamLogger } from '../../gateway/runtime/log.js';
import { ReadinessCheck } from '../../gateway/observability/health.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/files.js';
import { ACCOUNT, createBuckets, createTopicWithQueue, listKeys, rawMessage, RawSmtp, REGION, runtimeFor, sendRaw, waitFor, startBackends, type Backends } from './helpers.js';

let backends: Backends;
let gw: RunningGateway | undefined;

const BODY_MARK = 'BODY-MARK-7f3a9c';
const HEADER_MARK = 'HEADER-MARK-51be0d';
const MISSING_KEY = `arn:aws:kms:${REGION}:${ACCOUNT}:key/00000000-0000-4000-8000-000000000000`;

beforeAll(async () => {
  backends = await startBackends('mailroom-obs-', { motoEnv: true });
  await createBuckets(backends.aws, 'obs', 'obs-t');
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  await backends?.stop();
});

async function get(port: number, path: string): Promise<{ status: number; body: string; type: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(10_000) });
  return { status: r.status, body: await r.text(), type: r.headers.get('content-type') ?? '' };
}

/** The value of one series in exposition text (labels exactly as rendered), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics, health and logs', () => {
  // With the workers in a thread of their own (`mailroom gateway`'s default on machines with two CPUs) their log lines
  // and metric events travel to the SMTP thread's logger and registry: the same assertions hold.
  it.each([
    ['workers in the SMTP thread', false, ''],
    ['workers in a delivery thread', true, '-t'],
  ])('counts accepted and refused mail, deliveries, upload bytes/latency and AWS errors; /readyz names what is missing (%s)', async (_, deliveryThread, v) => {
    const lines: Array<Record<string, unknown>> = [];
    const rawLog: string[] = [];
    const topic = await createTopicWithQueue(backends.aws, `obs${v}`);
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
        spoolDir: join(backends.dir.path, `spool${v}`),
        smtp: { port: 0, reverseDns: false },
        redis: { url: backends.redis.url, prefix: `{obs${v}}` },
        worker: { concurrency: 4, attempts: 2, backoffBaseMs: 100, backoffMaxMs: 200, shutdownTimeoutMs: 2_000 },
        http: { port: 0, readyCacheMs: 100, checkTimeoutMs: 2_000 },
      },
    };
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) {
          rawLog.push(l);
          lines.push(JSON.parse(l) as Record<string, unknown>);
        }
        cb();
      },
    });
    gw = await startGateway(runtimeFor(config), { smtp: true, workers: true, deliveryThread }, streamLogger(sink));
    const port = gw.smtpAddress!.port;
    const http = gw.httpAddress!.port;

    expect(await get(http, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    // Nothing spooled yet: no age.
    expect(sample((await get(http, '/metrics')).body, 'mailroom_spool_oldest_seconds')).toBe(0);
    // The rule bucket obs-missing does not exist yet: not ready, and the answer says which check failed.
    const notReady = await get(http, '/readyz');
    expect(notReady.status).toBe(503);
    const nr = JSON.parse(notReady.body) as { ready: boolean; checks: Record<string, string> };
    expect(nr.checks).toMatchObject({ redis: 'ok', spool: 'ok', [`s3:obs${v}`]: 'ok' });
    expect(nr.checks[`s3:obs-missing${v}`]).toMatch(/404/);

    const send = (to: string, subject: string) =>
      sendRaw(port, { from: 'sender@origin.example', to: [to] }, rawMessage([['Subject', subject], ['X-Private', HEADER_MARK]], `${BODY_MARK}\r\n`));
    const sentAt = Date.now();
    const ok = await send('user@ok.example', 'fine');
    const lost = await send('user@missing.example', 'no bucket');
    const nokey = await send('user@kms.example', 'no key');
    const notopic = await send('user@sns.example', 'no topic');
    for (const s of [ok, lost, nokey, notopic]) expect(s.messageId).not.toBe('');

    // Refusals: an unknown recipient (550 5.1.1) and an oversize message (552 5.3.4).
    const c = await RawSmtp.connect(port);
    await c.command('EHLO client.example.net');
    expect(await c.command('MAIL FROM:<sender@origin.example>')).toMatch(/^250/);
    expect(await c.command('RCPT TO:<nobody@elsewhere.example>')).toMatch(/^550 5\.1\.1/);
    expect(await c.command('RCPT TO:<user@ok.example>')).toMatch(/^250/);
    expect(await c.data(`Subject: big\r\n\r\n${'y'.repeat(100 * 1024)}\r\n`)).toMatch(/^552 5\.3\.4/);
    c.close();

    // ok delivers; nobucket, nokey and notopic fail twice each and land in the failed set.
    const metrics = await waitFor(
      'deliveries settled',
      async () => {
        const m = await get(http, '/metrics');
        // The in-process counters move when the worker finishes a job; BullMQ's failed set (sampled from Redis)
        // may trail by a moment, so wait for both views to agree.
        const settled =
          sample(m.body, 'mailroom_deliveries_total{result="failed"}') === 3 &&
          sample(m.body, 'mailroom_deliveries_total{result="delivered"}') === 1 &&
          sample(m.body, 'mailroom_queue_jobs{queue="deliveries",state="failed"}') === 3;
        return settled ? m : undefined;
      },
      30_000,
      200,
    );
    expect(metrics.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const t = metrics.body;
    expect(sample(t, 'mailroom_smtp_accepted_total')).toBe(4);
    expect(sample(t, 'mailroom_smtp_accepted_bytes_total')).toBeGreaterThan(4 * BODY_MARK.length);
    expect(sample(t, 'mailroom_smtp_rejected_total{class="5xx",code="550",reason="bad_mailbox"}')).toBe(1);
    expect(sample(t, 'mailroom_smtp_rejected_total{class="5xx",code="552",reason="too_big"}')).toBe(1);
    expect(sample(t, 'mailroom_deliveries_total{result="retry"}')).toBe(3);
    expect(sample(t, 'mailroom_deliveries_in_flight')).toBe(0);
    // Stored: ok and notopic (its object is stored; only the publish fails).
    expect(sample(t, 'mailroom_upload_duration_seconds_count')).toBe(2);
    expect(sample(t, 'mailroom_upload_duration_seconds_bucket{le="+Inf"}')).toBe(2);
    expect(sample(t, 'mailroom_upload_bytes_total')).toBeGreaterThan(2 * BODY_MARK.length);
    expect(sample(t, 'mailroom_s3_errors_total{operation="PutObject",error="NoSuchBucket"}')).toBe(2);
    expect(sample(t, 'mailroom_kms_errors_total{operation="GenerateDataKey",error="NotFoundException"}')).toBe(2);
    expect(sample(t, 'mailroom_sns_errors_total{operation="PublishBatch",error="NotFoundException"}')).toBe(2);
    // Sampled at scrape: three deliveries failed, their three messages still spooled. Each file had one rule, so its
    // delivery job releases it (no release parents in the spool queue).
    expect(sample(t, 'mailroom_queue_jobs{queue="deliveries",state="failed"}')).toBe(3);
    expect(sample(t, 'mailroom_queue_jobs{queue="deliveries",state="waiting"}')).toBe(0);
    expect(sample(t, 'mailroom_queue_jobs{queue="spool",state="waiting"}')).toBe(0);
    await waitFor('spool gauge', async () => sample((await get(http, '/metrics')).body, 'mailroom_spool_files') === 3, 10_000, 500);
    const spooled = (await get(http, '/metrics')).body;
    expect(sample(spooled, 'mailroom_spool_bytes')).toBeGreaterThan(3 * BODY_MARK.length);
    // The three stuck messages' files have waited since they were written: their age, no more.
    const oldest = sample(spooled, 'mailroom_spool_oldest_seconds')!;
    expect(oldest).toBeGreaterThan(0);
    expect(oldest).toBeLessThanOrEqual((Date.now() - sentAt) / 1000 + 1);
    expect(sample(t, 'mailroom_node_info{node_id="obs-1"}')).toBe(1);
    // The four accepted messages went to disk in one to four batch files, each written into a spare or created.
    const batchFiles = sample(t, 'mailroom_spool_batch_files_total{file="spare"}')! + sample(t, 'mailroom_spool_batch_files_total{file="created"}')!;
    expect(batchFiles).toBeGreaterThanOrEqual(1);
    expect(batchFiles).toBeLessThanOrEqual(4);
    expect(await listKeys(backends.aws, `obs${v}`, 'ok/')).toEqual([`ok/${ok.messageId}`]);

    // The bucket appears: ready.
    await backends.aws.s3.send(new CreateBucketCommand({ Bucket: `obs-missing${v}` }));
    const ready = await waitFor('ready', async () => {
      const r = await get(http, '/readyz');
      return r.status === 200 ? r : undefined;
    }, 10_000, 200);
    expect(JSON.parse(ready.body)).toMatchObject({ ready: true, checks: { redis: 'ok', spool: 'ok', [`s3:obs${v}`]: 'ok', [`s3:obs-missing${v}`]: 'ok' } });

    // Logs: every line about one of these messages names it; no body, no header value; every line names the node.
    const ids = new Set([ok, lost, nokey, notopic].map((s) => s.messageId));
    for (const l of rawLog) {
      expect(l).not.toContain(BODY_MARK);
      expect(l).not.toContain(HEADER_MARK);
    }
    for (const l of lines) expect(l.node, JSON.stringify(l)).toBe('obs-1');
    expect(lines.some((l) => l.msg === 'delivered' && l.thread === 'delivery')).toBe(deliveryThread);
    const byMsg = (m: string) => lines.filter((l) => l.msg === m);
    expect(new Set(byMsg('accepted').map((l) => l.messageId))).toEqual(ids);
    // A spool file with one rule has one job, named by the file id, which the accepted line gives (a batch file is
    // named by its spare's id, not after a message).
    const fileOf = new Map(byMsg('accepted').map((l) => [l.messageId as string, l.spoolFile as string]));
    for (const id of ids) expect(isMessageId(fileOf.get(id) ?? '')).toBe(true);
    expect(byMsg('delivered').map((l) => [l.messageId, l.rule, l.jobId])).toEqual([[ok.messageId, 'ok', fileOf.get(ok.messageId)]]);
    const failures = [...byMsg('delivery failed; will retry'), ...byMsg('delivery failed for good; spool file kept; retry with `mailroom queue retry`')];
    expect(failures).toHaveLength(6);
    // Job lines list the job's undelivered messages (one each here: every message was alone in its spool file).
    for (const f of failures) {
      const [messageId, ...more] = f.messageIds as string[];
      expect(more).toEqual([]);
      expect(ids.has(messageId!)).toBe(true);
      expect(f.jobId).toBe(fileOf.get(messageId!));
    }
    // ... and each attempt's line about the message itself names it.
    const attempts = byMsg('message not delivered in this attempt');
    expect(attempts).toHaveLength(6);
    for (const a of attempts) expect(ids.has(a.messageId as string)).toBe(true);

    // Redis gone: not ready, and the check says so; /healthz still answers (the process is fine).
    await backends.redis.stop();
    const down = await waitFor('not ready without redis', async () => {
      const r = await get(http, '/readyz');
      return r.status === 503 ? r : undefined;
    }, 10_000, 200);
    // In words, not ioredis's ("Stream isn't writeable and enableOfflineQueue options is false").
    expect((JSON.parse(down.body) as { checks: Record<string, string> }).checks.redis).toMatch(new RegExp(`^Redis at ${backends.redis.url.replace(/[/.]/g, '\\$&')}/? does not answer`));
    expect(down.body).not.toMatch(/Stream isn't writeable|enableOfflineQueue/);
    expect((await get(http, '/healthz')).status).toBe(200);
    // Scraping still works: queue gauges keep their last value rather than failing the scrape.
    expect((await get(http, '/metrics')).status).toBe(200);
    // A shutdown that begins while Redis is away still ends (BullMQ's close alone would wait forever).
    const stopping = gw.stop();
    await backends.redis.restart();
    await stopping;
    gw = undefined;
  }, 90_000);
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
