import { FlowProducer, Queue, type FlowJob } from 'bullmq';
import type { Logger } from '../runtime/log.js';
import { within } from '../runtime/timeout.js';
import type { SpoolFile } from '../spool/format.js';
import { DELIVERIES_QUEUE, spoolFileJobs, SPOOL_QUEUE, type JobPolicy } from './jobs.js';
import { isNoScript, type ClusterScripts } from '../redis/cluster-scripts.js';
import { unreachableMessage } from '../redis/preflight.js';
import { bullConnection, redactRedisUrl, type RedisTarget } from '../redis/connection.js';

export interface EnqueuerOptions {
  redis: RedisTarget;
  prefix: string;
  timeoutMs: number;
  policy: JobPolicy;
}

interface PendingFlow {
  flow: FlowJob;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Flows per MULTI at most; a burst larger than this goes out as several batches in the same turn. */
const MAX_BATCH = 256;

/**
 * The accept path's Redis side: adds a spool file's jobs and answers "does this file have jobs?" for recovery.
 * Fails fast when Redis is away (see redis/connection.ts); `timeoutMs` bounds the questions recovery asks.
 *
 * One job or flow per spool file (every message of a batch file shares it, queue/jobs.ts). A file whose messages
 * all went to one rule gets a lone delivery job: one Queue.add, which Redis runs as one script — atomic, and no
 * MULTI to build (ioredis copies every BullMQ script onto each pipeline object it makes; that was a third of the
 * accept path's medium-lived garbage, which is what makes the young-generation pauses long). Flows (files for
 * several rules) of every file written in the same event-loop turn go to Redis in one MULTI (FlowProducer.addBulk):
 * every message of such a batch gets the same answer. Each message waits for its own file's confirmation, so a 250
 * still means "its jobs are in Redis". A MULTI is not undone when one command in it fails: should one flow's add
 * fail (a NOSCRIPT, Redis out of memory), every message of the batch hears 451, and flows that did go in are left
 * for files that are then removed — their deliveries fail as "spool file does not exist", a leftover for
 * `mailroom queue`, never a loss.
 */
type FlowBackend = { addFlow(entries: unknown[]): Promise<Array<[Error | null, unknown]> | null> };

/**
 * FlowProducer.addBulk ignores a per-job error inside its MULTI (add() only looks at the first job's): make any
 * such error fail the whole call, so no message is told 250 unless every job of its batch went in. bullmq is
 * pinned; should the internals move, the constructor throws rather than run without the check.
 */
function strictFlowResults(flows: FlowProducer): void {
  const backend = (flows as unknown as { backend?: FlowBackend }).backend;
  if (!backend || typeof backend.addFlow !== 'function') throw new Error('bullmq FlowProducer has no backend.addFlow: the pinned version changed; review queue/enqueue.ts');
  const addFlow = backend.addFlow.bind(backend);
  backend.addFlow = async (entries) => {
    const results = await addFlow(entries);
    for (const r of results ?? []) if (r?.[0]) throw r[0];
    return results;
  };
}

export class Enqueuer {
  private readonly flows: FlowProducer;
  private readonly readyListeners: Array<() => void> = [];
  private readonly spoolQueue: Queue;
  private readonly deliveriesQueue: Queue;
  private readonly closeConnection: () => Promise<void>;
  /** On a Redis Cluster: reloads BullMQ's scripts where a primary lacks them (a NOSCRIPT says one does). */
  private readonly scripts: ClusterScripts | undefined;

  constructor(
    private readonly opts: EnqueuerOptions,
    log: Logger,
  ) {
    const { connection, close, scripts } = bullConnection(opts.redis, 'producer');
    this.closeConnection = close;
    this.scripts = scripts;
    this.flows = new FlowProducer({ connection, prefix: opts.prefix });
    strictFlowResults(this.flows);
    this.spoolQueue = new Queue(SPOOL_QUEUE, { connection, prefix: opts.prefix });
    this.deliveriesQueue = new Queue(DELIVERIES_QUEUE, { connection, prefix: opts.prefix });
    let down = false;
    const onError = (err: Error) => {
      if (!down) log.error({ err: err.message, redis: redactRedisUrl(opts.redis.url) }, 'redis unavailable; new mail gets 451 until it returns');
      down = true;
    };
    this.flows.on('error', onError);
    this.spoolQueue.on('error', onError);
    this.deliveriesQueue.on('error', onError);
    // The backend re-emits ioredis "ready" on every (re)connection; recovery listens so it can requeue what a
    // restarted Redis lost.
    (this.spoolQueue.getBackend() as unknown as { on(e: 'ready', f: () => void): void }).on('ready', () => {
      if (down) log.info({ redis: redactRedisUrl(opts.redis.url) }, 'redis is back');
      down = false;
      for (const f of this.readyListeners) f();
    });
  }

  /** Called on every Redis (re)connection. */
  onReady(f: () => void): void {
    this.readyListeners.push(f);
  }

  private batch: PendingFlow[] = [];

  /** Adds the flow to the batch going out at the end of this event-loop turn; resolves once Redis confirmed it. */
  private addBatched(flow: FlowJob): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.batch.push({ flow, resolve, reject });
      if (this.batch.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const all = this.batch;
    this.batch = [];
    for (let i = 0; i < all.length; i += MAX_BATCH) {
      const batch = all.slice(i, i + MAX_BATCH);
      const add = batch.length === 1 ? this.flows.add(batch[0]!.flow) : this.flows.addBulk(batch.map((p) => p.flow));
      add.then(
        () => batch.forEach((p) => p.resolve()),
        (err: Error) => {
          this.afterAddFailed(err);
          batch.forEach((p) => p.reject(err));
        },
      );
    }
  }

  /** A NOSCRIPT says a cluster primary lacks BullMQ's scripts: load them, so the client's resend succeeds. */
  private afterAddFailed(err: Error): void {
    if (isNoScript(err)) void this.scripts?.ensure();
  }

  /** One add per file, however many of its messages wait for it. */
  private readonly adding = new WeakMap<SpoolFile, Promise<void>>();

  /**
   * Adds the file's jobs; resolves once Redis confirmed them. Unbounded: the caller decides how long to wait and
   * what a late answer means (the intake, recovery). Called again for the same file, it returns the same add.
   */
  add(file: SpoolFile): Promise<void> {
    let add = this.adding.get(file);
    if (!add) {
      const jobs = spoolFileJobs(file, this.opts.policy);
      add = jobs.children
        ? this.addBatched(jobs)
        : this.deliveriesQueue.add(jobs.name, jobs.data, jobs.opts).then(
            () => undefined,
            (err: Error) => {
              this.afterAddFailed(err);
              throw err;
            },
          );
      add.catch(() => undefined); // reported to whoever awaits add()
      this.adding.set(file, add);
    }
    return add;
  }

  /** Resolves once Redis answers; rejects after `timeoutMs` with a message that says what to check. */
  async ready(timeoutMs: number): Promise<void> {
    // Before the first connection BullMQ waits for Redis; after it, commands fail at once while Redis is away
    // (no offline queue). Either way: retry until one gets through or the time is up.
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
      try {
        // Both queues (one shared connection on a single Redis; each its own slot's node on a cluster).
        const both = Promise.all([this.spoolQueue.getJobCounts('waiting'), this.deliveriesQueue.getJobCounts('waiting')]);
        await within(both, Math.max(100, deadline - Date.now()), () => new Error('no answer'));
        // BullMQ has defined its scripts on the client by now: put them on every primary before the first add.
        await this.scripts?.ensure();
        return;
      } catch (err) {
        last = (err as Error).message;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(await unreachableMessage(this.opts.redis, last));
  }

  /**
   * True when the file's jobs exist in any state: the job named by the file id, a flow's parent or a lone delivery.
   * Bounded like an add: a Redis that stalls fails the recovery pass (it runs again) instead of holding it forever.
   */
  async hasJobs(fileId: string): Promise<boolean> {
    const states = Promise.all([this.spoolQueue.getJobState(fileId), this.deliveriesQueue.getJobState(fileId)]);
    const [parent, lone] = await within(states, this.opts.timeoutMs, () => new Error(`Redis did not say within ${this.opts.timeoutMs} ms whether spool file ${fileId} has jobs`));
    return parent !== 'unknown' || lone !== 'unknown';
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.flows.close(), this.spoolQueue.close(), this.deliveriesQueue.close()]);
    await this.closeConnection();
  }
}
