import { open, readFile, rename } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../runtime/log.js';
import { redisClient, type RedisClient, type RedisTarget } from '../redis/connection.js';
import { fsyncDir } from '../spool/directory.js';

/**
 * Scale-out: several gateways share one Redis, but a message's body lives in the spool of the node that accepted
 * it. So every node has a node id and its own queue namespace (`<prefix>:node:<nodeId>`): the jobs of a message
 * are only ever taken by workers of the node whose spool holds the file. A node that dies keeps its jobs (in Redis)
 * and its files (on its disk); when it comes back with the same spool, its workers resume where it stopped and its
 * spool recovery re-enqueues what had no jobs yet. The node id is recorded in the spool directory, so "the same
 * node" means "the same spool", whatever the machine is called after a rebuild.
 */

const NODE_ID_FILE = 'node-id';
const NODE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
/** A heartbeat this old means the node is gone (three missed beats). */
export const HEARTBEAT_MS = 10_000;
export const STALE_AFTER_MS = 3 * HEARTBEAT_MS;

/**
 * BullMQ prefix of one node's queues. The user's prefix comes first, so a `{hash-tag}` prefix keeps every key of
 * every node in one Redis Cluster slot (a flow's MULTI spans its parent and child queues).
 */
export function nodePrefix(prefix: string, nodeId: string): string {
  return `${prefix}:node:${nodeId}`;
}

/** Hash of the nodes that ever ran on this Redis: node id → NodeRecord (JSON). */
export function nodesKey(prefix: string): string {
  return `${prefix}:nodes`;
}

export interface NodeRecord {
  /** Machine and spool of the process that last beat for this node id. */
  host: string;
  spoolDir: string;
  /** Epoch ms of the last heartbeat. */
  seenAt: number;
  /** Set by a graceful stop: the id is free to be claimed elsewhere at once. */
  stopped?: boolean;
}

/** The host name as a node id: characters outside the id alphabet become "-". */
export function nodeIdFromHostname(name: string = osHostname()): string {
  const id = name.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  return id || 'node';
}

export class NodeIdError extends Error {
  override name = 'NodeIdError';
}

/**
 * The node id this spool belongs to: the configured one, else the one recorded in the spool directory, else
 * `fallback` (the host name); recorded for next time. A configured id that differs from the recorded one is refused while the spool still
 * holds messages — their jobs are in the recorded node's queues, and nobody else would ever deliver them.
 */
export async function resolveNodeId(spoolDir: string, configured: string | undefined, spooledCount: () => Promise<number>, fallback: string = nodeIdFromHostname()): Promise<string> {
  const file = join(spoolDir, NODE_ID_FILE);
  let recorded: string | undefined;
  try {
    recorded = (await readFile(file, 'utf8')).trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (recorded !== undefined && !NODE_ID_RE.test(recorded)) throw new NodeIdError(`${file} holds "${recorded}", which is not a node id; delete the file if the spool is empty, else write the right id into it`);
  const id = configured ?? recorded ?? fallback;
  if (recorded !== undefined && recorded !== id) {
    const n = await spooledCount();
    if (n > 0) {
      throw new NodeIdError(
        `the spool ${spoolDir} belongs to node "${recorded}" and still holds ${n} message(s) whose jobs are in that node's queues: start with --node-id ${recorded} (or gateway.nodeId), or let it drain first`,
      );
    }
  }
  if (recorded !== id) {
    // Write-then-rename (and fsync) so a crash never leaves a half-written id; the directory fsync so a crash cannot
    // bring back the old one (or none) under a spool that already holds this node's messages.
    const tmp = `${file}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(`${id}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    await fsyncDir(spoolDir);
  }
  return id;
}

/**
 * This node's entry in the shared node list: claimed at start, refreshed every HEARTBEAT_MS. `mailroom queue` reads
 * it to show per-node counts and which nodes have stopped beating (their messages wait for them to come back).
 */
export class NodeRegistry {
  private readonly redis: RedisClient;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: { redis: RedisTarget; prefix: string; nodeId: string; spoolDir: string },
    private readonly log: Logger,
  ) {
    this.redis = redisClient(opts.redis, 'producer', { lazyConnect: true });
    this.redis.on('error', () => undefined); // the queues report Redis trouble; one report is enough
  }

  private record(): NodeRecord {
    return { host: osHostname(), spoolDir: this.opts.spoolDir, seenAt: Date.now() };
  }

  /**
   * Registers this process for its node id. Refuses when another machine or spool beat for the same id recently:
   * two spools behind one queue namespace would each fail the other's jobs.
   */
  async claim(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if (this.redis.status === 'wait' || this.redis.status === 'end') await this.redis.connect();
        const raw = await this.redis.hget(nodesKey(this.opts.prefix), this.opts.nodeId);
        const other = raw ? (JSON.parse(raw) as NodeRecord) : undefined;
        const me = this.record();
        const live = other && !other.stopped && Date.now() - other.seenAt < STALE_AFTER_MS;
        // Another machine, or another spool on this one: its workers could not read our spool files (nor ours its),
        // so every job one side accepted would fail on the other. Refuse rather than split one queue over two spools.
        if (live && (other.host !== me.host || other.spoolDir !== me.spoolDir)) {
          throw new NodeIdError(
            `node id "${this.opts.nodeId}" is in use by ${other.host} (spool ${other.spoolDir}), seen ${Math.round((Date.now() - other.seenAt) / 1000)} s ago: give each gateway its own gateway.nodeId / --node-id`,
          );
        }
        await this.beat();
        break;
      } catch (err) {
        if (err instanceof NodeIdError || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    this.timer = setInterval(() => void this.beat().catch((err: Error) => this.log.debug({ err: err.message }, 'node heartbeat failed')), HEARTBEAT_MS);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    await this.redis.hset(nodesKey(this.opts.prefix), this.opts.nodeId, JSON.stringify(this.record()));
  }

  /** On a graceful stop, marks the node stopped (best effort: a crash simply stops beating). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    if (this.redis.status === 'ready') {
      await this.redis.hset(nodesKey(this.opts.prefix), this.opts.nodeId, JSON.stringify({ ...this.record(), stopped: true })).catch(() => undefined);
    }
    this.redis.disconnect();
  }
}

/** Every node id that ever registered on this Redis, with its last heartbeat. */
export async function listNodes(redis: Pick<RedisClient, 'hgetall'>, prefix: string): Promise<Array<{ nodeId: string } & NodeRecord>> {
  const all = await redis.hgetall(nodesKey(prefix));
  return Object.entries(all)
    .map(([nodeId, raw]) => {
      try {
        return { nodeId, ...(JSON.parse(raw) as NodeRecord) };
      } catch {
        return { nodeId, host: '?', spoolDir: '?', seenAt: 0 };
      }
    })
    .sort((a, b) => a.nodeId.localeCompare(b.nodeId));
}
