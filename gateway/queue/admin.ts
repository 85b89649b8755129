import { Queue } from 'bullmq';
import { DELIVERIES_QUEUE, SPOOL_QUEUE, type DeliveryJobData } from './jobs.js';
import { redisOptionsFromUrl } from './redis.js';

export const COUNTED_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;
export type CountedState = (typeof COUNTED_STATES)[number];

export interface FailedDelivery {
  jobId: string;
  messageId: string;
  rule: string;
  attemptsMade: number;
  reason: string;
  failedAt?: string;
}

/** What `mailroom queue` shows and does: counts, the failed deliveries, and retrying them. */
export class QueueAdmin {
  private readonly deliveries: Queue<DeliveryJobData>;
  private readonly spool: Queue;

  constructor(redisUrl: string, prefix: string) {
    // Fail fast: an operator command should say "Redis is not there", not hang.
    const connection = { ...redisOptionsFromUrl(redisUrl), enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => null };
    this.deliveries = new Queue<DeliveryJobData>(DELIVERIES_QUEUE, { connection, prefix, skipMetasUpdate: true });
    this.spool = new Queue(SPOOL_QUEUE, { connection, prefix, skipMetasUpdate: true });
    this.deliveries.on('error', () => undefined);
    this.spool.on('error', () => undefined);
  }

  async ready(): Promise<void> {
    await Promise.all([this.deliveries.waitUntilReady(), this.spool.waitUntilReady()]);
  }

  /** Delivery counts by state, and how many messages still hold a spool file (waiting for their deliveries). */
  async counts(): Promise<{ deliveries: Record<CountedState, number>; messagesPending: number }> {
    const d = await this.deliveries.getJobCounts(...COUNTED_STATES, 'prioritized', 'waiting-children');
    const s = await this.spool.getJobCounts('waiting-children', 'waiting', 'active', 'delayed', 'failed');
    const deliveries = Object.fromEntries(COUNTED_STATES.map((k) => [k, d[k] ?? 0])) as Record<CountedState, number>;
    deliveries.waiting += d.prioritized ?? 0;
    return { deliveries, messagesPending: Object.values(s).reduce((a, b) => a + b, 0) };
  }

  async failed(limit = 100): Promise<FailedDelivery[]> {
    const jobs = await this.deliveries.getFailed(0, limit - 1);
    return jobs.map((j) => ({
      jobId: j.id ?? '',
      messageId: j.data.envelope?.messageId ?? '',
      rule: j.data.rule?.name ?? '',
      attemptsMade: j.attemptsMade,
      reason: j.failedReason,
      ...(j.finishedOn ? { failedAt: new Date(j.finishedOn).toISOString() } : {}),
    }));
  }

  /**
   * Moves failed deliveries back to waiting with a fresh attempt budget (all of them, or the given job ids).
   * Returns the job ids retried; unknown or not-failed ids are reported back as `skipped`.
   */
  async retry(jobIds?: string[]): Promise<{ retried: string[]; skipped: string[] }> {
    const retried: string[] = [];
    const skipped: string[] = [];
    const retryOne = async (id: string) => {
      const job = await this.deliveries.getJob(id);
      if (!job || !(await job.isFailed())) return void skipped.push(id);
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      retried.push(id);
    };
    if (jobIds && jobIds.length > 0) {
      for (const id of jobIds) await retryOne(id);
      return { retried, skipped };
    }
    // Page from the start each time: retried jobs leave the failed set.
    for (;;) {
      const page = await this.deliveries.getFailed(0, 99);
      const ids = page.map((j) => j.id).filter((id): id is string => !!id && !retried.includes(id) && !skipped.includes(id));
      if (ids.length === 0) break;
      for (const id of ids) await retryOne(id);
    }
    return { retried, skipped };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.deliveries.close(), this.spool.close()]);
  }
}
