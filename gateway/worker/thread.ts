import type { Worker } from 'node:worker_threads';
import { writeLines, type Logger } from '../runtime/log.js';
import type { DeliveryMetrics } from '../observability/metrics.js';
import type { GatewayRuntime } from '../runtime/settings.js';
import type { DeliveryThreadData, FromThread, MetricEvent, ToThread } from './thread-protocol.js';
import { moduleThread } from '../runtime/module-thread.js';

/** Restart delays after a crash: doubling from the first, capped; a thread that ran this long resets it. */
const RESTART_FIRST_MS = 1_000;
const RESTART_MAX_MS = 30_000;
const HEALTHY_AFTER_MS = 60_000;
/** Beyond the deliveries' own shutdown time: BullMQ's forced close and the thread's exit. */
const STOP_GRACE_MS = 10_000;

export interface DeliveryThreadOptions {
  runtime: GatewayRuntime;
  prefix: string;
  nodeId: string;
  log: Logger;
  /** The thread's logger settings (same name and level as the process's). */
  logOptions: { name: string; level: string };
  metrics?: DeliveryMetrics;
}

/**
 * `mailroom gateway`'s delivery workers in a worker thread of the same process: the SMTP thread answers while
 * uploads, encryption and notifications run on another core — what `mailroom smtp` + `mailroom worker` give as two
 * processes, as one process with one /metrics and one log. Nothing is shared but the spool directory and Redis, as
 * between those two processes, so a crash of the thread loses nothing: its jobs stay in Redis (a job it held is
 * taken over after lockDurationMs) and the thread is started again.
 */
export class DeliveryThread {
  private worker: Worker | undefined;
  /** The current worker has not exited. */
  private alive = false;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartDelay = RESTART_FIRST_MS;
  /** When the running thread was lost (undefined while one runs). */
  private downSince: number | undefined;
  /** Deliveries the thread reported started and not finished: settled as retries if it dies. */
  private inFlight = 0;

  private constructor(private readonly opts: DeliveryThreadOptions) {}

  /** Resolves once the thread's workers run; rejects with the thread's own start-up error. */
  static async start(opts: DeliveryThreadOptions): Promise<DeliveryThread> {
    const t = new DeliveryThread(opts);
    await t.spawn();
    return t;
  }

  private spawn(): Promise<void> {
    const { runtime, prefix, nodeId, logOptions } = this.opts;
    const data: DeliveryThreadData = { runtime, prefix, nodeId, log: logOptions };
    const worker = (this.worker = entryWorker(data));
    this.alive = true;
    const startedAt = Date.now();
    return new Promise<void>((resolve, reject) => {
      let started = false;
      worker.on('message', (m: FromThread) => {
        switch (m.t) {
          case 'log':
            writeLines(this.opts.log, m.lines);
            break;
          case 'metrics':
            for (const e of m.events) this.apply(e);
            break;
          case 'started':
            started = true;
            this.downSince = undefined;
            resolve();
            break;
          case 'start-failed':
            reject(new Error(m.message));
            void worker.terminate();
            break;
          case 'stopped':
            break;
        }
      });
      worker.on('error', (err) => {
        if (!started) reject(err);
        else this.opts.log.error({ err: err.message, errName: err.name }, 'delivery thread crashed');
      });
      worker.on('exit', (code) => {
        if (this.worker === worker) this.alive = false;
        this.settleInFlight();
        if (!started) return reject(new Error(`delivery thread exited during start-up (code ${code})`));
        if (this.stopping || this.worker !== worker) return;
        this.downSince = Date.now();
        if (Date.now() - startedAt > HEALTHY_AFTER_MS) this.restartDelay = RESTART_FIRST_MS;
        this.opts.log.error({ code, restartInMs: this.restartDelay }, 'delivery thread stopped unexpectedly; mail stays spooled, restarting it');
        this.restartLater();
      });
    });
  }

  /** Starts the thread again after the current delay, doubling it; a failed start schedules the next try. */
  private restartLater(): void {
    const delay = this.restartDelay;
    this.restartDelay = Math.min(this.restartDelay * 2, RESTART_MAX_MS);
    this.restartTimer = setTimeout(() => {
      if (this.stopping) return;
      this.spawn().then(
        () => this.opts.log.info('delivery thread restarted'),
        (err: Error) => {
          this.opts.log.error({ err: err.message, retryInMs: this.restartDelay }, 'delivery thread did not restart; trying again');
          if (!this.stopping) this.restartLater();
        },
      );
    }, delay);
  }

  private apply([op, ...args]: MetricEvent): void {
    if (op === 'deliveryStarted') this.inFlight++;
    if (op === 'deliveryFinished') this.inFlight--;
    const m = this.opts.metrics;
    if (!m) return;
    (m[op] as (...a: unknown[]) => void).apply(m, args);
  }

  private settleInFlight(): void {
    for (; this.inFlight > 0; this.inFlight--) this.opts.metrics?.deliveryFinished('retry');
  }

  /** For /readyz: "ok" while the thread runs, else since when deliveries have been down. */
  health(): string {
    return this.downSince === undefined ? 'ok' : `delivery thread down since ${new Date(this.downSince).toISOString()}; restarting`;
  }

  /** Lets deliveries in flight finish within the shutdown timeout (as DeliveryWorkers.stop), then ends the thread. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const worker = this.worker;
    if (!worker || !this.alive) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage({ t: 'stop' } satisfies ToThread);
    let timer: NodeJS.Timeout | undefined;
    const limit = this.opts.runtime.settings.worker.shutdownTimeoutMs + STOP_GRACE_MS;
    const inTime = await Promise.race([exited.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), limit)))]);
    clearTimeout(timer);
    if (!inTime) {
      this.opts.log.warn({ waitedMs: limit }, 'delivery thread did not stop in time; ending it (its jobs are retried after lockDurationMs)');
      await worker.terminate();
    }
  }
}

function entryWorker(data: DeliveryThreadData): Worker {
  return moduleThread(import.meta.url, 'thread-entry', data);
}
