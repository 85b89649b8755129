/**
 * Faults outside the gateway: Redis going away (and coming back empty), and an S3 endpoint refusing for a while or
 * for good — with the operator's `mailroom queue` / `mailroom queue retry` for what never recovers by itself.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivingConfigInput } from '../../shared/config/index.js';
import { tempDir } from '../support/files.js';
import { startMoto, useMotoEnv, type Moto } from '../support/moto.js';
import { clientsBackAfterRestart, startRedis, type RedisServer } from '../support/redis.js';
import { Readable } from 'node:stream';
import { silentLogger } from '../../gateway/runtime/log.js';
import { Enqueuer } from '../../gateway/queue/enqueue.js';
import { SPOOL_QUEUE } from '../../gateway/queue/jobs.js';
import { DeliveryWorkers } from '../../gateway/worker/worker.js';
import type { SpoolRecord } from '../../gateway/spool/format.js';
import { SpoolRecovery } from '../../gateway/intake/recovery.js';
import { newMessageId } from '../../shared/ses/message-id.js';
import { spooledFiles, spoolFileHolding, TestSpool } from '../support/spool.js';
import type { SpoolReader } from '../../gateway/spool/reader.js';
import { mailroomCli, writeConfig } from './child.js';
import { ACCOUNT, awsClients, capturedLog, createBuckets, createTopicWithQueue, listKeys, rawMessage, receiveSns, REGION, run, runtimeFor, sendRaw, sendTogether, startTestGateway, waitFor, type AwsFixture } from './helpers.js';
import { startGateway } from '../../gateway/gateway.js';

let moto: Moto;
let restoreEnv: () => void;
let aws: AwsFixture;
let dir: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  [moto, dir] = await Promise.all([startMoto(), tempDir('mailroom-faults-')]);
  restoreEnv = useMotoEnv(moto);
  aws = awsClients(moto);
  await createBuckets(aws, 'redis-outage', 's3-outage');
}, 120_000);

afterAll(async () => {
  aws?.destroy();
  restoreEnv?.();
  await moto?.stop();
  await dir?.remove();
});

function config(name: string, redisUrl: string, bucket: string, worker: Record<string, number> = {}): ReceivingConfigInput {
  return {
    region: REGION,
    accountId: ACCOUNT,
    ruleSetName: name,
    rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: bucket, objectKeyPrefix: 'in' } }],
    gateway: {
      hostname: `mx.${name}.test`,
      spoolDir: join(dir.path, name),
      smtp: { port: 0, reverseDns: false },
      redis: { url: redisUrl, prefix: name, enqueueTimeoutMs: 2_000 },
      worker: { concurrency: 4, backoffBaseMs: 200, backoffMaxMs: 1_000, recoveryIntervalMs: 500, ...worker },
    },
  };
}

const msg = (n: string) => rawMessage([['Subject', n]], `${n}\r\n`);
const to = { from: 'sender@origin.example', to: ['user@example.com'] };

describe('Redis outage', () => {
  let redis: RedisServer;
  afterAll(async () => redis?.stop());

  it('new mail gets 451 while Redis is down; after it returns mail is accepted, and what Redis lost is re-enqueued from the spool', async () => {
    redis = await startRedis(); // no persistence: a restart comes back empty, the worst case
    // SMTP only first, so the accepted messages are still queued (not yet delivered) when Redis dies.
    const smtp = await startTestGateway(config('redis', redis.url, 'redis-outage'), { smtp: true, workers: false });
    let workers: Awaited<ReturnType<typeof startTestGateway>> | undefined;
    try {
      const before = await Promise.all(['a', 'b', 'c'].map((n) => sendRaw(smtp.port, to, msg(n))));
      for (const s of before) expect(s.messageId).not.toBe('');

      await redis.stop();
      const spooled = await spooledFiles(join(dir.path, 'redis'));
      const refused = await sendRaw(smtp.port, to, msg('during')).then(
        () => 'accepted',
        (err: { responseCode?: number; response?: string }) => err.response ?? String(err),
      );
      expect(refused).toMatch(/^451 4\.3\.0 /);
      // The refused message left nothing in the spool.
      await waitFor('refused message dropped', async () => (await spooledFiles(join(dir.path, 'redis'))).length === spooled.length);

      await redis.restart();
      const after = await waitFor('mail accepted again', () => sendRaw(smtp.port, to, msg('after')).catch(() => undefined), 20_000, 250);
      expect(after.messageId).not.toBe('');

      // Workers (a separate part, same Redis and spool) deliver all four: three from the spool, as Redis lost them.
      workers = await startTestGateway(config('redis', redis.url, 'redis-outage'), { smtp: false, workers: true });
      const ids = [...before, after].map((s) => `in/${s.messageId}`);
      await waitFor('all four delivered', async () => {
        const keys = await listKeys(aws, 'redis-outage');
        return ids.every((k) => keys.includes(k));
      }, 30_000, 250);
      expect((await listKeys(aws, 'redis-outage')).length).toBe(4);
      await waitFor('spool released', async () => (await spooledFiles(join(dir.path, 'redis'))).length === 0, 15_000);
    } finally {
      await workers?.stop();
      await smtp.stop();
    }
  }, 90_000);
});

describe('stopped while Redis is down', () => {
  // BullMQ's close() cannot finish without Redis: the workers' stop waited out shutdownTimeoutMs plus 5 s (35 s by
  // default) and left their BullMQ-made clients reconnecting for ever — and coming back once Redis did.
  for (const thread of ['no', 'yes'] as const) {
    it(`a gateway with workers${thread === 'yes' ? ' in a delivery thread' : ''} stops without waiting out its shutdown timeout and leaves no Redis client behind`, async () => {
      const redis = await startRedis();
      const name = `stop-down-${thread}`;
      const cfg = config(name, redis.url, 'redis-outage');
      const gw = await startTestGateway({ ...cfg, gateway: { ...cfg.gateway!, worker: { ...cfg.gateway!.worker, thread, shutdownTimeoutMs: 20_000 } } });
      let stopped = false;
      try {
        const sent = await sendRaw(gw.port, to, msg(name));
        await waitFor('delivered', async () => (await listKeys(aws, 'redis-outage')).includes(`in/${sent.messageId}`), 30_000, 250);
        await redis.stop();
        const t = performance.now();
        await gw.stop();
        stopped = true;
        expect(performance.now() - t, 'stop while Redis is down, nothing in flight').toBeLessThan(10_000);
        expect(await clientsBackAfterRestart(redis), 'no client of the stopped gateway reconnected').toEqual([]);
      } finally {
        if (!stopped) {
          await redis.restart();
          await gw.stop();
        }
        await redis.stop();
      }
    }, 90_000);
  }

  it('a job that finished while Redis was away keeps the stop waiting for Redis, and its result is stored once Redis is back (it does not run again)', async () => {
    // Redis with its append-only file, so the job is still there when it comes back.
    const redisDir = join(dir.path, 'finished-during-outage-redis');
    await mkdir(redisDir, { recursive: true });
    const redis = await startRedis({ persistDir: redisDir });
    const cfg = config('finished-during-outage', redis.url, 'redis-outage');
    const runtime = runtimeFor({ ...cfg, gateway: { ...cfg.gateway!, worker: { ...cfg.gateway!.worker, shutdownTimeoutMs: 20_000 } } });
    const prefix = 'finished-during-outage';
    let removes = 0;
    let stopping: Promise<void> | undefined;
    let stoppedAt = 0;
    // The release job's processor: Redis goes away and the gateway is told to stop while it runs.
    const spool = {
      directory: {
        fileIdOf: (f: string) => f,
        remove: async () => {
          removes++;
          if (removes === 1) {
            await redis.stop();
            stopping = workers.stop().then(() => void (stoppedAt = performance.now()));
            await new Promise((r) => setTimeout(r, 300));
          }
          return true;
        },
      },
    } as unknown as SpoolReader;
    const workers = new DeliveryWorkers(runtime, spool, silentLogger(), { prefix });
    workers.start();
    const queue = new Queue(SPOOL_QUEUE, { connection: { host: '127.0.0.1', port: redis.port }, prefix });
    queue.on('error', () => undefined);
    try {
      await queue.add('release', { spoolFile: 'file-1', messageIds: ['m1'] }, { jobId: 'r1' });
      await waitFor('the stop began', async () => stopping !== undefined, 15_000, 50);
      await new Promise((r) => setTimeout(r, 1_500));
      expect(stoppedAt, "the stop waits while the job's result is queued for Redis").toBe(0);
      const backAt = performance.now();
      await redis.restart();
      await stopping;
      expect(stoppedAt).toBeGreaterThan(backAt);
      expect(stoppedAt - backAt, 'stopped once the result is stored, not at shutdownTimeoutMs (20 s)').toBeLessThan(10_000);
      const job = await queue.getJob('r1');
      expect(await job?.getState()).toBe('completed');
      expect(removes, 'run once').toBe(1);
    } finally {
      if (!stopping) await workers.stop();
      await queue.close();
      await redis.stop();
    }
  }, 60_000);
});

describe('workers while Redis is down', () => {
  it('log the outage once, not every retry of every connection, and say when Redis is back', async () => {
    const redis = await startRedis();
    const { log, lines } = capturedLog();
    const workers = new DeliveryWorkers(runtimeFor(config('log-outage', redis.url, 'redis-outage')), {} as SpoolReader, log, { prefix: 'log-outage' });
    workers.start();
    const about = (what: RegExp) => lines.filter((l) => what.test(l.msg));
    try {
      await new Promise((r) => setTimeout(r, 1_000));
      await redis.stop();
      // Each of the workers' connections retries about every two seconds.
      await new Promise((r) => setTimeout(r, 7_000));
      expect(about(/^workers: redis error/), JSON.stringify(lines)).toHaveLength(1);
      await redis.restart();
      await waitFor('"redis is back" logged', async () => (about(/^workers: redis is back/).length === 1 ? true : undefined), 15_000, 100);
      expect(about(/^workers: redis is back/)[0]!.sinceLastLine, 'the errors not logged are counted').toBeGreaterThan(0);
    } finally {
      await workers.stop();
      await redis.stop();
    }
  }, 60_000);
});

describe('Redis that stops answering', () => {
  it('fails a spool recovery pass within enqueueTimeoutMs, so the next pass runs, instead of holding recovery until Redis answers', async () => {
    const redis = await startRedis();
    const spool = new TestSpool(join(dir.path, 'stall'));
    const enqueuer = new Enqueuer({ redis: { url: redis.url, cluster: false }, prefix: 'stall', timeoutMs: 500, policy: { attempts: 3, backoffBaseMs: 100, keepCompleted: 10 } }, silentLogger());
    let stopped = false;
    try {
      await spool.init({ clearIncoming: true });
      await enqueuer.ready(10_000);
      // A message on disk without jobs, as after a crash between fsync and enqueue.
      const id = newMessageId();
      const record: SpoolRecord = {
        v: 1,
        envelope: { messageId: id, receivedAt: new Date().toISOString(), mailFrom: '', helo: 'h.example', clientIp: '127.0.0.1', tls: false, byHost: 'mx.example', accountId: ACCOUNT, region: REGION },
        rules: [{ name: 'all', recipients: ['user@example.com'], scanEnabled: false, s3Action: { bucketName: 'redis-outage', objectKeyPrefix: 'in' } }],
      };
      expect((await spool.receive(record, Readable.from([Buffer.from(msg('stalled'))]))).ok).toBe(true);
      const recovery = new SpoolRecovery(spool, enqueuer, (id) => spool.writer.owns(id), silentLogger(), 5_000);

      // Frozen, not gone: connections stay open and nothing answers (a hung server, a partition without resets).
      process.kill(redis.pid, 'SIGSTOP');
      stopped = true;
      for (const pass of [1, 2]) {
        const t0 = Date.now();
        await expect(recovery.run(), `pass ${pass}`).rejects.toThrow(`Redis did not say within 500 ms whether spool file ${id} has jobs`);
        expect(Date.now() - t0).toBeLessThan(5_000);
      }
      process.kill(redis.pid, 'SIGCONT');
      stopped = false;
      // Answering again: the next pass finds the file without jobs and enqueues it.
      expect(await waitFor('a recovery pass through', () => recovery.run().catch(() => undefined), 10_000, 100)).toEqual({ checked: 1, requeued: 1 });
      expect(await enqueuer.hasJobs(id)).toBe(true);
    } finally {
      if (stopped) process.kill(redis.pid, 'SIGCONT');
      await enqueuer.close();
      await spool.close();
      await redis.stop();
    }
  }, 60_000);
});

/** A loopback proxy in front of moto's S3 that answers 503 SlowDown to chosen PUTs. */
function s3Proxy(target: string): Promise<{ server: Server; url: string; failAll: { on: boolean }; failKeys: Set<string>; refused: () => number; puts: Map<string, number> }> {
  const failAll = { on: false };
  const failKeys = new Set<string>();
  /** PUTs seen per path, refused or passed on. */
  const puts = new Map<string, number>();
  let refused = 0;
  const t = new URL(target);
  const server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '').split('?')[0]!);
    if (req.method === 'PUT') puts.set(path, (puts.get(path) ?? 0) + 1);
    if (req.method === 'PUT' && (failAll.on || [...failKeys].some((k) => path.endsWith(k)))) {
      refused++;
      req.resume();
      req.on('end', () => {
        res.writeHead(503, { 'content-type': 'application/xml' });
        res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
      });
      return;
    }
    const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, failAll, failKeys, refused: () => refused, puts })),
  );
}

describe('S3 refusing', () => {
  let redis: RedisServer;
  let proxy: Awaited<ReturnType<typeof s3Proxy>>;
  const saved = process.env.AWS_ENDPOINT_URL_S3;
  afterAll(async () => {
    if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_S3;
    else process.env.AWS_ENDPOINT_URL_S3 = saved;
    proxy?.server.close();
    await redis?.stop();
  });

  it('deliveries retry with backoff and land after recovery; one that keeps failing is kept, shown by `mailroom queue`, and delivered by `mailroom queue retry`', async () => {
    redis = await startRedis();
    proxy = await s3Proxy(moto.endpoint);
    process.env.AWS_ENDPOINT_URL_S3 = proxy.url;
    const cfg = config('s3', redis.url, 's3-outage', { attempts: 4, backoffBaseMs: 300, backoffMaxMs: 600 });
    const configFile = await writeConfig(dir.path, 's3.json', cfg);
    const gw = await startTestGateway(cfg);
    try {
      proxy.failAll.on = true;
      const stuck = await sendRaw(gw.port, to, msg('stuck'));
      proxy.failKeys.add(`in/${stuck.messageId}`); // this one keeps failing after the outage
      // One after the other, so each is alone in its spool file (one delivery job each).
      const later = [await sendRaw(gw.port, to, msg('x')), await sendRaw(gw.port, to, msg('y'))];
      await waitFor('refused PUTs', async () => proxy.refused() >= 6, 15_000);
      expect(await listKeys(aws, 's3-outage')).toEqual([]);
      proxy.failAll.on = false;

      await waitFor('delivered after recovery', async () => {
        const keys = await listKeys(aws, 's3-outage');
        return later.every((s) => keys.includes(`in/${s.messageId}`));
      }, 20_000, 250);

      // The stuck one exhausts its attempts: failed set, spool file kept.
      const cli = (args: string[]) => mailroomCli(['queue', ...args, '--config', configFile], { REDIS_URL: redis.url });
      const counts = await waitFor('failed delivery', async () => {
        const r = await cli(['--json']);
        const c = JSON.parse(r.stdout || '{}') as { deliveries?: { failed: number; completed: number } };
        return c.deliveries && c.deliveries.failed === 1 ? c : undefined;
      }, 20_000, 500);
      expect(counts.deliveries!.completed).toBe(2);
      const stuckFile = await spoolFileHolding(join(dir.path, 's3'), stuck.messageId);
      expect(stuckFile && existsSync(stuckFile)).toBe(true);
      const human = await cli([]);
      expect(human.code).toBe(0);
      expect(human.stdout).toMatch(/failed 1/);
      const failed = await cli(['failed']);
      // Alone in its spool file with one rule: one job, named by the file id.
      expect(failed.stdout).toContain(stuck.messageId);
      expect(failed.stdout).toMatch(/SlowDown|reduce your request rate|503/i);

      proxy.failKeys.clear();
      const retried = await cli(['retry']);
      expect(retried.code, retried.stderr).toBe(0);
      expect(retried.stdout).toMatch(/retried 1 failed job/);
      await waitFor('stuck message delivered', async () => (await listKeys(aws, 's3-outage')).includes(`in/${stuck.messageId}`), 20_000, 250);
      await waitFor('spool released', async () => !existsSync(stuckFile!), 10_000);
      expect((await listKeys(aws, 's3-outage')).length).toBe(3);
    } finally {
      await gw.stop();
    }
  }, 120_000);

  it('one message of a batch file keeps failing: the others are stored once, and retries store only that one', async () => {
    proxy.failKeys.clear();
    proxy.failAll.on = true;
    const cfg = config('batch', redis.url, 's3-outage', { attempts: 20, backoffBaseMs: 300, backoffMaxMs: 500 });
    const gw = await startTestGateway(cfg);
    try {
      // Ending together, so all but the first share a spool file (and so a delivery job).
      const sent = await sendTogether(gw.port, to, Array.from({ length: 12 }, (_, i) => msg(`batch-${i}`)));
      const spool = new TestSpool(join(dir.path, 'batch'));
      const files = await Promise.all((await spooledFiles(spool.dir)).map((name) => spool.openFile(spool.directory.fileIdOf(name))));
      const batch = files.find((f) => f.entries.length > 1)!;
      expect(batch, 'a spool file holding several messages').toBeDefined();
      const [victim, ...others] = batch.entries.map((e) => e.record.envelope.messageId);
      const keyPath = (id: string) => `/s3-outage/in/${id}`;

      // From here on only the victim is refused; count what reaches S3 per key from now.
      proxy.failKeys.add(`in/${victim}`);
      proxy.puts.clear();
      proxy.failAll.on = false;
      await waitFor('the others stored', async () => {
        const keys = await listKeys(aws, 's3-outage', 'in/');
        return others.every((id) => keys.includes(`in/${id}`));
      }, 20_000, 200);
      await waitFor('the victim retried alone', async () => (proxy.puts.get(keyPath(victim!)) ?? 0) >= 3, 20_000, 100);
      proxy.failKeys.clear();
      await waitFor('victim stored', async () => (await listKeys(aws, 's3-outage', 'in/')).includes(`in/${victim}`), 20_000, 200);
      // Each of the others went to S3 exactly once, though its job ran three times or more.
      for (const id of others) expect(proxy.puts.get(keyPath(id)), id).toBe(1);
      const keys = await listKeys(aws, 's3-outage', 'in/');
      for (const s of sent) expect(keys).toContain(`in/${s.messageId}`);
      await waitFor('spool released', async () => (await spooledFiles(spool.dir)).length === 0, 10_000, 200);
    } finally {
      await gw.stop();
    }
  }, 120_000);
});

/** chattr +i makes a directory refuse unlink even to root: a disk that will not let the spool delete a file. */
const canChattr = process.getuid?.() === 0 && existsSync('/usr/bin/chattr');

describe.skipIf(!canChattr)('a spool file that cannot be deleted', () => {
  let redis: RedisServer;
  afterAll(async () => redis?.stop());

  it('its release fails for good; `mailroom queue` says so and names the file; `retry` deletes it once the disk allows', async () => {
    redis = await startRedis();
    const cfg = config('release', redis.url, 'redis-outage', { attempts: 2, backoffBaseMs: 100, backoffMaxMs: 200 });
    const configFile = await writeConfig(dir.path, 'release.json', cfg);
    const messagesDir = join(dir.path, 'release', 'messages');
    // Accept first with no workers, then lock the directory, then let the workers deliver and try to release.
    const front = await startTestGateway(cfg, { smtp: true, workers: false });
    let workers: Awaited<ReturnType<typeof startTestGateway>> | undefined;
    const cli = (args: string[]) => mailroomCli(['queue', ...args, '--config', configFile], { REDIS_URL: redis.url });
    try {
      const sent = await sendRaw(front.port, to, msg('undeletable'));
      const file = (await spoolFileHolding(join(dir.path, 'release'), sent.messageId))!;
      expect(file && existsSync(file)).toBe(true);
      await run('chattr', ['+i', messagesDir]);
      workers = await startTestGateway(cfg, { smtp: false, workers: true });
      const failed = await waitFor('failed release', async () => {
        const r = await cli(['failed', '--json']);
        const f = JSON.parse(r.stdout || '[]') as Array<{ kind: string; jobId: string; messageIds: string[]; reason: string }>;
        return f.find((j) => j.kind === 'release');
      }, 20_000, 300);
      expect(failed.jobId, 'the release job is named by the spool file').toBe(basename(file, '.msg'));
      expect(failed.messageIds).toEqual([sent.messageId]);
      expect(failed.reason).toMatch(/EPERM|not permitted/);
      // Its mail is delivered all the same; only the file stays.
      expect(await listKeys(aws, 'redis-outage', 'in')).toContain(`in/${sent.messageId}`);
      expect(existsSync(file)).toBe(true);
      const human = await cli([]);
      expect(human.stdout).toMatch(/1 spool file delivered but not deleted \(release failed\)/);
      const listed = (await cli(['failed'])).stdout;
      expect(listed).toContain(`release ${failed.jobId}`);
      expect(listed).toContain(`messages: ${sent.messageId}`);

      await run('chattr', ['-i', messagesDir]);
      const retried = await cli(['retry', failed.jobId]);
      expect(retried.code, retried.stderr).toBe(0);
      expect(retried.stdout).toMatch(/retried 1 failed job/);
      await waitFor('spool file deleted', async () => !existsSync(file), 10_000, 200);
    } finally {
      await run('chattr', ['-i', messagesDir]).catch(() => undefined);
      await workers?.stop();
      await front.stop();
    }
  }, 60_000);
});

/**
 * A loopback proxy in front of moto's SNS that makes chosen notifications too long: entries whose Message contains
 * `marker` go on padded past 256 KB, so moto refuses them as SNS does (Failed, InvalidParameter, SenderFault).
 */
function snsProxy(target: string, marker: string): Promise<{ server: Server; url: string; padded: () => number }> {
  let padded = 0;
  const t = new URL(target);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      const form = new URLSearchParams(body.toString('utf8'));
      if (form.get('Action') === 'PublishBatch') {
        for (const [k, v] of [...form]) {
          if (k.endsWith('.Message') && v.includes(marker)) {
            form.set(k, v + ' '.repeat(300_000));
            padded++;
          }
        }
        body = Buffer.from(form.toString(), 'utf8');
      }
      const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, 'content-length': String(body.length) } }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      up.end(body);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, padded: () => padded })));
}

describe('SNS refusing a notification for good', () => {
  let redis: RedisServer;
  let proxy: Awaited<ReturnType<typeof snsProxy>>;
  const saved = process.env.AWS_ENDPOINT_URL_SNS;
  afterAll(async () => {
    if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_SNS;
    else process.env.AWS_ENDPOINT_URL_SNS = saved;
    proxy?.server.close();
    await redis?.stop();
  });

  it('fails the job at once (failed set, error log, metric), keeps the stored object; other messages are announced', async () => {
    redis = await startRedis();
    proxy = await snsProxy(moto.endpoint, 'sns-refuses');
    process.env.AWS_ENDPOINT_URL_SNS = proxy.url;
    const topic = await createTopicWithQueue(aws, 'refusing');
    const cfg = config('sns-refusal', redis.url, 's3-outage', { backoffBaseMs: 1_000, backoffMaxMs: 5_000 });
    cfg.rules[0]!.s3Action.topicArn = topic.topicArn;
    const { log, lines } = capturedLog();
    const gw = await startGateway(runtimeFor(cfg), { smtp: true, workers: true }, log);
    const deliveries = new Queue('deliveries', { connection: { host: '127.0.0.1', port: redis.port }, prefix: gw.queuePrefix });
    try {
      const refused = await sendRaw(gw.smtpAddress!.port, to, msg('sns-refuses'));
      const fine = await sendRaw(gw.smtpAddress!.port, to, msg('announced'));
      const failed = await waitFor('the refused job in the failed set', async () => (await deliveries.getFailed()).find((j) => j.failedReason.includes(refused.messageId)), 10_000, 100);
      expect(failed.attemptsMade).toBe(1);
      expect(failed.failedReason).toMatch(/InvalidParameter: SNS PublishBatch entry failed: .*Message too long/);
      expect(proxy.padded()).toBe(1);
      // Stored, and said so: where it is, and that it was not announced.
      expect(await listKeys(aws, 's3-outage', 'in/')).toContain(`in/${refused.messageId}`);
      const line = lines.find((l) => l.msg.startsWith('SNS refused the notification for good'));
      expect(line).toMatchObject({ level: 50, messageId: refused.messageId, bucket: 's3-outage', key: `in/${refused.messageId}`, errName: 'InvalidParameter' });
      expect(await gw.metrics.registry.render()).toContain('mailroom_notifications_refused_total{error="InvalidParameter"} 1');
      // The spool file stays with the failed job (`mailroom queue retry` publishes again once SNS would take it).
      expect(await spoolFileHolding(join(dir.path, 'sns-refusal'), refused.messageId)).toBeDefined();
      const [announced] = await receiveSns(aws, topic.queueUrl, 1, 10_000);
      expect(JSON.parse(announced!.Message).mail.messageId).toBe(fine.messageId);
    } finally {
      await deliveries.close();
      await gw.stop();
    }
  }, 60_000);
});
