import type { ConnectionOptions, RedisOptions } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { ClusterScripts } from './cluster-scripts.js';

/**
 * The gateway's Redis connections, for a single Redis (or an ElastiCache primary endpoint) and for a Redis Cluster.
 *
 * Roles:
 * - producer (accept path, health, registry): fail fast. No offline queue and one retry per command, so a Redis
 *   outage turns into a 451 within milliseconds instead of SMTP sessions hanging on commands buffered for later.
 * - worker: BullMQ's blocking connections need `maxRetriesPerRequest: null` and ride out outages by reconnecting.
 * - admin (`mailroom queue`): fail fast and do not reconnect: an operator command says "Redis is not there".
 *
 * On a cluster every key of the gateway shares the prefix's hash tag (config schema), so it all lives in one slot
 * and BullMQ's multi-key scripts and the accept path's MULTI work as on a single Redis; the cluster client follows
 * the slot to whichever node holds it, through failovers and resharding.
 */

/** Where the queues live. */
export interface RedisTarget {
  url: string;
  /** A Redis Cluster, reached through `url` as one seed node. */
  cluster: boolean;
}

export type RedisClient = Redis | Cluster;
export type RedisRole = 'producer' | 'worker' | 'admin';

function redisOptionsFromUrl(url: string): RedisOptions {
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`"${url}" is not a redis:// or rediss:// URL`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined;
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db !== undefined && Number.isInteger(db) ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    connectTimeout: 5_000,
    retryStrategy: (times: number) => Math.min(200 * times, 2_000),
  };
}

function roleOptions(role: RedisRole): RedisOptions {
  switch (role) {
    case 'producer':
      return { enableOfflineQueue: false, maxRetriesPerRequest: 1 };
    case 'worker':
      return { maxRetriesPerRequest: null };
    case 'admin':
      return { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => null };
  }
}

/** Single-Redis options for a role (what BullMQ gets on a single Redis). */
export function roleConnection(url: string, role: RedisRole): RedisOptions {
  return { ...redisOptionsFromUrl(url), ...roleOptions(role) };
}

interface ClientExtras {
  lazyConnect?: boolean;
  connectTimeout?: number;
}

/** A client of our own (not BullMQ's) for the target. */
export function redisClient(target: RedisTarget, role: RedisRole, extra: ClientExtras = {}): RedisClient {
  const opts = { ...roleConnection(target.url, role), ...(extra.connectTimeout !== undefined ? { connectTimeout: extra.connectTimeout } : {}) };
  if (!target.cluster) return new Redis({ ...opts, ...(extra.lazyConnect !== undefined ? { lazyConnect: extra.lazyConnect } : {}) });
  const { host, port, retryStrategy, enableOfflineQueue, db: _db, ...node } = opts;
  return new Cluster([{ host: host ?? '127.0.0.1', port: port ?? 6379 }], {
    // Per-node connections: credentials, TLS, timeouts and the role's retry budget per command.
    redisOptions: node,
    ...(enableOfflineQueue !== undefined ? { enableOfflineQueue } : {}),
    ...(extra.lazyConnect !== undefined ? { lazyConnect: extra.lazyConnect } : {}),
    clusterRetryStrategy: retryStrategy ?? (() => null),
    slotsRefreshTimeout: opts.connectTimeout ?? 5_000,
    // TLS clusters (ElastiCache) announce nodes by addresses their certificates do not name: connect to the name the
    // cluster gives, unresolved, so the TLS check uses it.
    ...(node.tls ? { dnsLookup: (address: string, callback: (err: Error | null, address: string) => void) => callback(null, address) } : {}),
  });
}

/** BullMQ's `connection` for one role, and the clients behind it. */
export interface BullConnection {
  connection: ConnectionOptions;
  /** Ends every client made for this connection (no reconnecting after this), once the BullMQ objects on it are closed. */
  close(): Promise<void>;
  /** On a cluster: the shared client's script loader, for callers that see a NOSCRIPT. */
  scripts?: ClusterScripts;
}

/**
 * BullMQ's `connection` for the target. Every client is made by us, so that every client can be ended: BullMQ's own
 * `close()` cannot quit a client while Redis is away (no connection to send QUIT on; it waits for one) and leaves it
 * reconnecting for ever after a stop — and its timers keeping a library user's process alive.
 * - producer (and admin): one client of ours that the Queues and FlowProducers share.
 * - worker: one client of ours, connected by BullMQ when the first worker starts, is the workers' shared main
 *   connection; each worker's blocking connection is a duplicate BullMQ makes of it, recorded here.
 * On a cluster every client keeps BullMQ's scripts loaded on every primary (cluster-scripts.ts).
 */
export function bullConnection(target: RedisTarget, role: RedisRole): BullConnection {
  const template = redisClient(target, role, role === 'worker' ? { lazyConnect: true } : {});
  template.on('error', () => undefined); // whoever uses it reports Redis trouble
  const clients: RedisClient[] = [template];
  const scripts = target.cluster ? new ClusterScripts(template as Cluster) : undefined;
  if (role === 'worker') {
    const duplicate = template.duplicate.bind(template) as (...args: unknown[]) => RedisClient;
    (template as { duplicate: (...args: unknown[]) => RedisClient }).duplicate = (...args: unknown[]) => {
      const d = duplicate(...args);
      clients.push(d);
      if (target.cluster) new ClusterScripts(d as Cluster);
      return d;
    };
  }
  return {
    connection: template as unknown as ConnectionOptions,
    // A worker's clients are ended only after its workers closed or were given up on: nothing they still wait for
    // (a blocking pop) is worth a QUIT that waits behind it.
    close: async () => void (await Promise.all(clients.map((c) => (role === 'worker' ? c.disconnect() : endClient(c))))),
    ...(scripts ? { scripts } : {}),
  };
}

/** Quits when connected (replies in flight are answered), else disconnects: no reconnecting after this. */
async function endClient(client: RedisClient): Promise<void> {
  if (client.status === 'ready') await client.quit().catch(() => client.disconnect());
  else client.disconnect();
}

/** For messages: the URL without its password. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}
