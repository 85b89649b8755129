/**
 * Redis Cluster (cluster mode enabled, as ElastiCache offers it, here with its in-transit encryption and AUTH token:
 * TLS only, a password, a private CA given by NODE_EXTRA_CA_CERTS): a real three-primary cluster on loopback. Two
 * gateways (one delivering on its SMTP thread, one from a delivery thread) are pointed at a node that does *not*
 * hold the prefix's slot, so every command has to follow the cluster's slot map. Mail for two rules (a flow across
 * the spool and deliveries queues per file) is delivered exactly once, every key sits in the hash tag's slot, and
 * `mailroom queue` reads the counts through the cluster. A URL and a cluster setting that disagree are refused at
 * start with what to change.
 */
import { readFileSync } from 'node:fs';
import { Cluster } from 'ioredis';
import { redactRedisUrl } from '../../gateway/redis/connection.js';
import { createTransport, type Transporter } from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/files.js';
import { startMoto, type Moto } from '../support/moto.js';
import { freePort } from '../support/ports.js';
import type { Started } from '../support/process.js';
import { startRedis, startRedisCluster, type RedisClusterServer, type RedisServer } from '../support/redis.js';
import { killHard, mailroomCli, startMailroom, writeConfig } from './child.js';
import { mxLoad } from './mx-load.js';
import { ACCOUNT, awsClients, createBuckets, listKeys, MESSAGE_ID_RE, REGION, selfSignedCert, waitFor, type AwsFixture } from './helpers.js';

const BUCKET = 'cluster';
const PREFIX = '{mx}';
const PER_NODE = 120;
const PASSWORD = 'cluster-auth-token';

let moto: Moto;
let cluster: RedisClusterServer;
let aws: AwsFixture;
let dir: Awaited<ReturnType<typeof tempDir>>;
let cert: { certFile: string; keyFile: string };
/** The private CA (the self-signed server certificate) the gateway is told to trust. */
let ca: string;
const tlsEnv = () => ({ NODE_EXTRA_CA_CERTS: ca });
/** A node of the cluster that does not hold the prefix's slot. */
let seed: string;
const nodes: Array<{ id: string; port: number; configFile: string; proc?: Started; transport?: Transporter }> = [];

function config(id: string, port: number, redis: Record<string, unknown>, spool = id) {
  return {
    region: REGION,
    accountId: ACCOUNT,
    ruleSetName: 'cluster',
    rules: [
      { name: 'inbox', recipients: ['example.com'], s3Action: { bucketName: BUCKET, objectKeyPrefix: 'inbox/' } },
      { name: 'archive', recipients: ['example.com'], s3Action: { bucketName: BUCKET, objectKeyPrefix: 'archive/' } },
    ],
    gateway: {
      hostname: `${id}.mx.test`,
      nodeId: id,
      spoolDir: `${dir.path}/${spool}`,
      smtp: { port, reverseDns: false },
      redis,
      // Failover: a job whose completion was sent to the dead primary stays active until its lock runs out and
      // the stalled check hands it out again (delivered again: at-least-once); short locks make that seconds. A
      // short recovery pass re-enqueues files whose jobs the primary had not yet replicated.
      worker: {
        concurrency: 8,
        thread: id === 'node-b' ? ('yes' as const) : ('no' as const),
        backoffBaseMs: 200,
        backoffMaxMs: 2_000,
        lockDurationMs: 3_000,
        stalledIntervalMs: 1_000,
        recoveryIntervalMs: 2_000,
      },
    },
  };
}

function transportFor(n: (typeof nodes)[number]): Transporter {
  return (n.transport ??= createTransport({ host: '127.0.0.1', port: n.port, pool: true, maxConnections: 4, maxMessages: Infinity, ignoreTLS: true, name: 'load.example.net' }));
}

beforeAll(async () => {
  dir = await tempDir('mailroom-cluster-');
  cert = await selfSignedCert(dir.path, { cn: 'redis-cluster.test', altNames: 'IP:127.0.0.1,DNS:localhost' });
  ca = cert.certFile;
  // A replica per primary and a short node timeout, for the failover test.
  [moto, cluster] = await Promise.all([startMoto(), startRedisCluster(dir.path, { replicas: 1, nodeTimeoutMs: 1_000, tls: cert, password: PASSWORD })]);
  aws = awsClients(moto);
  await createBuckets(aws, BUCKET);
  ({ other: seed } = await cluster.ownerOf(PREFIX));
  for (const id of ['node-a', 'node-b']) {
    const port = await freePort();
    nodes.push({ id, port, configFile: await writeConfig(dir.path, `${id}.json`, config(id, port, { url: seed, cluster: true, prefix: PREFIX })) });
  }
  await Promise.all(nodes.map(async (n) => (n.proc = await startMailroom('gateway', n.configFile, { ...moto.env, ...tlsEnv() }, n.port))));
}, 120_000);

afterAll(async () => {
  for (const n of nodes) n.transport?.close();
  await Promise.all(nodes.map((n) => (n.proc ? killHard(n.proc) : undefined)));
  aws?.destroy();
  await Promise.all([moto?.stop(), cluster?.stop()]);
  await dir?.remove();
});

/**
 * `count` messages over both gateways, resent on failure as MTAs do; `event` starts after the 100th 250 (mid-load).
 * Returns message id → load id for every 250, the failed sends, and the event's result.
 */
async function loadWith<T>(from: number, count: number, event: () => Promise<T>): Promise<{ acked: Map<string, number>; failedSends: number; event: Promise<T> }> {
  const acked = new Map<string, number>();
  let started: Promise<T> | undefined;
  const { failedSends } = await mxLoad({
    from,
    to: from + count,
    gateways: nodes.map((n) => () => transportFor(n)),
    senders: 8,
    maxAttempts: 300,
    retryDelayMs: 100,
    onAck: (loadId, messageId, n) => {
      acked.set(messageId, loadId);
      if (n === 100) started = event();
    },
  });
  return { acked, failedSends, event: started ?? Promise.reject(new Error('the load ended before its 100th 250')) };
}

/** Waits until every acknowledged message id is stored under both rules' prefixes. */
async function everyAckStored(acked: Map<string, number>, when: string, timeoutMs: number): Promise<void> {
  for (const rule of ['inbox', 'archive']) {
    await waitFor(`every acknowledged message under ${rule}/ ${when}`, async () => {
      const have = new Set(await listKeys(aws, BUCKET, `${rule}/`));
      return [...acked.keys()].every((id) => have.has(`${rule}/${id}`));
    }, timeoutMs, 500);
  }
}

/** Waits until `mailroom queue` (through the cluster) shows nothing waiting, active or spooled; returns its counts. */
async function queuesSettled(when: string): Promise<{ deliveries: Record<string, number>; spoolFilesPending: number }> {
  return waitFor(`queues settled ${when}`, async () => {
    const r = await mailroomCli(['queue', '--json', '--config', nodes[0]!.configFile], tlsEnv());
    if (r.code !== 0) return undefined;
    const c = JSON.parse(r.stdout) as { deliveries: Record<string, number>; spoolFilesPending: number };
    return c.spoolFilesPending === 0 && c.deliveries.active === 0 && c.deliveries.waiting === 0 ? c : undefined;
  }, 60_000, 500);
}

describe('gateways on a Redis Cluster', () => {
  it('deliver every message once for each of its rules, with every key in the hash tag slot', async () => {
    const acked = new Map<string, number>();
    await Promise.all(
      nodes.flatMap((n, k) => {
        const t = transportFor(n);
        return Array.from({ length: 4 }, async (_, s) => {
          for (let i = s; i < PER_NODE; i += 4) {
            const id = k * PER_NODE + i;
            const raw = `From: load@origin.example\r\nTo: user@example.com\r\nSubject: cluster ${id}\r\n\r\nmessage ${id}\r\n`;
            const info = await t.sendMail({ envelope: { from: 'load@origin.example', to: ['user@example.com'] }, raw });
            const m = MESSAGE_ID_RE.exec(String(info.response));
            expect(m, String(info.response)).not.toBeNull();
            acked.set(m![1]!, id);
          }
        });
      }),
    );
    expect(acked.size).toBe(2 * PER_NODE);
    for (const rule of ['inbox', 'archive']) {
      const keys = await waitFor(`every message under ${rule}/`, async () => {
        const k = await listKeys(aws, BUCKET, `${rule}/`);
        return k.length >= acked.size ? k : undefined;
      }, 60_000, 500);
      // Exactly the acknowledged ids, each once.
      expect(keys.sort()).toEqual([...acked.keys()].map((id) => `${rule}/${id}`).sort());
    }

    const q = await waitFor('spool files released', async () => {
      const r = await mailroomCli(['queue', '--json', '--config', nodes[0]!.configFile], tlsEnv());
      expect(r.code, r.stderr).toBe(0);
      const c = JSON.parse(r.stdout) as { deliveries: Record<string, number>; spoolFilesPending: number; nodes: Array<{ node: string; status: string }> };
      return c.spoolFilesPending === 0 && c.deliveries.active === 0 && c.deliveries.waiting === 0 ? c : undefined;
    }, 30_000, 500);
    expect(q.nodes.map((n) => [n.node, n.status])).toEqual([
      ['node-a', 'up'],
      ['node-b', 'up'],
    ]);
    expect(q.deliveries.failed).toBe(0);
    // Nothing went wrong on the way: no error lines, no BullMQ warning about the connections it was given.
    for (const n of nodes) expect(n.proc!.output()).not.toMatch(/"level":(50|60)|BullMQ/);
    for (const n of nodes) expect(n.proc!.output()).not.toContain(PASSWORD);
    // Each spool file's flow has one delivery job per rule, both completed: an even count, at least one file's,
    // at most one file per message.
    const completed = q.deliveries.completed ?? NaN;
    expect(completed % 2).toBe(0);
    expect(completed).toBeGreaterThanOrEqual(2);
    expect(completed).toBeLessThanOrEqual(2 * acked.size);

    // Every key of both gateways is under the hash tag, on the one primary that holds its slot.
    const { owner } = await cluster.ownerOf(PREFIX);
    const c = new Cluster([{ host: '127.0.0.1', port: cluster.ports[0]! }], { lazyConnect: true, redisOptions: { tls: { ca: readFileSync(ca) }, password: PASSWORD } });
    try {
      await c.connect();
      const perNode = await Promise.all(c.nodes('master').map(async (n) => ({ url: cluster.urls.find((u) => u.endsWith(`:${n.options.port}`))!, keys: await n.keys('*') })));
      const all = perNode.flatMap((n) => n.keys);
      expect(all.filter((k) => !k.startsWith(`${PREFIX}:`))).toEqual([]);
      expect(perNode.filter((n) => n.keys.length > 0).map((n) => n.url)).toEqual([owner]);
    } finally {
      c.disconnect();
    }
  }, 120_000);

  it('keeps every acknowledged message while the hash tag\'s slot moves to another primary mid-load (online resharding)', async () => {
    const LOAD = 300;
    const { owner: from } = await cluster.ownerOf(PREFIX);
    // To the third primary: `seed` stays the gateways' (and mailroom queue's) way in when the failover test kills the owner.
    const to = cluster.urls.slice(0, 3).find((u) => u !== from && u !== seed)!;
    // ASK/TRYAGAIN while keys move, MOVED after: the cluster client follows; a send that fails anyway is resent.
    const { acked, failedSends, event } = await loadWith(10_000, LOAD, () => cluster.migrateSlot(PREFIX, to));
    const moved = await event;
    expect(moved).toBeGreaterThan(0);
    expect((await cluster.ownerOf(PREFIX)).owner).toBe(to);
    await everyAckStored(acked, 'after the slot moved', 60_000);
    expect((await queuesSettled('after the slot moved')).deliveries.failed).toBe(0);
    for (const n of nodes) expect(n.proc!.child.exitCode).toBeNull();
    console.log(`resharding: ${moved} keys moved mid-load; ${LOAD} acknowledged, ${failedSends} sends failed and were resent`);
  }, 180_000);

  it('refuses to start when the URL names a cluster node but gateway.redis.cluster is false, saying what to set', async () => {
    const port = await freePort();
    const file = await writeConfig(dir.path, 'single-on-cluster.json', config('node-c', port, { url: seed, cluster: false, prefix: PREFIX }, 'node-c'));
    const r = await mailroomCli(['gateway', '--config', file], { ...moto.env, ...tlsEnv() });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`Redis at ${redactRedisUrl(seed)}: this is a Redis Cluster node (cluster_enabled:1): set gateway.redis.cluster to true, with a key prefix that has a hash tag`);
  }, 60_000);

  it('refuses to start with gateway.redis.cluster true against a single Redis, saying what to set', async () => {
    let single: RedisServer | undefined;
    try {
      single = await startRedis({ tls: cert, password: PASSWORD });
      const port = await freePort();
      const file = await writeConfig(dir.path, 'cluster-on-single.json', config('node-d', port, { url: single.url, cluster: true, prefix: PREFIX }, 'node-d'));
      const r = await mailroomCli(['gateway', '--config', file], { ...moto.env, ...tlsEnv() });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`Redis at ${redactRedisUrl(single.url)}: this is not a Redis Cluster node (cluster_enabled:0): set gateway.redis.cluster to false`);
    } finally {
      await single?.stop();
    }
  }, 60_000);

  it('`mailroom queue` on a cluster node without the cluster setting says to add it; with --redis-cluster yes it counts', async () => {
    const file = await writeConfig(dir.path, 'queue-single.json', config('node-a', 25, { url: seed, cluster: false, prefix: PREFIX }));
    const r = await mailroomCli(['queue', '--config', file], tlsEnv());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('this is a Redis Cluster node (cluster_enabled:1): add --redis-cluster yes');
    const ok = await mailroomCli(['queue', '--config', file, '--redis-cluster', 'yes', '--json'], tlsEnv());
    expect(ok.code, ok.stderr).toBe(0);
    expect((JSON.parse(ok.stdout) as { nodes: Array<{ node: string }> }).nodes.map((n) => n.node)).toEqual(['node-a', 'node-b']);
  }, 60_000);

  it('keeps every acknowledged message when the primary holding the queues dies and its replica takes over mid-load', async () => {
    const LOAD = 300;
    const { owner } = await cluster.ownerOf(PREFIX);
    const t0 = Date.now();
    // A 451 while Redis fails over means: send again shortly, at either MX.
    const { acked, failedSends, event } = await loadWith(0, LOAD, () => cluster.kill(Number(new URL(owner).port)));
    await event;
    const tLoad = Date.now();
    expect(acked.size).toBe(LOAD);
    // The replica took the slot over.
    const now = await cluster.ownerOf(PREFIX);
    expect(now.owner).not.toBe(owner);

    // Every acknowledged message is stored for both rules. A message refused with 451 whose jobs had landed anyway
    // may be stored a second time under its own id (at-least-once), never the other way round.
    await everyAckStored(acked, 'after the failover', 90_000);
    const tStored = Date.now();
    expect((await queuesSettled('after the failover')).deliveries.failed).toBe(0);
    for (const n of nodes) expect(n.proc!.child.exitCode).toBeNull();
    console.log(`failover: ${LOAD} acknowledged in ${tLoad - t0} ms, ${failedSends} sends refused or failed during the failover and retried; all stored after ${tStored - t0} ms, queues settled after ${Date.now() - t0} ms`);
  }, 180_000);
});
