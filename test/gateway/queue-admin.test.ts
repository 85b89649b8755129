/**
 * `mailroom queue` after a night of failures (a bucket policy broken for hours): its counts and `retry` walk the
 * failed set a page at a time. Here 1,200 failed delivery jobs on a real Redis — more than two pages — 30 of them
 * lone jobs whose every message was done and only the release (deleting the spool file) failed.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeRegistry, nodePrefix } from '../../gateway/cluster/node.js';
import { QueueAdmin } from '../../gateway/queue/admin.js';
import { DELIVERIES_QUEUE, type DeliveryJobData } from '../../gateway/queue/jobs.js';
import { silentLogger } from '../../gateway/runtime/log.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { waitFor } from './helpers.js';

const PREFIX = 'admin';
const NODE = 'n1';
const FAILED = 1_200;
const RELEASES = 30;

let redis: RedisServer;
let registry: NodeRegistry;

beforeAll(async () => {
  redis = await startRedis();
  registry = new NodeRegistry({ redis: { url: redis.url, cluster: false }, prefix: PREFIX, nodeId: NODE, spoolDir: '/var/spool/mailroom' }, silentLogger());
  await registry.claim(5_000);
}, 60_000);

afterAll(async () => {
  await registry?.close();
  await redis?.stop();
});

function job(i: number): DeliveryJobData {
  const messageId = `m${String(i).padStart(6, '0')}`;
  return {
    v: 2,
    spoolFile: `${messageId}.msg`,
    rule: { name: 'all', scanEnabled: false, s3Action: { bucketName: 'b', objectKeyPrefix: 'in/' } as DeliveryJobData['rule']['s3Action'] },
    messages: [{ at: 0, envelope: { messageId } as DeliveryJobData['messages'][0]['envelope'], recipients: ['user@example.com'] }],
    release: true,
    ...(i < RELEASES ? { done: [messageId] } : {}),
  };
}

describe('mailroom queue over a large failed set', () => {
  it('counts failed releases and retries every failed job across pages', async () => {
    const connection = { url: redis.url };
    const queue = new Queue<DeliveryJobData>(DELIVERIES_QUEUE, { connection, prefix: nodePrefix(PREFIX, NODE) });
    await queue.addBulk(Array.from({ length: FAILED }, (_, i) => ({ name: 'deliver', data: job(i), opts: { jobId: `j${i}`, attempts: 1, removeOnFail: false } })));
    const worker = new Worker(DELIVERIES_QUEUE, async () => Promise.reject(new Error('AccessDenied')), { connection, prefix: nodePrefix(PREFIX, NODE), concurrency: 50 });
    const admin = new QueueAdmin({ url: redis.url, cluster: false }, PREFIX);
    try {
      await waitFor('all failed', async () => (await queue.getFailedCount()) === FAILED, 60_000, 200);
      await worker.close();
      await admin.ready();

      const counts = await admin.counts();
      expect(counts.deliveries.failed).toBe(FAILED);
      expect(counts.releasesFailed).toBe(RELEASES);
      expect(counts.nodes.map((n) => n.node)).toEqual([NODE]);

      const { retried, skipped } = await admin.retry();
      expect(skipped).toEqual([]);
      expect(new Set(retried).size).toBe(FAILED);
      expect(await queue.getFailedCount()).toBe(0);
      expect(await queue.getWaitingCount()).toBe(FAILED);
    } finally {
      await worker.close();
      await admin.close();
      await queue.obliterate({ force: true });
      await queue.close();
    }
  }, 120_000);
});

/** Runs `mailroom queue …` against the test Redis; stdout and stderr apart, as a script would read them. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = fileURLToPath(new URL('../../bin/mailroom.js', import.meta.url));
  const { MAILROOM_CONFIG: _c, MAILROOM_REDIS_CLUSTER: _r, ...base } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, 'queue', ...args], { env: { ...base, REDIS_URL: redis.url, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('mailroom queue, as a command', () => {
  it('says so on stderr when no gateway registered under the prefix in use (stdout stays valid JSON)', async () => {
    const wrong = await cli(['--json']);
    expect(wrong.stderr).toContain('no gateway node has registered under prefix "mailroom" (the default) on Redis at redis://127.0.0.1:');
    expect(wrong.stderr).toContain('pass --config <file>');
    expect(JSON.parse(wrong.stdout)).toMatchObject({ nodes: [] });
    expect(wrong.code).toBe(1);

    const right = await cli(['--json', '--prefix', PREFIX]);
    expect(right.code).toBe(0);
    expect(right.stderr).not.toContain('no gateway node');
    expect((JSON.parse(right.stdout) as { nodes: Array<{ node: string }> }).nodes.map((n) => n.node)).toEqual([NODE]);
  }, 60_000);

  it('`queue failed` names each job\'s rule', async () => {
    const connection = { url: redis.url };
    const queue = new Queue<DeliveryJobData>(DELIVERIES_QUEUE, { connection, prefix: nodePrefix(PREFIX, NODE) });
    const worker = new Worker(DELIVERIES_QUEUE, async () => Promise.reject(new Error('AccessDenied')), { connection, prefix: nodePrefix(PREFIX, NODE) });
    try {
      await queue.add('deliver', { ...job(RELEASES), rule: { ...job(RELEASES).rule, name: 'invoices' } }, { jobId: 'f1.invoices', attempts: 1, removeOnFail: false });
      await waitFor('failed', async () => (await queue.getFailedCount()) === 1, 30_000, 100);
      const out = await cli(['failed', '--prefix', PREFIX]);
      expect(out.code).toBe(0);
      expect(out.stdout).toMatch(/^f1\.invoices {2}rule invoices {2}node n1 {2}attempts 1 .*AccessDenied\n {2}messages: m0+30$/m);
    } finally {
      await worker.close();
      await queue.obliterate({ force: true });
      await queue.close();
    }
  }, 60_000);
});
