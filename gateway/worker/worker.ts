import { setMaxListeners } from 'node:events';
import { Worker, type Job } from 'bullmq';
import type { Logger } from '../runtime/log.js';
import type { DeliveryMetrics } from '../observability/metrics.js';
import { cappedExponentialBackoff, DELIVERIES_QUEUE, deliveryBatch, SPOOL_QUEUE, type DeliveryJobData, type DeliveryJobDataV1, type ReleaseJobData } from '../queue/jobs.js';
import { bullConnection, redisClient, type RedisClient } from '../redis/connection.js';
import type { GatewayRuntime } from '../runtime/settings.js';
import type { SpoolReader } from '../spool/reader.js';
import { AwsClients } from './aws.js';
import { deliver, jobError, type DeliveryOutcome, type DeliveryResult } from './deliver.js';
import { Slots } from './slots.js';
import { VerdictStore } from '../verdicts/store.js';
import { Verdicts } from '../verdicts/verdicts.js';

/** After aborting deliveries at shutdown, how long the workers get to let go of Redis. */
const FORCE_CLOSE_MS = 5_000;
/** How often a shutdown looks whether it can stop waiting for Redis. */
const IDLE_POLL_MS = 100;

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
  private deliveries: Worker<DeliveryJobData | DeliveryJobDataV1, DeliveryResult> | undefined;
  private releases: Worker<ReleaseJobData, boolean> | undefined;
  /** Aborts uploads still running when a shutdown runs out of time. */
  private readonly abort = new AbortController();
  private closeConnection: () => Promise<void> = async () => undefined;
  /** SPF, DKIM, DMARC and scans, when configured; their Redis client (kept with the node's jobs, verdicts/store.ts). */
  private verdicts: Verdicts | undefined;
  private verdictRedis: RedisClient | undefined;
  /**
   * Jobs (queue:id) whose processor started and whose result BullMQ has not stored yet (no completed/failed event):
   * running, or finished with the result still queued for a Redis that is away.
   */
  private readonly unsettled = new Map<string, number>();

  constructor(
    private readonly runtime: GatewayRuntime,
    private readonly spool: SpoolReader,
    private readonly log: Logger,
    private readonly opts: DeliveryWorkersOptions,
  ) {
    this.aws = new AwsClients(runtime.settings.upload, opts.metrics);
    // Every request in flight listens on it until it ends (the SDK's HTTP handler): more than Node's default of 10
    // at once is the worker's concurrency at work, not a leak — and Node's warning about it would reach stderr.
    setMaxListeners(0, this.abort.signal);
  }

  start(): void {
    const { settings } = this.runtime;
    const w = settings.worker;
    const { connection, close } = bullConnection(settings.redis, 'worker');
    this.closeConnection = close;
    const common = {
      connection,
      prefix: this.opts.prefix,
      lockDuration: w.lockDurationMs,
      stalledInterval: w.stalledIntervalMs,
      maxStalledCount: w.maxStalledCount,
      settings: { backoffStrategy: cappedExponentialBackoff(w.backoffBaseMs, w.backoffMaxMs) },
    };
    const tuning = { multipartThresholdBytes: settings.upload.multipartThresholdBytes, partSizeBytes: settings.upload.partSizeBytes, queueSize: settings.upload.queueSize };

    const slots = new Slots(w.concurrency);
    this.verdicts = Verdicts.fromSettings(
      settings,
      () => {
        // Like BullMQ's own worker connection: commands wait for a Redis that is away, as the job itself does.
        this.verdictRedis = redisClient(settings.redis, 'worker');
        this.verdictRedis.on('error', () => undefined); // the workers' connection reports Redis trouble
        return new VerdictStore(this.verdictRedis, this.opts.prefix);
      },
      this.log,
    );
    const verdicts = this.verdicts;
    if (verdicts) {
      const { dns, authentication, scan } = settings;
      this.log.info(
        {
          authentication: authentication.enabled,
          ...(authentication.enabled ? { dnsServers: dns.servers.length > 0 ? dns.servers : 'system' } : {}),
          ...Object.fromEntries(Object.entries(scan).map(([name, s]) => [name, (s as { endpoint: string }).endpoint])),
        },
        'verdicts on: computed once per message before its first copy is stored',
      );
    }
    this.deliveries = new Worker<DeliveryJobData | DeliveryJobDataV1, DeliveryResult>(
      DELIVERIES_QUEUE,
      this.counted(DELIVERIES_QUEUE, async (job) => {
        const attempt = job.attemptsMade + 1;
        const data = deliveryBatch(job.data);
        const done = new Set(data.done);
        const todo = data.messages.filter((m) => !done.has(m.envelope.messageId)).length;
        const { metrics } = this.opts;
        for (let i = 0; i < todo; i++) metrics?.deliveryStarted();
        let outcome: DeliveryOutcome | undefined;
        try {
          outcome = await deliver(data, { spool: this.spool, aws: this.aws, tuning, slots, ranBefore: job.attemptsStarted > 1, ...(metrics ? { metrics } : {}), ...(verdicts ? { verdicts } : {}) }, this.abort.signal);
        } finally {
          // A failure is final when the job will not run again: out of attempts, or nothing in it a retry could fix.
          // (A job that threw before any outcome — a bug — counts its messages as retries.)
          if (outcome) {
            const final = attempt >= (job.opts.attempts ?? 1) || outcome.failed.every((f) => f.unrecoverable);
            for (const _ of outcome.delivered) metrics?.deliveryFinished('delivered');
            for (const _ of outcome.failed) metrics?.deliveryFinished(final ? 'failed' : 'retry');
            for (const _ of outcome.foundReleased) metrics?.deliveryFinished('delivered');
          } else for (let i = 0; i < todo; i++) metrics?.deliveryFinished('retry');
        }
        for (const d of outcome.delivered) {
          this.log.info(
            { messageId: d.messageId, rule: data.rule.name, jobId: job.id, attempt, bucket: outcome.bucket, key: d.key, bytes: d.storedBytes, multipart: d.multipart, encrypted: outcome.encrypted, notified: !!d.snsMessageId, ms: d.ms },
            'delivered',
          );
        }
        if (outcome.failed.length > 0) {
          for (const f of outcome.failed) {
            const meta = { messageId: f.messageId, rule: data.rule.name, jobId: job.id, attempt, err: f.error.message, errName: f.error.name, unrecoverable: f.unrecoverable };
            if (f.unrecoverable && f.storedKey !== undefined) {
              // Stored, and never to be announced: no retry can change what SNS refused. Said loudly, and counted.
              this.log.error({ ...meta, bucket: outcome.bucket, key: f.storedKey, topicArn: data.rule.s3Action.topicArn }, 'SNS refused the notification for good: the message is stored but not announced; the job goes to the failed set');
              metrics?.notificationRefused(f.error.name);
            } else this.log.warn(meta, 'message not delivered in this attempt');
          }
          // Recorded before the job fails, so the retry redoes only what failed (and only publishes what is stored).
          await job.updateData({ ...data, done: outcome.done, stored: outcome.stored }).catch((err: Error) => this.log.warn({ jobId: job.id, err: err.message }, 'could not record delivery progress; the retry redoes the whole job'));
          throw jobError(outcome, todo);
        }
        if (outcome.foundReleased.length > 0) {
          this.log.warn({ spoolFile: data.spoolFile, rule: data.rule.name, jobId: job.id, attempt, messageIds: outcome.foundReleased }, 'spool file already gone: an earlier run of this job delivered and released it (or it was deleted by hand); nothing left to deliver');
        }
        if (data.release) await this.release(job, data, outcome);
        return { bucket: outcome.bucket, rule: outcome.rule, encrypted: outcome.encrypted, delivered: outcome.delivered };
      }),
      { ...common, concurrency: w.concurrency },
    );
    this.deliveries.on('failed', (job, err) => {
      if (!job) return;
      const data = deliveryBatch(job.data);
      const done = new Set(data.done);
      const meta = { jobId: job.id, rule: data.rule.name, attempt: job.attemptsMade, of: job.opts.attempts, messageIds: data.messages.map((m) => m.envelope.messageId).filter((id) => !done.has(id)), err: err.message, errName: err.name };
      const final = err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
      if (final) this.log.error(meta, 'delivery failed for good; spool file kept; retry with `mailroom queue retry`');
      else this.log.warn(meta, 'delivery failed; will retry');
    });

    this.releases = new Worker<ReleaseJobData, boolean>(
      SPOOL_QUEUE,
      this.counted(SPOOL_QUEUE, async (job) => {
        const fileId = this.spool.directory.fileIdOf(job.data.spoolFile);
        const removed = await this.spool.directory.remove(fileId);
        await verdicts?.release(fileId);
        this.log.debug({ spoolFile: job.data.spoolFile, jobId: job.id, messageIds: job.data.messageIds, removed }, 'every rule of every message delivered; spool file released');
        return removed;
      }),
      { ...common, concurrency: 4 },
    );
    // While Redis is away every worker connection fails each retry (four lines every two seconds): one line, then at
    // most one a minute with the count of those not logged, and one when Redis is back.
    let lastLogged = 0;
    let unlogged = 0;
    let troubled = false;
    const redisError = (err: Error) => {
      troubled = true;
      if (Date.now() - lastLogged < 60_000) return void unlogged++;
      this.log.warn({ err: err.message, ...(unlogged > 0 ? { sinceLastLine: unlogged } : {}) }, 'workers: redis error; retrying (repeats are counted, at most one line a minute)');
      lastLogged = Date.now();
      unlogged = 0;
    };
    connection.on('ready', () => {
      if (troubled) this.log.info({ ...(unlogged > 0 ? { sinceLastLine: unlogged } : {}) }, 'workers: redis is back');
      troubled = false;
      lastLogged = 0;
      unlogged = 0;
    });
    for (const [queue, worker] of [[DELIVERIES_QUEUE, this.deliveries], [SPOOL_QUEUE, this.releases]] as Array<[string, Worker]>) {
      worker.on('error', redisError);
      const stored = (job: Job | undefined) => job && this.settle(`${queue}:${job.id}`);
      worker.on('completed', stored);
      worker.on('failed', stored);
    }
  }

  /**
   * A lone delivery job's last step (queue/jobs.ts): every message is done, so the spool file goes. Should that fail,
   * the job records every message as done before failing, so its retry only deletes the file.
   */
  private async release(job: Job<DeliveryJobData | DeliveryJobDataV1, DeliveryResult>, data: DeliveryJobData, outcome: DeliveryOutcome): Promise<void> {
    try {
      const fileId = this.spool.directory.fileIdOf(data.spoolFile);
      const removed = await this.spool.directory.remove(fileId);
      await this.verdicts?.release(fileId);
      this.log.debug({ spoolFile: data.spoolFile, jobId: job.id, removed }, 'every message delivered; spool file released');
    } catch (err) {
      await job.updateData({ ...data, done: outcome.done, stored: [] }).catch((e: Error) => this.log.warn({ jobId: job.id, err: e.message }, 'could not record delivery progress; the retry redoes the whole job'));
      throw err;
    }
  }

  private counted<J extends Job, R>(queue: string, processor: (job: J) => Promise<R>): (job: J) => Promise<R> {
    return (job) => {
      const key = `${queue}:${job.id}`;
      this.unsettled.set(key, (this.unsettled.get(key) ?? 0) + 1);
      return processor(job);
    };
  }

  private settle(key: string): void {
    const n = this.unsettled.get(key);
    if (n === undefined) return; // a stalled job failed by the checker: not run here
    if (n > 1) this.unsettled.set(key, n - 1);
    else this.unsettled.delete(key);
  }

  /**
   * Resolves once no job runs or waits to have its result stored in Redis. BullMQ's close() can outlast that for
   * ever: begun while Redis was unreachable, it waits for a connection and does not settle even once Redis is back.
   * A result queued for a Redis that is away keeps the stop waiting (up to its timeout) for Redis to take it, rather
   * than have the job run again after lockDurationMs.
   */
  private allSettled(timers: NodeJS.Timeout[]): Promise<'idle'> {
    return new Promise((resolve) => {
      // Twice in a row, so a close that is about to settle by itself (Redis there) usually does.
      let seen = 0;
      timers.push(
        setInterval(() => {
          seen = this.unsettled.size === 0 ? seen + 1 : 0;
          if (seen >= 2) resolve('idle');
        }, IDLE_POLL_MS),
      );
    });
  }

  /**
   * Lets deliveries in flight finish within `timeoutMs`; then aborts them (their jobs are retried later). While Redis
   * is or was unreachable (BullMQ's close stuck) it returns as soon as no job runs or has a result waiting for Redis.
   * Every Redis client of the workers is ended before it returns.
   */
  async stop(timeoutMs = this.runtime.settings.worker.shutdownTimeoutMs): Promise<void> {
    const workers = [this.deliveries, this.releases].filter((w): w is Worker => w !== undefined);
    const timers: NodeJS.Timeout[] = [];
    const after = (ms: number) => new Promise<false>((resolve) => timers.push(setTimeout(() => resolve(false), ms)));
    const idle = this.allSettled(timers);
    try {
      const graceful = Promise.all(workers.map((w) => w.close())).then(() => true as const, () => true as const);
      const first = await Promise.race([graceful, after(timeoutMs), idle]);
      if (first === false) {
        this.log.warn({ timeoutMs }, 'deliveries still running at shutdown; aborting them (they will be retried)');
        this.abort.abort(new Error('gateway shutting down'));
        // BullMQ's close() never settles when it began while Redis was unreachable (even once Redis is back); a
        // shutdown must still end. Whatever a worker held is taken over by the next start after lockDurationMs.
        const forced = Promise.allSettled(workers.map((w) => w.close(true))).then(() => true as const);
        const closed = await Promise.race([forced, after(FORCE_CLOSE_MS), idle]);
        if (closed !== true) this.log.warn({ waitedMs: FORCE_CLOSE_MS }, 'workers did not close (Redis unreachable?); stopping without them');
      } else if (first === 'idle') {
        this.log.info('workers stopped without BullMQ closing them (it waits for Redis); every job they ran has its result stored');
      }
    } finally {
      for (const t of timers) clearTimeout(t); // clears the interval too
      await this.closeConnection();
      this.verdicts?.stop();
      this.verdictRedis?.disconnect();
      this.aws.destroy();
    }
  }

  /** For tests and `mailroom local`: called with every completed delivery job. */
  onDelivered(f: (job: Job<DeliveryJobData | DeliveryJobDataV1, DeliveryResult>, result: DeliveryResult) => void): void {
    this.deliveries?.on('completed', (job, result) => f(job, result));
  }
}
