/**
 * `mailroom load` against the gateway and the upload path with real parts: moto (S3, KMS, SNS, SQS), Redis, and the
 * project's S3 sink (test/bench/s3-sink.ts). What the JSON counts is what arrived; the temporary queue is gone
 * afterwards; a gateway without Redis (451) and an S3 that answers 503 SlowDown show in their error classes, and
 * those runs still end on time.
 */
import { ListQueuesCommand } from '@aws-sdk/client-sqs';
import { ListSubscriptionsByTopicCommand } from '@aws-sdk/client-sns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivingConfigInput } from '../../shared/config/index.js';
import type { LoadResult } from '../../load/result.js';
import { startSink, type SinkStats } from '../bench/s3-sink.js';
import { freePort } from '../support/ports.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { startMailroom, writeConfig } from '../gateway/child.js';
import { CreateTopicCommand } from '@aws-sdk/client-sns';
import { startMoto } from '../support/moto.js';
import { ACCOUNT, awsClients, createBuckets, createKey, createTopicWithQueue, listKeys, receiveSns, REGION, startBackends, startTestGateway, storedBytes, waitFor, type Backends } from '../gateway/helpers.js';
import { loadCli } from './helpers.js';

let backends: Backends;
let motoEnv: Record<string, string>;

beforeAll(async () => {
  backends = await startBackends('mailroom-load-gw-', { motoEnv: true });
  motoEnv = backends.moto.env;
}, 120_000);

afterAll(async () => backends?.stop());

/** Latencies as a report must have them: positive, and p50 ≤ p99 ≤ max. */
function expectOrdered(l: LoadResult['latency'][keyof LoadResult['latency']], count: number): void {
  expect(l).toBeDefined();
  expect(l!.count).toBe(count);
  expect(l!.min).toBeGreaterThan(0);
  expect(l!.p50).toBeGreaterThanOrEqual(l!.min);
  expect(l!.p50).toBeLessThanOrEqual(l!.p99);
  expect(l!.p99).toBeLessThanOrEqual(l!.max);
}

describe('against the gateway on moto', () => {
  let gw: Awaited<ReturnType<typeof startTestGateway>>;
  let cfgFile: string;
  let topic: { topicArn: string; queueUrl: string };
  let keyArn: string;

  function config(): ReceivingConfigInput {
    return {
      region: REGION,
      accountId: ACCOUNT,
      ruleSetName: 'load-moto',
      rules: [
        // a copy announced on a topic (watched through the temporary queue) …
        { name: 'inbox', recipients: ['example.com'], scanEnabled: true, s3Action: { bucketName: 'load-mail', objectKeyPrefix: 'inbox/', kmsKeyArn: keyArn, topicArn: topic.topicArn } },
        // … and one without a topic (watched by looking for its object)
        { name: 'archive', recipients: ['archive@example.org'], s3Action: { bucketName: 'load-mail', objectKeyPrefix: 'archive/' } },
      ],
      gateway: {
        hostname: 'mx.load.test',
        spoolDir: `${backends.dir.path}/spool`,
        smtp: { port: 0, reverseDns: false },
        redis: { url: backends.redis.url, prefix: 'load' },
        worker: { concurrency: 4 },
      },
    };
  }

  beforeAll(async () => {
    await createBuckets(backends.aws, 'load-mail');
    keyArn = await createKey(backends.aws);
    topic = await createTopicWithQueue(backends.aws, 'load-inbound');
    gw = await startTestGateway(config());
    cfgFile = await writeConfig(backends.dir.path, 'moto.json', { ...config(), gateway: { ...config().gateway, smtp: { port: gw.port } } });
  }, 120_000);
  afterAll(async () => gw?.stop());

  it('load smtp --watch-topic: accepted, stored and announced counts equal what arrived; latencies ordered; the temporary queue is gone', async () => {
    const n = 40;
    const r = await loadCli(['smtp', '--target', `127.0.0.1:${gw.port}`, '--config', cfgFile, '--count', String(n), '--concurrency', '4', '--watch-topic', '--delivery-wait', '60s', '--json'], { env: motoEnv });
    expect(r.code, r.stderr).toBe(0);
    const j = r.json!;
    expect(j.parameters.to).toEqual(['mailroom-load@example.com', 'archive@example.org']);
    expect(j.counts).toMatchObject({ sent: n, accepted: n, failed: 0, deliveriesExpected: 2 * n, delivered: 2 * n, deliveriesMissing: 0 });
    expect(j.delivery.method).toEqual(['topic', 'object']);
    expect(j.delivery.leftovers).toEqual([]);
    // What arrived: an object per message and rule, a notification per message on the topic.
    expect(await listKeys(backends.aws, 'load-mail', 'inbox/')).toHaveLength(n);
    expect(await listKeys(backends.aws, 'load-mail', 'archive/')).toHaveLength(n);
    const notes = await receiveSns(backends.aws, topic.queueUrl, n, 30_000);
    expect(notes).toHaveLength(n);
    const tokens = new Set(notes.map((e) => (JSON.parse(e.Message) as { mail: { commonHeaders: { messageId: string } } }).mail.commonHeaders.messageId));
    expect(tokens.size).toBe(n);
    for (const t of tokens) expect(t).toMatch(new RegExp(`^<${j.parameters.runId as string}-[0-9a-z]{9}@load\\.invalid>$`));
    expectOrdered(j.latency.accept, n);
    expectOrdered(j.latency.delivery, 2 * n);
    expect(j.timeline.accepted.reduce((a, b) => a + b, 0)).toBe(n);
    expect(j.timeline.delivered.reduce((a, b) => a + b, 0)).toBe(2 * n);
    // The queue it made, and its subscription, were removed.
    const queues = (await backends.aws.sqs.send(new ListQueuesCommand({}))).QueueUrls ?? [];
    expect(queues.filter((q) => q.includes('mailroom-load-'))).toEqual([]);
    const subs = (await backends.aws.sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: topic.topicArn }))).Subscriptions ?? [];
    expect(subs.map((s) => s.Endpoint)).toEqual([expect.stringContaining('load-inbound-q')]);
  });

  it('load upload --watch-topic: SES-format objects (encrypted under the rule key) and notifications, counted as they arrived', async () => {
    const before = new Set(await listKeys(backends.aws, 'load-mail', 'inbox/'));
    const n = 30;
    const r = await loadCli(['upload', '--config', cfgFile, '--rule', 'inbox', '--count', String(n), '--concurrency', '4', '--watch-topic', '--json'], { env: motoEnv });
    expect(r.code, r.stderr).toBe(0);
    const j = r.json!;
    expect(j.counts).toMatchObject({ sent: n, accepted: n, failed: 0, stored: n, announced: n, deliveriesExpected: n, delivered: n });
    const keys = await listKeys(backends.aws, 'load-mail', 'inbox/');
    const mine = keys.filter((k) => !before.has(k));
    expect(mine).toHaveLength(n);
    expect(await receiveSns(backends.aws, topic.queueUrl, n, 30_000)).toHaveLength(n);
    expectOrdered(j.latency.store, n);
    expectOrdered(j.latency.accept, n);
    expectOrdered(j.latency.delivery, n);
    // One of them, decrypted as any consumer would: SES's header block, then the MailComposer message with its token.
    const { body, metadata } = await storedBytes(backends.aws, 'load-mail', mine[0]!);
    expect(metadata['x-amz-key-v2']).toBeDefined();
    const text = body.toString('utf8');
    expect(text).toMatch(/^Return-Path: <mailroom-load@load\.invalid>\r\nReceived: from mailroom-load\.invalid/);
    expect(text).toMatch(/\r\nX-SES-Spam-Verdict: GRAY\r\n/);
    expect(text).toMatch(/\r\nX-Mailroom-Load: [0-9a-z]{8}-[0-9a-z]{9}\r\n/);
    expect(j.delivery.notes.join(' ')).toMatch(/objects are under s3:\/\/load-mail\/inbox\//);
  });

  it('Ctrl-C: no new messages, those in flight finish, the temporary queue is removed, the figures so far printed', async () => {
    const r = await loadCli(['smtp', '--target', `127.0.0.1:${gw.port}`, '--config', cfgFile, '--rate', '20', '--duration', '60s', '--watch-topic', '--json'], { env: motoEnv, interrupt: { when: /watching .*mailroom-load-/, afterMs: 2_000 } });
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/SIGINT: stopping — no new messages; finishing those in flight and removing the temporary queue/);
    const j = r.json!;
    expect(j.endedBy).toBe('interrupted');
    expect(j.counts.sent).toBeGreaterThan(10);
    expect(j.counts.sent).toBeLessThan(200);
    expect(j.counts.accepted + j.counts.failed + j.counts.interrupted).toBe(j.counts.sent);
    expect(j.delivery.leftovers).toEqual([]);
    expect(r.ms).toBeLessThan(30_000);
    const queues = (await backends.aws.sqs.send(new ListQueuesCommand({}))).QueueUrls ?? [];
    expect(queues.filter((q) => q.includes('mailroom-load-'))).toEqual([]);
    await receiveSns(backends.aws, topic.queueUrl, j.counts.accepted, 30_000); // what it did send, out of the way
  });

  it('a watch that cannot start (a topic that does not exist) removes the queue it already made and says why', async () => {
    const missing = { ...config(), rules: [{ ...config().rules[0]!, s3Action: { ...config().rules[0]!.s3Action, topicArn: `arn:aws:sns:${REGION}:${ACCOUNT}:no-such-topic` } }] };
    const file = await writeConfig(backends.dir.path, 'missing-topic.json', { ...missing, gateway: { ...missing.gateway, smtp: { port: gw.port } } });
    const r = await loadCli(['smtp', '--target', `127.0.0.1:${gw.port}`, '--config', file, '--count', '5', '--watch-topic', '--json'], { env: motoEnv });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--watch-topic: could not set up the temporary queue: .*(NotFound|does not exist).* check the rules' topic ARNs/i);
    const queues = (await backends.aws.sqs.send(new ListQueuesCommand({}))).QueueUrls ?? [];
    expect(queues.filter((q) => q.includes('mailroom-load-'))).toEqual([]);
  });

  it('a gateway whose Redis is down answers 451: the run counts it as smtp-4xx 451 4.3.0 and ends on time', async () => {
    const redis: RedisServer = await startRedis();
    const down = await startTestGateway({ ...config(), rules: [config().rules[1]!], gateway: { ...config().gateway, spoolDir: `${backends.dir.path}/spool-451`, redis: { url: redis.url, prefix: 'load451', enqueueTimeoutMs: 1000 } } });
    try {
      await redis.stop();
      const r = await loadCli(['smtp', '--target', `127.0.0.1:${down.port}`, '--to', 'archive@example.org', '--duration', '2s', '--concurrency', '4', '--timeout', '3s', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const j = r.json!;
      expect(j.counts.accepted).toBe(0);
      expect(j.counts.failed).toBeGreaterThan(0);
      const e = j.errors.list.find((x) => x.code === '451 4.3.0');
      expect(e?.class).toBe('smtp-4xx');
      expect(e?.count).toBe(j.counts.failed);
      expect(j.errors.byClass['smtp-4xx']).toBe(j.counts.failed);
      expect(j.seconds.run).toBeLessThan(2 + 3);
    } finally {
      await down.stop();
      await redis.stop();
    }
  });
});

describe('against the S3 sink', () => {
  let sink: { port: number; close: () => Promise<void> };
  let endpoint: string;
  const stats = async () => (await (await fetch(`${endpoint}/__stats`)).json()) as SinkStats;
  const rule = (extra: Record<string, unknown> = {}) => ({ name: 'inbox', recipients: ['example.com'], s3Action: { bucketName: 'sink-mail', objectKeyPrefix: 'in/', kmsKeyArn: `arn:aws:kms:${REGION}:${ACCOUNT}:key/11111111-2222-3333-4444-555555555555`, topicArn: `arn:aws:sns:${REGION}:${ACCOUNT}:sink`, ...extra } });

  beforeAll(async () => {
    sink = await startSink(0);
    endpoint = `http://127.0.0.1:${sink.port}`;
  });
  afterAll(async () => sink?.close());

  it('load smtp through a gateway process: what it counted accepted is what the sink received, objects and notifications', async () => {
    await fetch(`${endpoint}/__reset`, { method: 'POST' });
    const redis = await startRedis();
    const port = await freePort();
    const cfg: ReceivingConfigInput = { region: REGION, accountId: ACCOUNT, ruleSetName: 'load-sink', rules: [rule()], gateway: { hostname: 'mx.sink.test', spoolDir: `${backends.dir.path}/spool-sink`, smtp: { port, reverseDns: false }, redis: { url: redis.url, prefix: 'sink' }, worker: { concurrency: 8 } } };
    const file = await writeConfig(backends.dir.path, 'sink.json', cfg);
    const env = { AWS_ENDPOINT_URL: endpoint, AWS_REGION: REGION, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' };
    const gateway = await startMailroom('gateway', file, env, port);
    try {
      const r = await loadCli(['smtp', '--target', `127.0.0.1:${port}`, '--config', file, '--rate', '100', '--count', '150', '--json'], { env });
      expect(r.code, r.stderr).toBe(0);
      const j = r.json!;
      expect(j.counts.accepted).toBe(150);
      expectOrdered(j.latency.accept, 150);
      expectOrdered(j.latency.response, 150);
      const st = await waitFor('the gateway to deliver everything', async () => {
        const s = await stats();
        return s.puts + s.multipartCompleted >= j.counts.accepted && s.publishes >= j.counts.accepted ? s : undefined;
      }, 60_000);
      expect(st.puts + st.multipartCompleted).toBe(j.counts.accepted);
      expect(st.publishes).toBe(j.counts.accepted);
      expect(st.dataKeys).toBe(j.counts.accepted);
    } finally {
      await gateway.stop();
      await redis.stop();
    }
  });

  it('load upload: the objects (single PUTs and multipart), data keys and notifications it counted are the ones the sink took', async () => {
    await fetch(`${endpoint}/__reset`, { method: 'POST' });
    const file = await writeConfig(backends.dir.path, 'sink-upload.json', { region: REGION, accountId: ACCOUNT, ruleSetName: 'load-sink', rules: [rule()] });
    const env = { AWS_ENDPOINT_URL: endpoint, AWS_REGION: REGION, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' };
    // The realistic mix: mostly small messages in one signed PUT, some streamed, and 10–40 MB ones in parts.
    const r = await loadCli(['upload', '--config', file, '--mix', 'realistic', '--count', '160', '--concurrency', '8', '--json'], { env, timeoutMs: 150_000 });
    expect(r.code, r.stderr).toBe(0);
    const j = r.json!;
    const st = await stats();
    expect(j.counts).toMatchObject({ accepted: 160, stored: 160, announced: 160, failed: 0 });
    expect(st.puts + st.multipartCompleted).toBe(j.counts.stored);
    expect(st.multipartCompleted).toBeGreaterThan(0);
    expect(st.dataKeys).toBe(j.counts.stored);
    expect(st.publishes).toBe(j.counts.announced);
    expect(st.publishBatches).toBeLessThan(st.publishes);
    expectOrdered(j.latency.store, 160);
    expectOrdered(j.latency.accept, 160);
  });

  it('load upload --rate: the open loop, response time from when each upload was due', async () => {
    await fetch(`${endpoint}/__reset`, { method: 'POST' });
    const file = await writeConfig(backends.dir.path, 'sink-rate.json', { region: REGION, accountId: ACCOUNT, ruleSetName: 'load-sink', rules: [rule()] });
    const env = { AWS_ENDPOINT_URL: endpoint, AWS_REGION: REGION, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' };
    const r = await loadCli(['upload', '--config', file, '--rate', '100', '--count', '150', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const j = r.json!;
    expect(j.counts).toMatchObject({ scheduled: 150, accepted: 150, stored: 150, announced: 150 });
    expect(j.parameters).toMatchObject({ rate: 100, concurrency: null, maxInFlight: 1024 });
    expect(j.timeline.sent[0]).toBeGreaterThanOrEqual(80); // 100 due; the first uploads warm the SDK up
    expect(j.timeline.sent.reduce((a, b) => a + b, 0)).toBe(150);
    expectOrdered(j.latency.response, 150);
    expect(j.latency.response!.p50).toBeGreaterThanOrEqual(j.latency.accept!.p50 - 0.001);
    expect((await stats()).puts).toBe(150);
  });

  it('when the queue cannot be removed (SQS gone mid-run), the run says what is left and the command that removes it', async () => {
    const moto2 = await startMoto();
    try {
      const aws2 = awsClients(moto2);
      const topicArn = (await aws2.sns.send(new CreateTopicCommand({ Name: 'sink' }))).TopicArn!;
      aws2.destroy();
      const file = await writeConfig(backends.dir.path, 'sink-leftover.json', { region: REGION, accountId: ACCOUNT, ruleSetName: 'load-sink', rules: [rule({ topicArn })] });
      // S3 and KMS at the sink; SNS and SQS at a moto that is stopped once the queue is up.
      const env = { AWS_ENDPOINT_URL: endpoint, AWS_ENDPOINT_URL_SNS: moto2.endpoint, AWS_ENDPOINT_URL_SQS: moto2.endpoint, AWS_REGION: REGION, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' };
      let stopped: Promise<void> | undefined;
      const r = await loadCli(['upload', '--config', file, '--rate', '20', '--duration', '3s', '--timeout', '2s', '--watch-topic', '--delivery-wait', '1s', '--json'], {
        env,
        interrupt: { when: /watching /, afterMs: 1_500, signal: null, then: () => void (stopped = moto2.stop()) },
      });
      await stopped;
      expect(stopped).toBeDefined();
      expect(r.code, r.stderr).toBe(1);
      const j = r.json!;
      expect(j.delivery.leftovers.map((l) => l.what)).toEqual([expect.stringMatching(/^subscription arn:aws:sns:/), expect.stringMatching(/^queue http.*mailroom-load-/)]);
      expect(j.delivery.leftovers[1]!.fix).toMatch(/^aws sqs delete-queue --region us-east-1 --queue-url http/);
      expect(r.stderr).toMatch(/NOT REMOVED: queue .* remove it with: aws sqs delete-queue/);
      expect(j.errors.list.find((e) => e.class === 'connection')?.code, JSON.stringify(j.errors.list)).toBe('sns ECONNREFUSED'); // the publishes after SNS went away
    } finally {
      await moto2.stop();
    }
  });

  it('an S3 that answers 503 SlowDown: the run counts s3-slowdown and ends on time', async () => {
    const slow = await startSink(0, { slowDown: true });
    try {
      const file = await writeConfig(backends.dir.path, 'sink-503.json', { region: REGION, accountId: ACCOUNT, ruleSetName: 'load-503', rules: [rule({ kmsKeyArn: undefined })] });
      const env = { AWS_ENDPOINT_URL: `http://127.0.0.1:${slow.port}`, AWS_REGION: REGION, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' };
      const r = await loadCli(['upload', '--config', file, '--duration', '2s', '--concurrency', '4', '--timeout', '5s', '--json'], { env });
      expect(r.code, r.stderr).toBe(0);
      const j = r.json!;
      expect(j.counts.accepted).toBe(0);
      expect(j.counts.failed).toBeGreaterThan(0);
      expect(j.errors.byClass['s3-slowdown']).toBe(j.counts.failed);
      expect(j.errors.list[0]).toMatchObject({ class: 's3-slowdown', code: 'SlowDown 503', stage: 'store' });
      expect(j.timeline.errors['s3-slowdown']!.reduce((a, b) => a + b, 0)).toBe(j.counts.failed);
      expect(j.seconds.run).toBeLessThan(2 + 2);
    } finally {
      await slow.close();
    }
  });
});
