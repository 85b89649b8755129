import { Queue } from 'bullmq';
import { DELIVERIES_QUEUE, SPOOL_QUEUE } from '../queue/jobs.js';
import { bullConnection, type RedisTarget } from '../redis/connection.js';
import type { SpoolDirectory } from '../spool/directory.js';
import { within } from '../runtime/timeout.js';
import type { GatewayMetrics } from './metrics.js';

const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed'] as const;

/** Scrape-time queue depth of this node's queues. Fails fast when Redis is away (the gauges then keep their last value). */
export class QueueDepthSampler {
  private readonly queues: Array<[string, Queue]>;
  private readonly closeConnection: () => Promise<void>;

  constructor(redis: RedisTarget, prefix: string, private readonly timeoutMs: number) {
    const { connection, close } = bullConnection(redis, 'producer');
    this.closeConnection = close;
    this.queues = [DELIVERIES_QUEUE, SPOOL_QUEUE].map((name) => [name, new Queue(name, { connection, prefix, skipMetasUpdate: true })]);
    for (const [, q] of this.queues) q.on('error', () => undefined); // /readyz reports Redis
  }

  async sample(metrics: GatewayMetrics): Promise<void> {
    await Promise.all(
      this.queues.map(async ([name, q]) => {
        const counts = await within(q.getJobCounts(...QUEUE_STATES, 'prioritized', 'waiting-children'), this.timeoutMs, () => new Error('redis: no answer'));
        for (const state of QUEUE_STATES) {
          // Prioritized jobs are waiting; a release job waiting for its deliveries is waiting too.
          const extra = state === 'waiting' ? (counts.prioritized ?? 0) + (counts['waiting-children'] ?? 0) : 0;
          metrics.queueJobs.set({ queue: name, state }, (counts[state] ?? 0) + extra);
        }
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.queues.map(([, q]) => q.close()));
    await this.closeConnection();
  }
}

/**
 * Spooled message count, bytes and the age of the oldest: one readdir and a stat per file, eight at a time, at most
 * once per `minAgeMs` however often Prometheus scrapes (a spool holds what is not yet delivered, normally little).
 */
export class SpoolSampler {
  private last = 0;
  private running: Promise<void> | undefined;

  constructor(private readonly spool: SpoolDirectory, private readonly minAgeMs = 5_000) {}

  sample(metrics: GatewayMetrics): Promise<void> {
    if (this.running) return this.running;
    if (Date.now() - this.last < this.minAgeMs) return Promise.resolve();
    this.running = this.scan(metrics).finally(() => {
      this.last = Date.now();
      this.running = undefined;
    });
    return this.running;
  }

  private async scan(metrics: GatewayMetrics): Promise<void> {
    let bytes = 0;
    let files = 0;
    let oldest = Infinity;
    // A file released between list and stat counts 0; an empty one (a spare, spool/spares.ts) is no spooled file.
    for (const { size, mtimeMs } of await this.spool.sizes()) {
      bytes += size;
      if (size > 0) {
        files++;
        oldest = Math.min(oldest, mtimeMs);
      }
    }
    metrics.spoolFiles.set({}, files);
    metrics.spoolBytes.set({}, bytes);
    metrics.spoolOldestSeconds.set({}, files > 0 ? Math.max(0, (Date.now() - oldest) / 1000) : 0);
  }
}
