import { Worker, type Job } from 'bullmq';
import type { Logger } from '../log.js';
import type { DeliveryMetrics } from '../observability/metrics.js';
import { cappedExponentialBackoff, DELIVERIES_QUEUE, SPOOL_QUEUE, type DeliveryJobData, type ReleaseJobData } from '../queue/jobs.js';
import { workerConnection } from '../queue/redis.js';
import type { GatewayRuntime } from '../settings.js';
import type { Spool } from '../spool/spool.js';
import { AwsClients } from './aws.js';
import { deliver, type DeliveryResult } from './deliver.js';

/** After aborting deliveries at shutdown, how long the workers get to let go of Redis. */
const FORCE_CLOSE_MS = 5_000;

export interface DeliveryWorkersOptions {
  /** BullMQ prefix of this node's queues (cluster/node.ts): workers only take jobs whose spool file is here. */
  prefix: string;
  metrics?: DeliveryMetrics;
}

/**
 * The delivery side: a BullMQ worker on `deliveries` (one S3 action per job) and one on `spool` (deletes a
 * message's spool file once all its deliveries completed). Both need the spool directory the accepting process
 * wrote, so they consume only their node's queues and run where that spool is.
 */
export class DeliveryWorkers {
  private readonly aws: AwsClients;
  private deliveries: Worker<DeliveryJobData, DeliveryResult> | undefined;
  private releases: Worker<ReleaseJobData, boolean> | undefined;
  /** Aborts uploads still running when a shutdown runs out of time. */
  private readonly abort = new AbortController();

  constructor(
    private readonly runtime: GatewayRuntime,
    private readonly spool: Spool,
    private readonly log: Logger,
    private readonly opts: DeliveryWorkersOptions,
  ) {
    this.aws = new AwsClients(runtime.settings.upload, opts.metrics);
  }

  start(): void {
    const { settings } = this.runtime;
    const w = settings.worker;
    const common = {
      connection: workerConnection(settings.redis.url),
      prefix: this.opts.prefix,
      lockDuration: w.lockDurationMs,
      stalledInterval: w.stalledIntervalMs,
      maxStalledCount: w.maxStalledCount,
      settings: { backoffStrategy: cappedExponentialBackoff(w.backoffBaseMs, w.backoffMaxMs) },
    };
    const tuning = { multipartThresholdBytes: settings.upload.multipartThresholdBytes, partSizeBytes: settings.upload.partSizeBytes, queueSize: settings.upload.queueSize };

    this.deliveries = new Worker<DeliveryJobData, DeliveryResult>(
      DELIVERIES_QUEUE,
      async (job) => {
        const started = Date.now();
        const log = this.jobLog(job, job.attemptsMade + 1);
        const { metrics } = this.opts;
        metrics?.deliveryStarted();
        let outcome: 'delivered' | 'retry' | 'failed' = 'retry';
        try {
          const r = await deliver(job, { spool: this.spool, aws: this.aws, tuning, ...(metrics ? { metrics } : {}) }, this.abort.signal);
          outcome = 'delivered';
          log.info({ bucket: r.bucket, key: r.key, bytes: r.storedBytes, multipart: r.multipart, encrypted: r.encrypted, notified: !!r.snsMessageId, ms: Date.now() - started }, 'delivered');
          return r;
        } catch (err) {
          if ((err as Error).name === 'UnrecoverableError' || job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) outcome = 'failed';
          throw err;
        } finally {
          metrics?.deliveryFinished(outcome);
        }
      },
      { ...common, concurrency: w.concurrency },
    );
    this.deliveries.on('failed', (job, err) => {
      if (!job) return;
      const log = this.jobLog(job, job.attemptsMade);
      const meta = { of: job.opts.attempts, err: err.message, errName: err.name };
      const final = err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
      if (final) log.error(meta, 'delivery failed for good; spool file kept; retry with `mailroom queue retry`');
      else log.warn(meta, 'delivery failed; will retry');
    });

    this.releases = new Worker<ReleaseJobData, boolean>(
      SPOOL_QUEUE,
      async (job) => {
        const removed = await this.spool.remove(this.spool.fileIdOf(job.data.spoolFile));
        this.log.debug({ spoolFile: job.data.spoolFile, jobId: job.id, messageIds: job.data.messageIds, removed }, 'every rule of every message delivered; spool file released');
        return removed;
      },
      { ...common, concurrency: 4 },
    );
    for (const worker of [this.deliveries, this.releases] as Worker[]) {
      worker.on('error', (err) => this.log.warn({ err: err.message }, 'worker redis error; retrying'));
    }
  }

  /** Every line about a delivery carries its message id, rule, job id and attempt. */
  private jobLog(job: Job<DeliveryJobData>, attempt: number): Logger {
    return this.log.child({ messageId: job.data.envelope.messageId, rule: job.data.rule.name, jobId: job.id, attempt });
  }

  /** Lets deliveries in flight finish within `timeoutMs`; then aborts them (their jobs are retried later). */
  async stop(timeoutMs = this.runtime.settings.worker.shutdownTimeoutMs): Promise<void> {
    const workers = [this.deliveries, this.releases].filter((w): w is Worker => w !== undefined);
    let timer: NodeJS.Timeout | undefined;
    const graceful = Promise.all(workers.map((w) => w.close())).then(() => true);
    const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const ok = await Promise.race([graceful, timedOut]);
    clearTimeout(timer);
    if (!ok) {
      this.log.warn({ timeoutMs }, 'deliveries still running at shutdown; aborting them (they will be retried)');
      this.abort.abort(new Error('gateway shutting down'));
      // BullMQ's close() never settles when it began while Redis was unreachable (even once Redis is back); a
      // shutdown must still end. Whatever a worker held is taken over by the next start after lockDurationMs.
      let forceTimer: NodeJS.Timeout | undefined;
      const closed = await Promise.race([
        Promise.allSettled(workers.map((w) => w.close(true))).then(() => true),
        new Promise<false>((resolve) => (forceTimer = setTimeout(() => resolve(false), FORCE_CLOSE_MS))),
      ]);
      clearTimeout(forceTimer);
      if (!closed) this.log.warn({ waitedMs: FORCE_CLOSE_MS }, 'workers did not close (Redis unreachable?); stopping without them');
    }
    this.aws.destroy();
  }

  /** For tests and `mailroom local`: called with every finished delivery. */
  onDelivered(f: (job: Job<DeliveryJobData, DeliveryResult>, result: DeliveryResult) => void): void {
    this.deliveries?.on('completed', (job, result) => f(job, result));
  }
}
