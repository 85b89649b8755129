import type { AddressInfo } from 'node:net';
import type { Logger } from './log.js';
import { Enqueuer } from './queue/enqueue.js';
import type { GatewayRuntime } from './settings.js';
import { SmtpFront } from './smtp/server.js';
import { SpoolRecovery } from './spool/recovery.js';
import { Spool } from './spool/spool.js';
import { DeliveryWorkers } from './worker/worker.js';

export interface GatewayParts {
  /** SMTP front, accept path and spool recovery. */
  smtp: boolean;
  /** Delivery and spool-release workers. */
  workers: boolean;
}

export interface RunningGateway {
  smtpAddress?: AddressInfo;
  smtp?: SmtpFront;
  workers?: DeliveryWorkers;
  recovery?: SpoolRecovery;
  spool: Spool;
  /** SIGTERM semantics: stop accepting, finish DATA in flight, give deliveries their shutdown timeout. */
  stop(): Promise<void>;
}

/** How long start-up waits for Redis before refusing to run (an MX answering 451 to everything helps nobody). */
const REDIS_STARTUP_TIMEOUT_MS = 10_000;

export async function startGateway(runtime: GatewayRuntime, parts: GatewayParts, log: Logger): Promise<RunningGateway> {
  const { settings } = runtime;
  const spool = new Spool(settings.spoolDir);
  // Only the accepting process may drop partial files: a separate worker process must not touch incoming/.
  await spool.init({ clearIncoming: parts.smtp });
  const running: RunningGateway = { spool, stop: async () => undefined };
  let enqueuer: Enqueuer | undefined;

  try {
    if (parts.smtp) {
      enqueuer = new Enqueuer(
        {
          redisUrl: settings.redis.url,
          prefix: settings.redis.prefix,
          timeoutMs: settings.redis.enqueueTimeoutMs,
          policy: { attempts: settings.worker.attempts, backoffBaseMs: settings.worker.backoffBaseMs, keepCompleted: settings.worker.keepCompleted },
        },
        log,
      );
      await enqueuer.ready(REDIS_STARTUP_TIMEOUT_MS);
      const inFlight = new Set<string>();
      const recovery = new SpoolRecovery(spool, enqueuer, inFlight, log);
      const first = await recovery.run();
      log.info({ spooled: first.checked, requeued: first.requeued }, 'spool recovered');
      enqueuer.onReady(() => void recovery.run().catch((err: Error) => log.warn({ err: err.message }, 'spool recovery after reconnect failed; the periodic pass will retry')));
      recovery.start(settings.worker.recoveryIntervalMs);
      running.recovery = recovery;
      const smtp = new SmtpFront({ runtime, spool, enqueuer, inFlight, log });
      running.smtpAddress = await smtp.listen();
      running.smtp = smtp;
    }
    if (parts.workers) {
      const workers = new DeliveryWorkers(runtime, spool, log);
      workers.start();
      running.workers = workers;
      log.info({ concurrency: settings.worker.concurrency, spool: settings.spoolDir }, 'workers started');
    }
  } catch (err) {
    await running.smtp?.stop().catch(() => undefined);
    running.recovery?.stop();
    await enqueuer?.close();
    throw err;
  }

  let stopping: Promise<void> | undefined;
  running.stop = () =>
    (stopping ??= (async () => {
      log.info('shutting down: no new connections, finishing messages in flight');
      await running.smtp?.stop();
      running.recovery?.stop();
      await running.workers?.stop();
      await enqueuer?.close();
      log.info('stopped');
    })());
  return running;
}
