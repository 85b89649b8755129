import { Queue, type Job } from 'bullmq';
import { listNodes, nodePrefix, STALE_AFTER_MS, type NodeRecord } from '../cluster/node.js';
import { DELIVERIES_QUEUE, deliveryBatch, isSpoolFileJobId, SPOOL_QUEUE, type DeliveryJobData, type DeliveryJobDataV1, type ReleaseJobData } from './jobs.js';
import { redisClient, type RedisClient, type RedisTarget } from '../redis/connection.js';

export const COUNTED_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;
export type CountedState = (typeof COUNTED_STATES)[number];

export interface FailedDelivery {
  /** delivery: storing and announcing messages for a rule; release: deleting the spool file once all were done. */
  kind: 'delivery' | 'release';
  jobId: string;
  /** Node whose spool holds the messages (and whose workers deliver them). */
  node: string;
  /** delivery: the job's messages not delivered yet (a retry delivers only these); release: the file's messages. */
  messageIds: string[];
  /** The rule of a delivery job; "" for a release. */
  rule: string;
  attemptsMade: number;
  reason: string;
  failedAt?: string;
}

/** A lone delivery job (queue/jobs.ts) that failed with every message done failed at its last step: the release. */
function releaseFailed(raw: DeliveryJobData | DeliveryJobDataV1): boolean {
  const data = deliveryBatch(raw);
  const done = new Set(data.done);
  return data.release === true && data.messages.every((m) => done.has(m.envelope.messageId));
}

export interface NodeCounts {
  node: string;
  host: string;
  /** up: beating; stopped: shut down cleanly; silent: stopped beating (crashed or cut off) — its mail waits for it. */
  status: 'up' | 'stopped' | 'silent';
  lastSeen: string;
  deliveries: Record<CountedState, number>;
  spoolFilesPending: number;
  /** Spool files whose mail is delivered but which could not be deleted (release failed for good). */
  releasesFailed: number;
}

interface NodeQueues {
  node: string;
  record: NodeRecord;
  deliveries: Queue<DeliveryJobData | DeliveryJobDataV1>;
  spool: Queue;
}

/**
 * What `mailroom queue` shows and does, across every node that registered on this Redis (cluster/node.ts): counts
 * per node and in total, the failed deliveries, and retrying them (on the node whose spool holds the message).
 */
export class QueueAdmin {
  private readonly redis: RedisClient;
  private nodes: NodeQueues[] = [];

  constructor(
    target: RedisTarget,
    private readonly prefix: string,
    /** Only this node (`--node`). */
    private readonly only?: string,
  ) {
    // Fail fast: an operator command should say "Redis is not there", not hang.
    this.redis = redisClient(target, 'admin', { lazyConnect: true });
    this.redis.on('error', () => undefined);
  }

  async ready(): Promise<void> {
    await this.redis.connect();
    for (const n of await listNodes(this.redis, this.prefix)) {
      if (this.only !== undefined && n.nodeId !== this.only) continue;
      const prefix = nodePrefix(this.prefix, n.nodeId);
      const deliveries = new Queue<DeliveryJobData | DeliveryJobDataV1>(DELIVERIES_QUEUE, { connection: this.redis, prefix, skipMetasUpdate: true });
      const spool = new Queue(SPOOL_QUEUE, { connection: this.redis, prefix, skipMetasUpdate: true });
      deliveries.on('error', () => undefined);
      spool.on('error', () => undefined);
      this.nodes.push({ node: n.nodeId, record: n, deliveries, spool });
    }
    if (this.only !== undefined && this.nodes.length === 0) throw new Error(`no node "${this.only}" has registered on this Redis under the prefix "${this.prefix}"`);
  }

  /** Nodes found by ready(): none means no gateway registered under this prefix (or not the one asked for). */
  get nodeCount(): number {
    return this.nodes.length;
  }

  /** Delivery job counts by state, spool files not released yet and releases that failed: in total and per node. */
  async counts(): Promise<{ deliveries: Record<CountedState, number>; spoolFilesPending: number; releasesFailed: number; nodes: NodeCounts[] }> {
    const now = Date.now();
    const nodes: NodeCounts[] = [];
    for (const n of this.nodes) {
      const d = await n.deliveries.getJobCounts(...COUNTED_STATES, 'prioritized', 'waiting-children');
      const s = await n.spool.getJobCounts('waiting-children', 'waiting', 'active', 'delayed', 'failed');
      // A file with one rule has a lone delivery job named by the file id (queue/jobs.ts): pending ones are files too.
      const lone = (await n.deliveries.getRanges(['waiting', 'prioritized', 'active', 'delayed', 'failed'], 0, -1)).filter(isSpoolFileJobId).length;
      const loneReleasesFailed = await countFailed(n.deliveries, (j) => releaseFailed(j.data));
      const deliveries = Object.fromEntries(COUNTED_STATES.map((k) => [k, d[k] ?? 0])) as Record<CountedState, number>;
      deliveries.waiting += d.prioritized ?? 0;
      nodes.push({
        node: n.node,
        host: n.record.host,
        status: n.record.stopped ? 'stopped' : now - n.record.seenAt < STALE_AFTER_MS ? 'up' : 'silent',
        lastSeen: new Date(n.record.seenAt).toISOString(),
        deliveries,
        spoolFilesPending: Object.values(s).reduce((a, b) => a + b, 0) + lone,
        releasesFailed: (s.failed ?? 0) + loneReleasesFailed,
      });
    }
    const deliveries = Object.fromEntries(COUNTED_STATES.map((k) => [k, nodes.reduce((a, n) => a + n.deliveries[k], 0)])) as Record<CountedState, number>;
    return { deliveries, spoolFilesPending: nodes.reduce((a, n) => a + n.spoolFilesPending, 0), releasesFailed: nodes.reduce((a, n) => a + n.releasesFailed, 0), nodes };
  }

  async failed(limit = 100): Promise<FailedDelivery[]> {
    const out: FailedDelivery[] = [];
    for (const n of this.nodes) {
      if (out.length >= limit) break;
      const jobs = await n.deliveries.getFailed(0, limit - out.length - 1);
      for (const j of jobs) {
        const data = deliveryBatch(j.data);
        const done = new Set(data.done);
        const left = data.messages.map((m) => m.envelope.messageId).filter((id) => !done.has(id));
        const released = releaseFailed(j.data);
        out.push({
          kind: released ? 'release' : 'delivery',
          jobId: j.id ?? '',
          node: n.node,
          messageIds: released ? data.messages.map((m) => m.envelope.messageId) : left,
          rule: data.rule.name,
          attemptsMade: j.attemptsMade,
          reason: j.failedReason,
          ...(j.finishedOn ? { failedAt: new Date(j.finishedOn).toISOString() } : {}),
        });
      }
      // A release that failed for good (the spool file could not be deleted): its mail is delivered, its file stays.
      if (out.length >= limit) break;
      for (const j of (await n.spool.getFailed(0, limit - out.length - 1)) as Array<Job<ReleaseJobData>>) {
        out.push({
          kind: 'release',
          jobId: j.id ?? '',
          node: n.node,
          messageIds: j.data.messageIds ?? [],
          rule: '',
          attemptsMade: j.attemptsMade,
          reason: j.failedReason,
          ...(j.finishedOn ? { failedAt: new Date(j.finishedOn).toISOString() } : {}),
        });
      }
    }
    return out;
  }

  /**
   * Moves failed delivery and release jobs back to waiting with a fresh attempt budget (all of them, or the given job
   * ids), each in its own node's queue. Returns the job ids retried; unknown or not-failed ids come back as `skipped`.
   */
  async retry(jobIds?: string[]): Promise<{ retried: string[]; skipped: string[] }> {
    const retried: string[] = [];
    const skipped: string[] = [];
    const retryOne = async (q: Queue, id: string): Promise<boolean> => {
      const job = await q.getJob(id);
      if (!job || !(await job.isFailed())) return false;
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      retried.push(id);
      return true;
    };
    if (jobIds && jobIds.length > 0) {
      for (const id of jobIds) {
        let done = false;
        for (const n of this.nodes) for (const q of [n.deliveries, n.spool] as Queue[]) if (!done) done = await retryOne(q, id);
        if (!done) skipped.push(id);
      }
      return { retried, skipped };
    }
    for (const n of this.nodes) {
      for (const q of [n.deliveries, n.spool] as Queue[]) {
        // Page from the start each time (retried jobs leave the failed set), past the ones that could not be retried.
        const stay = new Set<string>();
        for (;;) {
          const page = await q.getFailed(0, stay.size + PAGE - 1);
          const ids = page.map((j) => j.id).filter((id): id is string => !!id && !stay.has(id));
          if (ids.length === 0) break;
          for (const id of ids) {
            if (await retryOne(q, id)) continue;
            stay.add(id);
            skipped.push(id);
          }
        }
      }
    }
    return { retried, skipped };
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.nodes.flatMap((n) => [n.deliveries.close(), n.spool.close()]));
    this.redis.disconnect();
  }
}

/** Jobs read per Redis call when walking a failed set: a night of failures must not be loaded at once. */
const PAGE = 500;

/** Failed jobs of `q` matching `pred`, read a page at a time. */
async function countFailed(q: Queue, pred: (job: Job) => boolean): Promise<number> {
  let n = 0;
  for (let start = 0; ; start += PAGE) {
    const page = await q.getFailed(start, start + PAGE - 1);
    n += page.filter(pred).length;
    if (page.length < PAGE) return n;
  }
}
