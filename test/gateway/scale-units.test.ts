/**
 * The pieces of scale-out and metrics that need no gateway: node ids recorded in the spool, the node registry's
 * refusal of a node id another machine is using (real Redis), and the exposition format.
 */
import { hostname } from 'node:os';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeIdError, nodeIdFromHostname, nodePrefix, NodeRegistry, nodesKey, resolveNodeId, STALE_AFTER_MS } from '../../gateway/cluster/node.js';
import { silentLogger } from '../../gateway/runtime/log.js';
import { rejectionReason } from '../../gateway/observability/metrics.js';
import { Counter, Histogram, Registry } from '../../gateway/observability/registry.js';
import { tempDir } from '../support/files.js';
import { startRedis, type RedisServer } from '../support/redis.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
let redis: RedisServer;

beforeAll(async () => {
  [dir, redis] = await Promise.all([tempDir('mailroom-scale-units-'), startRedis()]);
});

afterAll(async () => {
  await redis?.stop();
  await dir?.remove();
});

describe('node id', () => {
  it('defaults to the host name, is recorded in the spool, and cannot change while the spool holds messages', async () => {
    const spool = join(dir.path, 'a');
    await mkdir(spool, { recursive: true });
    const host = nodeIdFromHostname();
    expect(await resolveNodeId(spool, undefined, async () => 0)).toBe(host);
    expect((await readFile(join(spool, 'node-id'), 'utf8')).trim()).toBe(host);
    // The recorded id wins over the host name (a rebuilt machine with the same spool is the same node).
    await writeFile(join(spool, 'node-id'), 'mx7\n');
    expect(await resolveNodeId(spool, undefined, async () => 3)).toBe('mx7');
    // Another id while messages wait: refused, naming the recorded id.
    await expect(resolveNodeId(spool, 'mx8', async () => 3)).rejects.toThrow(/belongs to node "mx7" and still holds 3 message/);
    // Empty spool: the new id is taken and recorded.
    expect(await resolveNodeId(spool, 'mx8', async () => 0)).toBe('mx8');
    expect((await readFile(join(spool, 'node-id'), 'utf8')).trim()).toBe('mx8');
    await writeFile(join(spool, 'node-id'), 'bad id!\n');
    await expect(resolveNodeId(spool, undefined, async () => 0)).rejects.toBeInstanceOf(NodeIdError);
  });

  it('turns host names into ids and ids into queue prefixes under the user prefix (hash tag first)', () => {
    expect(nodeIdFromHostname('ip-10-0-0-1.ec2.internal')).toBe('ip-10-0-0-1.ec2.internal');
    expect(nodeIdFromHostname('-weird host_name')).toBe('weird-host_name');
    expect(nodeIdFromHostname('')).toBe('node');
    expect(nodePrefix('{mailroom}', 'mx1')).toBe('{mailroom}:node:mx1');
    expect(nodesKey('{mailroom}')).toBe('{mailroom}:nodes');
  });
});

describe('node registry', () => {
  it('refuses a node id another machine beat for recently; takes it when that one is stale or stopped', async () => {
    const r = new Redis(redis.url);
    const claim = async () => {
      const reg = new NodeRegistry({ redis: { url: redis.url, cluster: false }, prefix: 'reg', nodeId: 'mx1', spoolDir: '/var/spool/mailroom' }, silentLogger());
      try {
        await reg.claim(5_000);
      } finally {
        await reg.close();
      }
    };
    try {
      const other = (seenAt: number, extra = {}) => r.hset(nodesKey('reg'), 'mx1', JSON.stringify({ host: 'other-machine', spoolDir: '/var/spool/mailroom', seenAt, ...extra }));
      await other(Date.now());
      await expect(claim()).rejects.toThrow(/node id "mx1" is in use by other-machine/);
      await other(Date.now() - STALE_AFTER_MS - 1_000);
      await claim();
      // close() marked it stopped: another machine may take it at once.
      const rec = JSON.parse((await r.hget(nodesKey('reg'), 'mx1'))!) as { stopped?: boolean };
      expect(rec.stopped).toBe(true);
      await other(Date.now(), { stopped: true });
      await claim();
      // The same machine with another spool is refused too: each side would fail the other's jobs.
      await other(Date.now(), { host: hostname(), spoolDir: '/srv/other-spool' });
      await expect(claim()).rejects.toThrow(/node id "mx1" is in use by .* \(spool \/srv\/other-spool\)/);
    } finally {
      r.disconnect();
    }
  });
});

describe('exposition format', () => {
  it('renders counters with escaped labels and cumulative histogram buckets', async () => {
    const reg = new Registry();
    const c = reg.add(new Counter('t_total', 'help', ['reason'] as const));
    const h = reg.add(new Histogram('t_seconds', 'help', [0.1, 1]));
    c.inc({ reason: 'a"b\\c\nd' }, 2);
    h.observe(0.05);
    h.observe(0.5);
    h.observe(5);
    const text = await reg.render();
    expect(text).toContain('# TYPE t_total counter\nt_total{reason="a\\"b\\\\c\\nd"} 2\n');
    expect(text).toContain('t_seconds_bucket{le="0.1"} 1\nt_seconds_bucket{le="1"} 2\nt_seconds_bucket{le="+Inf"} 3\nt_seconds_sum 5.55\nt_seconds_count 3');
  });

  it('names refusals by their RFC 3463 code', () => {
    expect(rejectionReason('5.1.1 <x@y>: Recipient address rejected')).toBe('bad_mailbox');
    expect(rejectionReason('4.7.0 rate limited')).toBe('security_policy');
    expect(rejectionReason('5.9.9 something')).toBe('x.9.9');
    expect(rejectionReason('no enhanced code')).toBe('other');
  });
});
