/**
 * Scale-out: two gateway processes (child processes, each its own node id, spool and SMTP port) on one Redis and
 * one moto. A load spread over both is delivered exactly once; every Redis key is under the `{hash-tag}` prefix;
 * `mailroom queue` shows both nodes. Then one node is killed with SIGKILL mid-load and started again: every
 * message that got a 250 is stored, holding the message that 250 acknowledged.
 */
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { createTransport, type Transporter } from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/files.js';
import { spooledFiles } from '../support/spool.js';
import type { Moto } from '../support/moto.js';
import { freePort } from '../support/ports.js';
import type { Started } from '../support/process.js';
import type { RedisServer } from '../support/redis.js';
import { killHard, mailroomCli, startMailroom, writeConfig } from './child.js';
import { mxLoad } from './mx-load.js';
import { ACCOUNT, createBuckets, listKeys, REGION, waitFor, type AwsFixture, startBackends, type Backends } from './helpers.js';

const BUCKET = 'scale';
const PREFIX = '{scale}';
/** Connections per node. */
const SENDERS = 8;
const FIRST_LOAD = 600;
const SECOND_LOAD = 400;
const KILL_AFTER = 150;

interface Node {
  id: string;
  smtpPort: number;
  httpPort: number;
  configFile: string;
  spool: string;
  proc?: Started;
  transport?: Transporter;
}

let backends: Backends;
let moto: Moto;
let redis: RedisServer;
let aws: AwsFixture;
let dir: Awaited<ReturnType<typeof tempDir>>;
const nodes: Node[] = [];
/** Load id → SES message id named by its 250, over both loads. */
const acked = new Map<number, string>();

beforeAll(async () => {
  backends = await startBackends('mailroom-scale-');
  ({ moto, redis, dir, aws } = backends);
  await createBuckets(aws, BUCKET);
  for (const id of ['node-a', 'node-b']) {
    const [smtpPort, httpPort] = [await freePort(), await freePort()];
    const spool = join(dir.path, id);
    const configFile = await writeConfig(dir.path, `${id}.json`, {
      region: REGION,
      accountId: ACCOUNT,
      ruleSetName: 'scale',
      rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: BUCKET, objectKeyPrefix: 'in/' } }],
      gateway: {
        hostname: `${id}.mx.test`,
        nodeId: id,
        spoolDir: spool,
        smtp: { port: smtpPort, reverseDns: false, maxConnections: 50 },
        redis: { url: redis.url, prefix: PREFIX },
        // Short locks so deliveries the killed node held are taken over by its restart within seconds.
        // node-b delivers from a thread of its own (gateway.worker.thread), node-a on its SMTP thread: both layouts
        // under the same load and the same kill.
        worker: { concurrency: 8, lockDurationMs: 3_000, stalledIntervalMs: 1_000, backoffBaseMs: 200, backoffMaxMs: 2_000, recoveryIntervalMs: 2_000, thread: id === 'node-b' ? 'yes' : 'no' },
        http: { port: httpPort },
      },
    });
    nodes.push({ id, smtpPort, httpPort, configFile, spool });
  }
  await Promise.all(nodes.map(async (n) => (n.proc = await startMailroom('gateway', n.configFile, { ...moto.env }, n.smtpPort))));
}, 120_000);

afterAll(async () => {
  for (const n of nodes) n.transport?.close();
  await Promise.all(nodes.map((n) => (n.proc ? killHard(n.proc) : undefined)));
  await backends?.stop();
});

function transportFor(n: Node): Transporter {
  return (n.transport ??= createTransport({ host: '127.0.0.1', port: n.smtpPort, pool: true, maxConnections: SENDERS, maxMessages: Infinity, ignoreTLS: true, name: 'load.example.net', connectionTimeout: 5_000, socketTimeout: 30_000 }));
}

/**
 * Sends load ids [from, to) spread over both nodes, SENDERS connections each. A send that fails is retried on the
 * other node, as an MTA fails over between MX hosts, until it gets a 250. `onAck` runs after every 250.
 */
async function load(from: number, to: number, onAck?: (count: number) => void): Promise<void> {
  await mxLoad({
    from,
    to,
    gateways: nodes.map((n) => () => transportFor(n)),
    senders: SENDERS * nodes.length,
    onAck: (loadId, messageId, count) => {
      acked.set(loadId, messageId);
      onAck?.(count);
    },
  });
}

/** Waits until every acknowledged message is in the bucket; returns the keys and each key's X-Load-Id. */
async function delivered(timeoutMs: number): Promise<Map<string, number>> {
  const wanted = [...acked.values()].map((id) => `in/${id}`);
  const keys = await waitFor(
    'every acknowledged message in the bucket',
    async () => {
      const k = await listKeys(aws, BUCKET);
      const have = new Set(k);
      return wanted.every((w) => have.has(w)) ? k : undefined;
    },
    timeoutMs,
    500,
  );
  const byKey = new Map<string, number>();
  for (let i = 0; i < keys.length; i += 50) {
    const batch = keys.slice(i, i + 50);
    const ids = await Promise.all(
      batch.map(async (key) => {
        const r = await aws.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: 'bytes=0-1023' }));
        return Number(/X-Load-Id: (\d+)/.exec(await r.Body!.transformToString('latin1'))?.[1]);
      }),
    );
    batch.forEach((k, j) => byKey.set(k, ids[j]!));
  }
  return byKey;
}

async function scrape(n: Node, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${n.httpPort}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

const spoolEmpty = async () => (await Promise.all(nodes.map((n) => spooledFiles(n.spool)))).every((f) => f.length === 0);

describe('two gateways on one Redis', () => {
  it(`deliver ${FIRST_LOAD} messages spread over both exactly once, each node its own queues under the hash-tag prefix`, async () => {
    const started = Date.now();
    await load(0, FIRST_LOAD);
    const loadDone = Date.now();
    expect(acked.size).toBe(FIRST_LOAD);
    const byKey = await delivered(60_000);
    const allDelivered = Date.now();
    // No failures, no kill: exactly the acknowledged objects, each holding the message its 250 acknowledged.
    expect(byKey.size).toBe(FIRST_LOAD);
    for (const [loadId, messageId] of acked) expect(byKey.get(`in/${messageId}`), `load ${loadId}`).toBe(loadId);
    await waitFor('spools released', spoolEmpty, 30_000, 250);

    // Both nodes took part, and each message was delivered once: the deliveries counted by the two nodes add up to
    // the messages they accepted (an object written twice would count twice).
    const accepted = await Promise.all(nodes.map((n) => scrape(n, 'mailroom_smtp_accepted_total')));
    const deliveredCounts = await Promise.all(nodes.map((n) => scrape(n, 'mailroom_deliveries_total{result="delivered"}')));
    for (const a of accepted) expect(a).toBeGreaterThan(FIRST_LOAD / 4);
    expect(accepted[0]! + accepted[1]!).toBe(FIRST_LOAD);
    // Each node delivers exactly what it accepted: jobs never cross to the node without the spool file.
    expect(deliveredCounts).toEqual(accepted);

    // `mailroom queue` shows both nodes with their own completed job counts.
    const q = await mailroomCli(['queue', '--json', '--config', nodes[0]!.configFile]);
    expect(q.code, q.stderr).toBe(0);
    const counts = JSON.parse(q.stdout) as { deliveries: Record<string, number>; nodes: Array<{ node: string; status: string; deliveries: Record<string, number>; spoolFilesPending: number }> };
    expect(counts.nodes.map((n) => [n.node, n.status])).toEqual([
      ['node-a', 'up'],
      ['node-b', 'up'],
    ]);
    // One completed job per spool file and rule (one rule here): as many as the batch files the node wrote, which
    // hold one message or several.
    const batchFiles = await Promise.all(
      nodes.map(async (n) => (await scrape(n, 'mailroom_spool_batch_files_total{file="spare"}')) + (await scrape(n, 'mailroom_spool_batch_files_total{file="created"}'))),
    );
    counts.nodes.forEach((n, i) => {
      expect(n.deliveries.completed).toBe(batchFiles[i]);
      expect(n.deliveries.completed).toBeLessThanOrEqual(accepted[i]!);
      expect(n.spoolFilesPending).toBe(0);
    });
    expect(counts.deliveries.completed).toBe(counts.nodes.reduce((a, n) => a + (n.deliveries.completed ?? 0), 0));
    const human = await mailroomCli(['queue', '--config', nodes[0]!.configFile]);
    expect(human.stdout).toMatch(/node node-a \([^)]*up[^)]*\): waiting 0, active 0, delayed 0, failed 0, completed \d+; spooled 0/);
    expect(human.stdout).toMatch(/node node-b \(/);

    // Every key the gateways wrote is under the hash tag: one Redis Cluster slot, as BullMQ's flows need.
    const r = new Redis(redis.url);
    try {
      const keys = await r.keys('*');
      expect(keys.filter((k) => !k.startsWith(`${PREFIX}:`))).toEqual([]);
      expect(keys.some((k) => k.startsWith(`${PREFIX}:node:node-a:deliveries:`))).toBe(true);
      expect(keys.some((k) => k.startsWith(`${PREFIX}:node:node-b:deliveries:`))).toBe(true);
    } finally {
      r.disconnect();
    }
    console.log(
      `scale test: ${FIRST_LOAD} messages over two nodes (${accepted.join(' + ')}) accepted in ${((loadDone - started) / 1000).toFixed(1)} s, all delivered ${((allDelivered - started) / 1000).toFixed(1)} s after start, checks done at ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }, 120_000);

  it(`lose nothing acknowledged when one node is killed (SIGKILL) mid-load and started again`, async () => {
    const started = Date.now();
    const victim = nodes[1]!;
    let restarted: Promise<void> | undefined;
    let leftInSpool = 0;
    await load(FIRST_LOAD, FIRST_LOAD + SECOND_LOAD, (count) => {
      if (count !== KILL_AFTER) return;
      restarted = (async () => {
        await killHard(victim.proc!);
        // What the dead node holds: only its own restart can deliver these (no other node can read its spool).
        leftInSpool = (await spooledFiles(victim.spool)).length;
        // Its clients fail over to node-a meanwhile; the restart resumes node-b's own queue and spool.
        await new Promise((r) => setTimeout(r, 500));
        victim.proc = await startMailroom('gateway', victim.configFile, { ...moto.env }, victim.smtpPort);
      })();
    });
    await restarted;
    const loadDone = Date.now();
    expect(restarted).toBeDefined();
    expect(leftInSpool).toBeGreaterThan(0);
    expect(acked.size).toBe(FIRST_LOAD + SECOND_LOAD);

    const byKey = await delivered(60_000);
    for (const [loadId, messageId] of acked) expect(byKey.get(`in/${messageId}`), `load ${loadId}`).toBe(loadId);
    // Beyond the acknowledged objects only resends: messages node-b had spooled and enqueued when it died, whose
    // 250 never reached the client (at most one per connection to it), sent again and acknowledged by a node.
    const wanted = new Set([...acked.values()].map((id) => `in/${id}`));
    const extra = [...byKey.keys()].filter((k) => !wanted.has(k));
    expect(extra.length).toBeLessThanOrEqual(SENDERS);
    for (const k of extra) expect(acked.has(byKey.get(k)!)).toBe(true);
    await waitFor('spools released', spoolEmpty, 30_000, 250);
    console.log(
      `scale kill test: ${SECOND_LOAD} messages, node-b killed after ${KILL_AFTER} with ${leftInSpool} messages in its spool and restarted; load done in ${((loadDone - started) / 1000).toFixed(1)} s, all delivered ${((Date.now() - started) / 1000).toFixed(1)} s after start; ${extra.length} resent duplicates`,
    );
  }, 120_000);
});
