/**
 * The accept path's two waits overlap: a batch file's jobs go to Redis while the disk flushes, and the 250 still
 * waits for both. The SMTP front runs in this process on a real spool and a real Redis; only the fsync of
 * `messages/` is held or failed on purpose (a disk that fails on demand cannot run here), and every 250 waits for it.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Enqueuer } from '../../gateway/queue/enqueue.js';
import { DELIVERIES_QUEUE, deliveryJobId, SPOOL_QUEUE } from '../../gateway/queue/jobs.js';
import { SmtpFront } from '../../gateway/smtp/server.js';
import { Intake } from '../../gateway/intake/intake.js';
import { tempDir } from '../support/files.js';
import { interceptDirSync, TestSpool, type DirSync } from '../support/spool.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { ACCOUNT, capturedLog, RawSmtp, rawMessage, REGION, runtimeFor, waitFor } from './helpers.js';

let redis: RedisServer;
let dir: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedis(), tempDir('mailroom-overlap-')]);
}, 60_000);

afterAll(async () => {
  await redis?.stop();
  await dir?.remove();
});


interface Harness {
  port: number;
  spool: TestSpool;
  deliveries: Queue;
  /** The flows' parents (spool/release). */
  releases: Queue;
  lines: Array<Record<string, unknown>>;
  dirSync: DirSync;
  dirSyncCalls: number;
  stop(): Promise<void>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** `enqueueTimeoutMs`: how long the front waits for Redis once the disk is done; `twoRules`: every message is a flow. */
async function start(name: string, opts: { enqueueTimeoutMs?: number; twoRules?: boolean } = {}): Promise<Harness> {
  const enqueueTimeoutMs = opts.enqueueTimeoutMs ?? 2_000;
  const runtime = runtimeFor({
    region: REGION,
    accountId: ACCOUNT,
    ruleSetName: name,
    rules: [
      { name: 'all', recipients: ['example.com'], s3Action: { bucketName: 'overlap-bucket', objectKeyPrefix: 'in' } },
      ...(opts.twoRules ? [{ name: 'copy', recipients: ['u@example.com'], s3Action: { bucketName: 'overlap-copies', objectKeyPrefix: 'in' } }] : []),
    ],
    gateway: { hostname: `mx.${name}.test`, spoolDir: join(dir.path, name), smtp: { port: 0, reverseDns: false }, redis: { url: redis.url, prefix: name, enqueueTimeoutMs } },
  });
  const { log, lines } = capturedLog('debug');
  const spool = new TestSpool(runtime.settings.spoolDir);
  await spool.init({ clearIncoming: true });
  const h = { dirSync: { mode: 'pass' } as DirSync, dirSyncCalls: 0 } as Harness;
  interceptDirSync(spool.directory, h);
  const enqueuer = new Enqueuer(
    { redis: runtime.settings.redis, prefix: name, timeoutMs: enqueueTimeoutMs, policy: { attempts: 3, backoffBaseMs: 100, keepCompleted: 10 } },
    log,
  );
  await enqueuer.ready(10_000);
  const intake = new Intake({
    directory: spool.directory,
    writer: spool.writer,
    jobs: enqueuer,
    log,
    jobsTimeoutMs: enqueueTimeoutMs,
    maxMessageBytes: runtime.config.maxMessageSize,
    identity: { byHost: runtime.settings.hostname, accountId: runtime.config.accountId, region: runtime.config.region },
  });
  const front = new SmtpFront({ runtime, intake, spoolDir: runtime.settings.spoolDir, log });
  const addr = await front.listen();
  const deliveries = new Queue(DELIVERIES_QUEUE, { connection: { url: redis.url } as never, prefix: name });
  const releases = new Queue(SPOOL_QUEUE, { connection: { url: redis.url } as never, prefix: name });
  Object.assign(h, {
    port: addr.port,
    spool,
    deliveries,
    releases,
    lines,
    stop: async () => {
      await front.stop();
      await intake.settled();
      intake.close();
      await deliveries.close();
      await releases.close();
      await enqueuer.close();
      await spool.close();
    },
  });
  cleanups.push(() => h.stop());
  return h;
}

async function openSession(port: number): Promise<RawSmtp> {
  const c = await RawSmtp.connect(port);
  for (const line of ['EHLO client.example.net', 'MAIL FROM:<a@origin.example>', 'RCPT TO:<u@example.com>', 'DATA']) {
    const r = await c.command(line);
    if (!/^(250|354)/.test(r)) throw new Error(`${line}: ${r}`);
  }
  c.write(rawMessage([['Subject', 'overlap']], 'body\r\n'));
  return c;
}

/** The one batch file in messages/, once it is there: its id. */
async function writtenFile(h: Harness): Promise<string> {
  const names = await waitFor('the batch file in messages/', async () => {
    const n = await readdir(h.spool.directory.messagesDir);
    return n.length === 1 ? n : undefined;
  });
  return names[0]!.replace(/\.msg$/, '');
}

/** A reply that has not come within `ms`: undefined (the session stays usable). */
async function replyWithin(c: RawSmtp, ms: number): Promise<string | undefined> {
  try {
    return await c.reply(ms);
  } catch (err) {
    if (/no reply within/.test((err as Error).message)) return undefined;
    throw err;
  }
}

describe('jobs added while the disk flushes', () => {
  it('the job is in Redis before the flush completes, and the 250 comes only after it (however long the flush took)', async () => {
    // Redis's time limit runs from the end of the flush: a flush longer than it is no reason for a 451.
    const h = await start('overlap-hold', { enqueueTimeoutMs: 400 });
    let release!: () => void;
    h.dirSync = { mode: 'hold', released: new Promise<void>((r) => (release = r)) };
    // Should an expectation fail while the fsync is held, the front's stop must not wait out its close timeout.
    cleanups.unshift(async () => release());
    const c = await openSession(h.port);
    cleanups.push(async () => c.close());
    // Redis busy for 700 ms (a script spinning): the add takes longer than the 400 ms limit, but ends before the
    // flush does — the client must get its 250.
    const busy = new Redis(redis.url);
    cleanups.push(async () => busy.disconnect());
    const spun = busy.eval("local t0 = redis.call('TIME') while true do local t = redis.call('TIME') if (t[1] - t0[1]) * 1000000 + t[2] - t0[2] > 700000 then return 1 end end", 0);
    await new Promise((r) => setTimeout(r, 50));
    c.write('\r\n.\r\n');
    // The batch file's bytes are written, its directory fsync is held: the job shows up in Redis, the 250 does not.
    const fileId = await writtenFile(h);
    expect(await spun).toBe(1);
    const job = await waitFor('the delivery job in Redis', async () => (await h.deliveries.getJob(fileId)) ?? undefined, 5_000);
    expect(job.data.messages).toHaveLength(1);
    expect(await replyWithin(c, 1_200)).toBeUndefined();
    release();
    expect(await c.reply(10_000)).toMatch(new RegExp(`^250 Ok ${fileId}$`));
  });

  it('a file for two rules (a flow): its parent and both children are in Redis before the flush completes', async () => {
    const h = await start('overlap-flow', { twoRules: true });
    let release!: () => void;
    h.dirSync = { mode: 'hold', released: new Promise<void>((r) => (release = r)) };
    cleanups.unshift(async () => release());
    const c = await openSession(h.port);
    cleanups.push(async () => c.close());
    c.write('\r\n.\r\n');
    const fileId = await writtenFile(h);
    await waitFor('the flow in Redis', async () => ((await h.releases.getJob(fileId)) ? true : undefined), 5_000);
    const children = await Promise.all(['all', 'copy'].map((rule) => h.deliveries.getJob(deliveryJobId(fileId, rule))));
    expect(children.map((j) => j?.data.rule.name)).toEqual(['all', 'copy']);
    expect(await replyWithin(c, 500)).toBeUndefined();
    release();
    expect(await c.reply(10_000)).toMatch(new RegExp(`^250 Ok ${fileId}$`));
  });

  it('a flush that fails after the jobs went in: 451, and the file stays for its jobs (logged); the next message gets 250', async () => {
    const h = await start('overlap-fail');
    h.dirSync = { mode: 'fail' };
    const c = await openSession(h.port);
    cleanups.push(async () => c.close());
    c.write('\r\n.\r\n');
    expect(await c.reply(10_000)).toMatch(/^451 4\.3\.0 /);
    const names = await readdir(h.spool.directory.messagesDir);
    expect(names).toHaveLength(1);
    const fileId = names[0]!.replace(/\.msg$/, '');
    expect((await h.deliveries.getJob(fileId))?.data.messages.map((m: { envelope: { messageId: string } }) => m.envelope.messageId)).toEqual([fileId]);
    // What was written is whole: the delivery would store exactly it.
    const file = await h.spool.openFile(fileId);
    expect(file.entries.map((e) => e.record.envelope.messageId)).toEqual([fileId]);
    const warned = await waitFor('the warning', async () => h.lines.find((l) => l.msg === 'the jobs went in although the message was refused; it will be delivered from its spool file (and may arrive again from its sender)'));
    expect(warned.messageId).toBe(fileId);
    expect(h.lines.some((l) => l.msg === 'spool write failed; message refused' && l.messageId === fileId)).toBe(true);

    h.dirSync = { mode: 'pass' };
    const d = await openSession(h.port);
    cleanups.push(async () => d.close());
    d.write('\r\n.\r\n');
    expect(await d.reply(10_000)).toMatch(/^250 Ok /);
  });

  it('a flush that fails while Redis refuses the jobs too: 451, and the file is removed', async () => {
    const h = await start('overlap-both');
    h.dirSync = { mode: 'fail' };
    // Redis refusing writes (over its memory limit): the add fails as it would with Redis down, without stopping
    // the server the other tests share.
    const admin = new Redis(redis.url);
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', '1');
    cleanups.unshift(async () => {
      await admin.config('SET', 'maxmemory', '0');
      admin.disconnect();
    });
    const c = await openSession(h.port);
    cleanups.push(async () => c.close());
    c.write('\r\n.\r\n');
    expect(await c.reply(10_000)).toMatch(/^451 4\.3\.0 /);
    await waitFor('the abandoned file removed', async () => ((await readdir(h.spool.directory.messagesDir)).length === 0 ? true : undefined), 5_000);
    expect(h.lines.some((l) => l.msg === 'the jobs went in although the message was refused; it will be delivered from its spool file (and may arrive again from its sender)')).toBe(false);
  });
});
