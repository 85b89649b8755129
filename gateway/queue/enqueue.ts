import { FlowProducer, Queue } from 'bullmq';
import type { Logger } from '../log.js';
import type { SpoolRecord } from '../spool/format.js';
import { messageFlow, SPOOL_QUEUE, type JobPolicy } from './jobs.js';
import { producerConnection, redactRedisUrl } from './redis.js';

export class EnqueueTimeoutError extends Error {
  override name = 'EnqueueTimeoutError';
  constructor(
    readonly timeoutMs: number,
    /** The add still in flight: it may yet succeed, and the caller decides what that means for the spool file. */
    readonly pending: Promise<unknown>,
  ) {
    super(`Redis did not confirm the jobs within ${timeoutMs} ms`);
  }
}

export interface EnqueuerOptions {
  redisUrl: string;
  prefix: string;
  timeoutMs: number;
  policy: JobPolicy;
}

/**
 * The accept path's Redis side: adds a message's flow (one MULTI) and answers "does this message have jobs?" for
 * recovery. Fails fast when Redis is away (see queue/redis.ts), bounded by `timeoutMs` when it is merely slow.
 */
export class Enqueuer {
  private readonly flows: FlowProducer;
  private readonly readyListeners: Array<() => void> = [];
  private readonly spoolQueue: Queue;

  constructor(
    private readonly opts: EnqueuerOptions,
    private readonly log: Logger,
  ) {
    const connection = producerConnection(opts.redisUrl);
    this.flows = new FlowProducer({ connection, prefix: opts.prefix });
    this.spoolQueue = new Queue(SPOOL_QUEUE, { connection, prefix: opts.prefix });
    let down = false;
    const onError = (err: Error) => {
      if (!down) log.error({ err: err.message, redis: redactRedisUrl(opts.redisUrl) }, 'redis unavailable; new mail gets 451 until it returns');
      down = true;
    };
    this.flows.on('error', onError);
    this.spoolQueue.on('error', onError);
    // The backend re-emits ioredis "ready" on every (re)connection; recovery listens so it can requeue what a
    // restarted Redis lost.
    (this.spoolQueue.getBackend() as unknown as { on(e: 'ready', f: () => void): void }).on('ready', () => {
      if (down) log.info({ redis: redactRedisUrl(opts.redisUrl) }, 'redis is back');
      down = false;
      for (const f of this.readyListeners) f();
    });
  }

  /** Called on every Redis (re)connection. */
  onReady(f: () => void): void {
    this.readyListeners.push(f);
  }

  async enqueue(record: SpoolRecord, spoolFile: string): Promise<void> {
    const add = this.flows.add(messageFlow(record, spoolFile, this.opts.policy));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new EnqueueTimeoutError(this.opts.timeoutMs, add)), this.opts.timeoutMs);
    });
    try {
      await Promise.race([add, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves once Redis answers; rejects after `timeoutMs` with a message that says what to check. */
  async ready(timeoutMs: number): Promise<void> {
    // Before the first connection BullMQ waits for Redis; after it, commands fail at once while Redis is away
    // (no offline queue). Either way: retry until one gets through or the time is up.
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          this.spoolQueue.getJobCounts('waiting'),
          new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('no answer')), Math.max(100, deadline - Date.now())))),
        ]);
        return;
      } catch (err) {
        last = (err as Error).message;
        await new Promise((r) => setTimeout(r, 100));
      } finally {
        clearTimeout(timer);
      }
    }
    throw new Error(`cannot reach Redis at ${redactRedisUrl(this.opts.redisUrl)} (${last}): start redis-server, or point --redis-url / REDIS_URL at one`);
  }

  /** True when the message's flow exists in any state (its parent job is the marker). */
  async hasJobs(messageId: string): Promise<boolean> {
    return (await this.spoolQueue.getJobState(messageId)) !== 'unknown';
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.flows.close(), this.spoolQueue.close()]);
  }
}
