import { Worker, type Job } from 'bullmq';
import type { Logger } from '../log.js';
import { cappedExponentialBackoff, DELIVERIES_QUEUE, SPOOL_QUEUE, type DeliveryJobData, type ReleaseJobData } from '../queue/jobs.js';
import { workerConnection } from '../queue/redis.js';
import type { GatewayRuntime } from '../settings.js';
import type { Spool } from '../spool/spool.js';
import { AwsClients } from './aws.js';
import { deliver, type DeliveryResult } from './deliver.js';

/**
 * The delivery side: a BullMQ worker on `deliveries` (one S3 action per job) and one on `spool` (deletes a
 * message's spool file once all its deliveries completed). Both need the spool directory the accepting process
 * wrote, so they run on the same machine or on storage every worker mounts.
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
  ) {
    this.aws = new AwsClients(runtime.settings.upload);
  }

  start(): void {
    const { settings } = this.runtime;
    const w = settings.worker;
    const common = {
      connection: workerConnection(settings.redis.url),
      prefix: settings.redis.prefix,
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
        const r = await deliver(job, { spool: this.spool, aws: this.aws, tuning }, this.abort.signal);
        this.log.info(
          { messageId: job.data.envelope.messageId, rule: job.data.rule.name, bucket: r.bucket, key: r.key, bytes: r.storedBytes, multipart: r.multipart, encrypted: r.encrypted, notified: !!r.snsMessageId, attempt: job.attemptsMade + 1, ms: Date.now() - started },
          'delivered',
        );
        return r;
      },
      { ...common, concurrency: w.concurrency },
    );
    this.deliveries.on('failed', (job, err) => {
      if (!job) return;
      const meta = { messageId: job.data.envelope.messageId, rule: job.data.rule.name, attempt: job.attemptsMade, of: job.opts.attempts, err: err.message, errName: err.name };
      const final = err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
      if (final) this.log.error(meta, 'delivery failed for good; spool file kept; retry with `mailroom queue retry`');
      else this.log.warn(meta, 'delivery failed; will retry');
    });

    this.releases = new Worker<ReleaseJobData, boolean>(
      SPOOL_QUEUE,
      async (job) => {
        const removed = await this.spool.remove(job.data.messageId);
        this.log.debug({ messageId: job.data.messageId, rules: job.data.ruleNames, removed }, 'every rule delivered; spool file released');
        return removed;
      },
      { ...common, concurrency: 4 },
    );
    for (const worker of [this.deliveries, this.releases] as Worker[]) {
      worker.on('error', (err) => this.log.warn({ err: err.message }, 'worker redis error; retrying'));
    }
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
      await Promise.allSettled(workers.map((w) => w.close(true)));
    }
    this.aws.destroy();
  }

  /** For tests and `mailroom local`: called with every finished delivery. */
  onDelivered(f: (job: Job<DeliveryJobData, DeliveryResult>, result: DeliveryResult) => void): void {
    this.deliveries?.on('completed', (job, result) => f(job, result));
  }
}
