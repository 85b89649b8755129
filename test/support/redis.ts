import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';
import { startProcess, waitForPort, type Started } from './process.js';

const run = promisify(execFile);

export interface RedisServer {
  port: number;
  url: string;
  /** The running server's process id (SIGSTOP/SIGCONT make a Redis that stalls without closing connections). */
  readonly pid: number;
  stop: () => Promise<void>;
  /** Starts it again on the same port (after stop), e.g. for outage tests. */
  restart: () => Promise<void>;
}

/**
 * Starts redis-server on a free loopback port. No persistence unless asked: tests get a clean Redis, and a stopped
 * one comes back empty — which is exactly the "Redis lost its data" case the gateway must survive.
 */
export async function startRedis(opts: { persistDir?: string; tls?: { certFile: string; keyFile: string }; password?: string } = {}): Promise<RedisServer> {
  const port = await freePort();
  // TLS: only the TLS port listens (as ElastiCache with in-transit encryption); clients are not asked for certificates.
  const listen = opts.tls ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', opts.tls.certFile, '--tls-key-file', opts.tls.keyFile, '--tls-ca-cert-file', opts.tls.certFile, '--tls-auth-clients', 'no'] : ['--port', String(port)];
  const args = [...listen, '--bind', '127.0.0.1', '--protected-mode', 'yes', '--save', ''];
  if (opts.password) args.push('--requirepass', opts.password);
  if (opts.persistDir) args.push('--dir', opts.persistDir, '--appendonly', 'yes', '--appendfsync', 'always');
  else args.push('--appendonly', 'no');
  let proc: Started;
  const start = async () => {
    try {
      proc = startProcess('redis-server', args);
      await waitForPort(port, 15_000, proc.child);
    } catch (err) {
      throw new Error(`could not start redis-server (apt-get install redis-server): ${(err as Error).message}`);
    }
  };
  await start();
  return {
    port,
    url: `${opts.tls ? 'rediss' : 'redis'}://${opts.password ? `:${encodeURIComponent(opts.password)}@` : ''}127.0.0.1:${port}`,
    get pid() {
      return proc.child.pid!;
    },
    stop: () => proc.stop(),
    restart: start,
  };
}

/**
 * Brings a stopped Redis back and, once a client left reconnecting would be back (ioredis backs off at most 2 s with
 * the gateway's settings), lists who is connected besides the probe asking: what a stopped gateway left behind.
 */
export async function clientsBackAfterRestart(redis: RedisServer): Promise<string[]> {
  await redis.restart();
  await new Promise((r) => setTimeout(r, 3_000));
  const probe = new Redis(redis.url);
  try {
    const me = await probe.client('ID');
    return String(await probe.client('LIST')).trim().split('\n').filter((l) => !l.startsWith(`id=${me} `));
  } finally {
    probe.disconnect();
  }
}

export interface RedisClusterServer {
  /** One URL per node, in start order (primaries first, as `--cluster create` pairs them). */
  urls: string[];
  ports: number[];
  /** The URL of the primary that holds `key`'s slot now, and of a primary that does not. */
  ownerOf(key: string): Promise<{ owner: string; other: string }>;
  /** SIGKILLs the node on `port` (a crash: no shutdown, no save). */
  kill(port: number): Promise<void>;
  /**
   * Moves `key`'s slot, with its keys, from the primary holding it to the primary at `to` while clients keep working:
   * IMPORTING/MIGRATING, MIGRATE in batches, then the new owner announced to every primary — what online resharding
   * (ElastiCache scaling) does slot by slot. Returns how many keys moved.
   */
  migrateSlot(key: string, to: string): Promise<number>;
  stop: () => Promise<void>;
}

/**
 * A Redis Cluster of `primaries` primaries with `replicas` replicas each, on free loopback ports, slots spread by
 * `redis-cli --cluster create` (Debian's redis-tools, which redis-server depends on). No persistence. A failed
 * primary is replaced by its replica after `nodeTimeoutMs` (Redis's cluster-node-timeout). With `tls` and `password`
 * it runs as ElastiCache does with in-transit encryption and an AUTH token: TLS only (clients, the cluster bus and
 * replication), every node asking for the password.
 */
export async function startRedisCluster(
  dir: string,
  opts: { primaries?: number; replicas?: number; nodeTimeoutMs?: number; tls?: { certFile: string; keyFile: string }; password?: string } = {},
): Promise<RedisClusterServer> {
  const { primaries = 3, replicas = 0, nodeTimeoutMs = 15_000, tls, password } = opts;
  const clientArgs = [...(tls ? ['--tls', '--cacert', tls.certFile] : []), ...(password ? ['-a', password, '--no-auth-warning'] : [])];
  const ports: number[] = [];
  const procs = new Map<number, Started>();
  const stop = async () => void (await Promise.all([...procs.values()].map((p) => p.stop())));
  const cli = async (port: number, ...args: string[]) => (await run('redis-cli', [...clientArgs, '-p', String(port), ...args], { timeout: 10_000 })).stdout;
  try {
    for (let i = 0; i < primaries * (1 + replicas); i++) {
      const port = await freePort();
      const nodeDir = join(dir, `redis-${port}`);
      await mkdir(nodeDir, { recursive: true });
      const listen = tls
        ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile, '--tls-ca-cert-file', tls.certFile, '--tls-auth-clients', 'no', '--tls-cluster', 'yes', '--tls-replication', 'yes']
        : ['--port', String(port)];
      const args = [...listen, '--bind', '127.0.0.1', '--protected-mode', 'yes', '--save', '', '--appendonly', 'no', '--dir', nodeDir];
      if (password) args.push('--requirepass', password, '--masterauth', password);
      args.push('--cluster-enabled', 'yes', '--cluster-config-file', join(nodeDir, 'nodes.conf'), '--cluster-node-timeout', String(nodeTimeoutMs));
      const proc = startProcess('redis-server', args);
      procs.set(port, proc);
      await waitForPort(port, 15_000, proc.child);
      ports.push(port);
    }
    await run('redis-cli', [...clientArgs, '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { timeout: 30_000 });
    // Every node must agree, and every replica be in sync, before clients come: `create` returns once slots are
    // assigned; gossip and the first sync follow.
    const deadline = Date.now() + 30_000;
    for (const port of ports) {
      for (;;) {
        const info = await cli(port, 'cluster', 'info');
        const role = await cli(port, 'info', 'replication');
        if (info.includes('cluster_state:ok') && (role.includes('role:master') || role.includes('master_link_status:up'))) break;
        if (Date.now() > deadline) throw new Error(`redis cluster node ${port} not ready: ${info} ${role}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    await stop();
    throw new Error(`could not start a redis cluster (apt-get install redis-server): ${(err as Error).message}`);
  }
  const base = (port: number) => `${tls ? 'rediss' : 'redis'}://${password ? `:${encodeURIComponent(password)}@` : ''}127.0.0.1:${port}`;
  const urls = ports.map(base);
  const live = () => ports.filter((p) => procs.get(p)!.child.exitCode === null && procs.get(p)!.child.signalCode === null);
  const ownerOf = async (key: string): Promise<{ owner: string; other: string }> => {
    const asked = live()[0]!;
    const slot = Number((await cli(asked, 'cluster', 'keyslot', key)).trim());
    const masters = (await cli(asked, 'cluster', 'nodes'))
      .trim()
      .split('\n')
      .map((line) => line.split(' '))
      .filter((f) => f[2]!.split(',').includes('master') && !f[2]!.includes('fail'));
    const portOf = (f: string[]) => Number(/:(\d+)@/.exec(f[1]!)?.[1]);
    const holds = (f: string[]) => f.slice(8).some((r) => (r.includes('-') ? slot >= Number(r.split('-')[0]) && slot <= Number(r.split('-')[1]) : slot === Number(r)));
    const owner = masters.find(holds);
    const other = masters.find((f) => !holds(f) && f[7] === 'connected');
    if (!owner || !other) throw new Error(`no live primary holds slot ${slot}, or none other is left`);
    return { owner: base(portOf(owner)), other: base(portOf(other)) };
  };

  return {
    urls,
    ports,
    ownerOf,
    async migrateSlot(key, to) {
      const slot = (await cli(live()[0]!, 'cluster', 'keyslot', key)).trim();
      const { owner } = await ownerOf(key);
      const [src, dst] = [Number(new URL(owner).port), Number(new URL(to).port)];
      const idOf = async (port: number) => (await cli(port, 'cluster', 'myid')).trim();
      const [srcId, dstId] = [await idOf(src), await idOf(dst)];
      await cli(dst, 'cluster', 'setslot', slot, 'importing', srcId);
      await cli(src, 'cluster', 'setslot', slot, 'migrating', dstId);
      let moved = 0;
      for (;;) {
        const keys = (await cli(src, 'cluster', 'getkeysinslot', slot, '100')).split('\n').filter(Boolean);
        if (keys.length === 0) break;
        const out = await cli(src, 'migrate', '127.0.0.1', String(dst), '', '0', '5000', ...(password ? ['AUTH', password] : []), 'KEYS', ...keys);
        if (!/OK|NOKEY/.test(out)) throw new Error(`MIGRATE: ${out}`);
        moved += keys.length;
      }
      for (const port of [dst, src]) await cli(port, 'cluster', 'setslot', slot, 'node', dstId);
      for (const port of live()) if (port !== src && port !== dst) await cli(port, 'cluster', 'setslot', slot, 'node', dstId).catch(() => '');
      return moved;
    },
    async kill(port) {
      const p = procs.get(port)!;
      const exited = new Promise((r) => p.child.once('exit', r));
      p.child.kill('SIGKILL');
      await exited;
    },
    stop,
  };
}
