import type { AddressInfo } from 'node:net';
import { NodeIdError, NodeRegistry, nodePrefix, resolveNodeId } from './cluster/node.js';
import { childLogger, type Logger } from './runtime/log.js';
import { ReadinessCheck } from './observability/health.js';
import { OpsHttpServer } from './observability/http.js';
import { GatewayMetrics } from './observability/metrics.js';
import { QueueDepthSampler, SpoolSampler } from './observability/samplers.js';
import { spoolEventsFor } from './observability/spool-events.js';
import { Enqueuer } from './queue/enqueue.js';
import { assertRedisUsable, unreachableMessage } from './redis/preflight.js';
import type { GatewayRuntime } from './runtime/settings.js';
import { SmtpFront } from './smtp/server.js';
import { claimSpool } from './spool/owner.js';
import { SpoolRecovery } from './intake/recovery.js';
import { SpoolDirectory } from './spool/directory.js';
import { SpoolReader } from './spool/reader.js';
import { sealOnThread, spoolKey, spoolSeal } from './spool/seal-keys.js';
import { SealThread } from './spool/seal-thread.js';
import { SpoolWriter, type SpoolEvents } from './spool/writer.js';
import { Intake } from './intake/intake.js';
import { within } from './runtime/timeout.js';
import { DeliveryThread } from './worker/thread.js';
import { DeliveryWorkers } from './worker/worker.js';
import { checkRuleBuckets, ruleBuckets } from './observability/rule-buckets.js';

export interface GatewayParts {
  /** SMTP front, accept path and spool recovery. */
  smtp: boolean;
  /**
   * The accept path and spool recovery without an SMTP front: a process that hands messages to `intake` itself
   * (replay). Like the SMTP front it claims the spool (one accepting process per spool, spool/owner.ts).
   */
  accept?: boolean;
  /** The node id when neither the settings nor the spool name one (default: the host name; cluster/node.ts). */
  defaultNodeId?: string;
  /** Delivery and spool-release workers. */
  workers: boolean;
  /** Run the workers in a worker thread of their own (worker/thread.ts) rather than on the SMTP thread. */
  deliveryThread?: boolean;
}

export interface RunningGateway {
  smtpAddress?: AddressInfo;
  smtp?: SmtpFront;
  workers?: DeliveryWorkers;
  deliveryThread?: DeliveryThread;
  recovery?: SpoolRecovery;
  spool: SpoolDirectory;
  /** Reads this spool's files, sealed ones too (with the node's spool key). */
  reader: SpoolReader;
  /** The accept transaction (SMTP front, replay). */
  intake?: Intake;
  /** This node's id and the BullMQ prefix of its queues (see cluster/node.ts). */
  nodeId: string;
  queuePrefix: string;
  metrics: GatewayMetrics;
  /** Where /metrics, /healthz and /readyz are served, when `gateway.http` is set. */
  httpAddress?: AddressInfo;
  /** SIGTERM semantics: stop accepting, finish DATA in flight, give deliveries their shutdown timeout. */
  stop(): Promise<void>;
}

/** How long start-up waits for Redis before refusing to run (an MX answering 451 to everything helps nobody). */
const REDIS_STARTUP_TIMEOUT_MS = 10_000;

export async function startGateway(runtime: GatewayRuntime, parts: GatewayParts, baseLog: Logger): Promise<RunningGateway> {
  const { settings, config } = runtime;
  const accepting = parts.smtp || parts.accept === true;
  // Spool encryption's key, read and checked before the spool is touched: a missing or open key file is a config error.
  const encryption = settings.spool.encryption;
  const sealKey = encryption ? spoolKey(encryption, { source: runtime.source, requestTimeoutMs: settings.upload.requestTimeoutMs }) : undefined;
  // One accepting process per spool: only it may drop partial and empty files and write spares (spool/owner.ts).
  const claim = accepting ? await claimSpool(settings.spoolDir, (why) => baseLog.error({ spool: settings.spoolDir }, why)) : undefined;
  // Logged from the start (the first spares are made by init); counted once the node's metrics exist, below.
  const spoolEvents: SpoolEvents = spoolEventsFor(baseLog, undefined);
  const spool = new SpoolDirectory(settings.spoolDir, { spareFiles: accepting, events: spoolEvents });
  try {
    await spool.init({ clearIncoming: accepting });
  } catch (err) {
    await claim?.release();
    throw err;
  }
  const nodeId = await resolveNodeId(settings.spoolDir, settings.nodeId, () => spool.countSpooled(), parts.defaultNodeId).catch(async (err: Error) => {
    await spool.close();
    await claim?.release();
    throw err;
  });
  const queuePrefix = nodePrefix(settings.redis.prefix, nodeId);
  const log = childLogger(baseLog, { node: nodeId });
  // Bound to this node (each file's encryption context names it): made once the node id is known.
  const seal =
    encryption && sealKey
      ? spoolSeal(encryption, sealKey, { nodeId, onDataKey: (op) => log.info({ key: sealKey.describe }, op === 'made' ? 'spool data key made: it seals new spool files until its age, file or byte bound' : 'spool data key opened') })
      : undefined;
  const metrics = new GatewayMetrics(nodeId);
  Object.assign(spoolEvents, spoolEventsFor(log, metrics));
  let draining = false;
  const running: RunningGateway = { spool, reader: new SpoolReader(spool, seal), nodeId, queuePrefix, metrics, stop: async () => undefined };
  let enqueuer: Enqueuer | undefined;
  let smtpFront: SmtpFront | undefined;
  let intake: Intake | undefined;
  let registry: NodeRegistry | undefined;
  let http: OpsHttpServer | undefined;
  let readiness: ReadinessCheck | undefined;
  const awsCheck = new AbortController();
  let depth: QueueDepthSampler | undefined;
  let sealThread: SealThread | undefined;

  /** In order: no new mail, DATA in flight finished, deliveries given their time, then the connections and files. */
  const closeAll = async (startFailed: boolean): Promise<void> => {
    const quietly = (p: Promise<unknown> | undefined) => (startFailed ? p?.catch(() => undefined) : p);
    await quietly(running.smtp?.stop());
    // Refused messages whose late jobs may still land: a file left undecided stays, and the next start's recovery
    // delivers it (at-least-once, as any late add).
    await within(intake?.settled() ?? Promise.resolve(), settings.smtp.closeTimeoutMs, () => new Error('intake not settled')).catch(() => log.warn('stopped before every refused message\'s late jobs were known; recovery decides at the next start'));
    intake?.close();
    await sealThread?.close();
    running.recovery?.stop();
    awsCheck.abort();
    await quietly(running.workers?.stop());
    await quietly(running.deliveryThread?.stop());
    await enqueuer?.close();
    await registry?.close();
    await http?.close();
    readiness?.close();
    await depth?.close();
    await spool.close();
    seal?.close();
    await claim?.release();
  };

  try {
    if (settings.http) {
      // First, so /healthz answers (and /readyz says why not) while the rest waits for Redis.
      readiness = new ReadinessCheck({
        redis: settings.redis,
        spoolDir: settings.spoolDir,
        buckets: ruleBuckets(config),
        timeoutMs: settings.http.checkTimeoutMs,
        cacheMs: settings.http.readyCacheMs,
        draining: () => draining,
        ...(parts.workers && parts.deliveryThread ? { delivery: () => running.deliveryThread?.health() ?? 'delivery thread starting' } : {}),
      });
      const d = (depth = new QueueDepthSampler(settings.redis, queuePrefix, settings.http.checkTimeoutMs));
      const spoolSampler = new SpoolSampler(spool);
      metrics.registry.collect(() => d.sample(metrics));
      metrics.registry.collect(() => spoolSampler.sample(metrics));
      metrics.registry.collect(async () => metrics.connections.set({}, running.smtp?.edge.openConnections ?? 0));
      http = new OpsHttpServer({ registry: metrics.registry, readiness, log });
      running.httpAddress = await http.listen(settings.http.host, settings.http.port);
    }
    // A refused login, an untrusted certificate or the wrong cluster setting fail later in ways that do not say so.
    await assertRedisUsable(settings.redis);
    if (accepting && seal?.sealsNewFiles) {
      // A key that cannot seal means no mail can be accepted: said now, not as a 451 to every sender.
      const timeoutMs = Math.min(30_000, settings.upload.requestTimeoutMs);
      await within(seal.check(), timeoutMs, () => new Error(`no answer within ${timeoutMs} ms`)).catch((err: Error) => {
        throw new Error(`spool encryption cannot seal mail: ${err.message}`);
      });
      if (encryption && sealOnThread(encryption)) {
        sealThread = await SealThread.start(
          { encryption, source: runtime.source, requestTimeoutMs: settings.upload.requestTimeoutMs, nodeId },
          {
            dataKey: (op) => log.info({ key: seal.key.describe, thread: 'seal' }, op === 'made' ? 'spool data key made: it seals new spool files until its age, file or byte bound' : 'spool data key opened'),
            renewFailed: (why) => log.warn({ key: seal.key.describe, thread: 'seal', err: why }, 'the next spool data key could not be made ahead; the current one serves until its age bound, retrying'),
            died: (why) => log.error({ err: why }, 'the spool sealing thread stopped; the messages it was sealing are refused (451) and a new thread starts'),
          },
        ).catch((err: Error) => {
          throw new Error(`spool encryption: the sealing thread did not start: ${err.message}`);
        });
      }
      seal.renewAhead((err) => log.warn({ key: seal.key.describe, err: err.message }, 'the next spool data key could not be made ahead; the current one serves until its age bound, retrying'));
      log.info({ key: seal.key.describe, thread: !!sealThread }, 'spool encryption on: new mail is sealed');
    }
    if (accepting) {
      enqueuer = new Enqueuer(
        {
          redis: settings.redis,
          prefix: queuePrefix,
          timeoutMs: settings.redis.enqueueTimeoutMs,
          policy: { attempts: settings.worker.attempts, backoffBaseMs: settings.worker.backoffBaseMs, keepCompleted: settings.worker.keepCompleted },
        },
        log,
      );
      // Made (not opened) before anything is registered: an unreadable certificate or users file is a config error
      // that should leave no trace behind — no node in Redis, no wait for it.
      intake = new Intake({
        directory: spool,
        writer: new SpoolWriter(spool, spoolEvents, seal, sealThread ? (id, plaintext, bytes) => sealThread!.seal(id, plaintext, bytes) : undefined),
        jobs: enqueuer,
        log,
        jobsTimeoutMs: settings.redis.enqueueTimeoutMs,
        maxMessageBytes: config.maxMessageSize,
        identity: { byHost: settings.hostname, accountId: config.accountId, region: config.region },
      });
      running.intake = intake;
      if (parts.smtp) smtpFront = new SmtpFront({ runtime, intake, spoolDir: settings.spoolDir, log, metrics });
      await enqueuer.ready(REDIS_STARTUP_TIMEOUT_MS);
    }
    registry = new NodeRegistry({ redis: settings.redis, prefix: settings.redis.prefix, nodeId, spoolDir: settings.spoolDir }, log);
    try {
      await registry.claim(REDIS_STARTUP_TIMEOUT_MS);
    } catch (err) {
      if (err instanceof NodeIdError) throw err;
      throw new Error(await unreachableMessage(settings.redis, (err as Error).message));
    }
    log.info({ queuePrefix, spool: settings.spoolDir }, 'node registered');
    if (parts.workers && parts.deliveryThread) {
      // Before the SMTP port opens: once it answers, the process is up (a signal then means a graceful stop).
      const logOptions = { name: String(baseLog.bindings().name ?? 'mailroom'), level: baseLog.level };
      running.deliveryThread = await DeliveryThread.start({ runtime, prefix: queuePrefix, nodeId, log, logOptions, metrics });
      log.info({ concurrency: settings.worker.concurrency, spool: settings.spoolDir }, 'workers started in their own thread');
    }
    if (enqueuer && intake) {
      const busy = intake;
      const recovery = new SpoolRecovery({ directory: spool, reader: running.reader }, enqueuer, (id) => busy.isBusy(id), log, settings.redis.enqueueTimeoutMs);
      const first = await recovery.run();
      log.info({ spooled: first.checked, requeued: first.requeued }, 'spool recovered');
      enqueuer.onReady(() => void recovery.run().catch((err: Error) => log.warn({ err: err.message }, 'spool recovery after reconnect failed; the periodic pass will retry')));
      recovery.start(settings.worker.recoveryIntervalMs);
      running.recovery = recovery;
      if (smtpFront) {
        running.smtpAddress = await smtpFront.listen();
        running.smtp = smtpFront;
      }
    }
    if (parts.workers && !parts.deliveryThread) {
      const workers = new DeliveryWorkers(runtime, new SpoolReader(spool, seal), log, { prefix: queuePrefix, metrics });
      workers.start();
      running.workers = workers;
      log.info({ concurrency: settings.worker.concurrency, spool: settings.spoolDir }, 'workers started');
    }
    // Not awaited: the check only reports, and a slow S3 must not hold the SMTP port closed.
    if (parts.workers) void checkRuleBuckets(config, Math.min(10_000, settings.upload.requestTimeoutMs), log, awsCheck.signal);
  } catch (err) {
    await closeAll(true);
    throw err;
  }

  let stopping: Promise<void> | undefined;
  running.stop = () =>
    (stopping ??= (async () => {
      draining = true;
      log.info('shutting down: no new connections, finishing messages in flight');
      await closeAll(false);
      log.info('stopped');
    })());
  return running;
}
