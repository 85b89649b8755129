import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { Queue } from 'bullmq';
import { nodeIdFromHostname } from '../cluster/node.js';
import { startGateway, type RunningGateway } from '../gateway.js';
import { DELIVERIES_QUEUE, deliveryBatch, SPOOL_QUEUE } from '../queue/jobs.js';
import { QueueAdmin, type FailedDelivery } from '../queue/admin.js';
import { bullConnection } from '../redis/connection.js';
import type { Logger } from '../runtime/log.js';
import type { GatewayRuntime } from '../runtime/settings.js';
import { s3Client } from '../aws/clients.js';
import type { S3Client } from '@aws-sdk/client-s3';
import { BucketCheck } from './bucket-check.js';
import { Checkpoint } from './checkpoint.js';
import { IntakeTarget, spooledObjects } from './intake-target.js';
import type { ReplayAcceptMessage } from './target.js';

/**
 * Replay as an accepting process of its own, wired by the gateway's own startGateway (`accept` part: spool claim,
 * spares, Intake, jobs, spool recovery; no SMTP front):
 *
 * - its own spool directory (a spool has one accepting process, spool/owner.ts; a running gateway's SMTP front holds
 *   its own), by default `replay/` inside the gateway's spool directory — on the same volume, which must outlive the
 *   process as the gateway's does;
 * - its own node id (recorded in that spool, by default `replay-<host>-<tag of its path>`), so its jobs live in its own queues under
 *   the node prefix (cluster/node.ts) and are taken only by workers that read this spool: `--deliver` runs them in
 *   this process, otherwise a `mailroom worker` on the same spool directory and Redis delivers.
 */

/** Files in the replay spool directory besides the spool's own. */
export const CHECKPOINT_FILE = 'replay-checkpoint.jsonl';

/**
 * With `--deliver`, what the spool may hold of this run's messages not yet delivered before replay waits: deliveries
 * (message × rule) and DATA bytes. Bounds the spool's disk use when reading outruns delivery; a message is always
 * taken when nothing is pending, however big.
 */
const BACKLOG_DELIVERIES = 4096;
const BACKLOG_BYTES = 512 * 1024 * 1024;
/** How often the drain looks at the spool and the queues. */
const DRAIN_POLL_MS = 250;

/**
 * A replay spool's node id when it records none: `replay-<host>-<8 hex of its path>`. One per spool directory: two
 * spools behind one node's queues would each take the other's jobs and fail them (cluster/node.ts).
 */
export function defaultReplayNodeId(spoolDir: string): string {
  const tag = createHash('sha256').update(resolve(spoolDir)).digest('hex').slice(0, 8);
  return `replay-${nodeIdFromHostname().slice(0, 46)}-${tag}`;
}

/** The gateway runtime as replay runs it: its own spool and node id, and none of the gateway's HTTP listener. */
export function replayRuntime(runtime: GatewayRuntime, spoolDir: string): GatewayRuntime {
  const { http: _http, nodeId: _nodeId, ...settings } = runtime.settings;
  return { ...runtime, settings: { ...settings, spoolDir: resolve(spoolDir) } };
}

export interface ReplayNodeOptions {
  /** From replayRuntime(). */
  runtime: GatewayRuntime;
  /** Run the delivery workers in this process. */
  deliver: boolean;
  /** HEAD every object the replay spool does not know (see intake-target.ts); false: `--no-bucket-check`. */
  checkBucket: boolean;
  log: Logger;
  /** Something the operator should know (a bucket that refuses HEAD, an unreadable checkpoint line). */
  note: (text: string) => void;
}

/** One message of a delivery that failed for good. */
export interface DeliveryFailure {
  messageId: string;
  /** Where the message is in its source, when this run accepted it. */
  source?: string;
  failure: FailedDelivery;
}

export type DrainOutcome =
  | { drained: true }
  /** Deliveries stopped moving (failed for good), or the drain was stopped: what is left stays in the spool. */
  | { drained: false; spooledFiles: number; failed: DeliveryFailure[]; stopped: boolean };

export class ReplayNode {
  readonly target: IntakeTarget;
  /** Messages of this run whose every rule was delivered (`deliver`). */
  delivered = 0;
  /** Messages of this run accepted. */
  accepted = 0;
  private readonly pending = new Map<string, { source: string | undefined; rules: number; bytes: number }>();
  private pendingDeliveries = 0;
  private pendingBytes = 0;
  private deliveryDone: Array<() => void> = [];
  private readonly s3s = new Map<string, S3Client>();
  private readonly counts: { queues: Queue[]; close: () => Promise<void> };
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly gw: RunningGateway,
    private readonly o: ReplayNodeOptions,
    checkpoint: Checkpoint,
    spooled: Set<string>,
  ) {
    const bucket = new BucketCheck(
      (region) => {
        let c = this.s3s.get(region);
        // A HEAD carries no checksum: WHEN_REQUIRED keeps it on the hand-signed path (aws/s3-head-object.ts).
        if (!c) this.s3s.set(region, (c = s3Client({ region, requestTimeoutMs: o.runtime.settings.upload.requestTimeoutMs, checksums: 'WHEN_REQUIRED' })));
        return c;
      },
      (b, why) => o.note(`${why}: whether a message is in bucket ${b} already is judged from the checkpoint and the replay spool only — grant s3:GetObject and s3:ListBucket on it to have it asked`),
    );
    this.target = new IntakeTarget({
      intake: gw.intake!,
      checkpoint,
      spooled,
      bucket,
      checkBucket: o.checkBucket,
      region: o.runtime.config.region,
      onAccepted: (m, dataLength) => this.onAccepted(m, dataLength),
      ...(o.deliver ? { admit: () => this.admit() } : {}),
    });
    const { connection, close } = bullConnection(o.runtime.settings.redis, 'producer');
    const queues = [DELIVERIES_QUEUE, SPOOL_QUEUE].map((name) => new Queue(name, { connection, prefix: gw.queuePrefix, skipMetasUpdate: true }));
    for (const q of queues) q.on('error', () => undefined); // the intake and workers report Redis trouble
    this.counts = { queues, close: async () => void (await Promise.allSettled(queues.map((q) => q.close())), await close()) };
    gw.workers?.onDelivered((job) => this.onDelivered(deliveryBatch(job.data).messages.map((m) => m.envelope.messageId)));
  }

  static async start(o: ReplayNodeOptions): Promise<ReplayNode> {
    const gw = await startGateway(o.runtime, { smtp: false, accept: true, workers: o.deliver, defaultNodeId: defaultReplayNodeId(o.runtime.settings.spoolDir) }, o.log);
    try {
      const { checkpoint, unreadable } = await Checkpoint.open(join(gw.spool.dir, CHECKPOINT_FILE));
      if (unreadable > 0) o.note(`${unreadable} line(s) of ${checkpoint.path} could not be read (a crash mid-write?) and are ignored: the messages they named are found in the spool or their buckets`);
      // After spool recovery (startGateway): whatever is spooled now has its jobs.
      const spooled = await spooledObjects(gw.spool, gw.reader);
      if (spooled.unreadable.length > 0) o.note(`${spooled.unreadable.length} file(s) in ${gw.spool.messagesDir} could not be read (torn by a crash, or damaged); spool recovery sets aside those without jobs`);
      return new ReplayNode(gw, o, checkpoint, spooled.objects);
    } catch (err) {
      await gw.stop();
      throw err;
    }
  }

  get nodeId(): string {
    return this.gw.nodeId;
  }

  get spoolDir(): string {
    return this.gw.spool.dir;
  }

  private onAccepted(m: ReplayAcceptMessage, dataLength: number): void {
    this.accepted++;
    if (!this.o.deliver) return;
    this.pending.set(m.messageId, { source: m.source, rules: m.rules.length, bytes: dataLength });
    this.pendingDeliveries += m.rules.length;
    this.pendingBytes += dataLength;
  }

  /** A delivery job completed: every message in it is stored and announced for its rule. */
  private onDelivered(messageIds: string[]): void {
    for (const id of messageIds) {
      const p = this.pending.get(id);
      if (!p) continue; // an earlier run's message
      this.pendingDeliveries--;
      if (--p.rules === 0) {
        this.pending.delete(id);
        this.pendingBytes -= p.bytes;
        this.delivered++;
      }
    }
    for (const wake of this.deliveryDone.splice(0)) wake();
  }

  /** With --deliver: waits while the spool holds a backlog of this run's deliveries, so disk use stays bounded. */
  private async admit(): Promise<void> {
    while (this.pendingDeliveries > 0 && (this.pendingDeliveries >= BACKLOG_DELIVERIES || this.pendingBytes >= BACKLOG_BYTES) && !this.stopping) {
      await new Promise<void>((r) => {
        this.deliveryDone.push(r);
        setTimeout(r, 1_000).unref();
      });
    }
  }

  /** Deliveries still to come for this run's messages (`deliver`). */
  get backlog(): number {
    return this.pendingDeliveries;
  }

  /** Jobs that can still move (waiting, active, retrying) and jobs failed for good, in this node's queues. */
  private async queueState(): Promise<{ moving: number; failed: number }> {
    let moving = 0;
    let failed = 0;
    for (const q of this.counts.queues) {
      const c = await q.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed');
      moving += (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.active ?? 0) + (c.delayed ?? 0);
      failed += c.failed ?? 0;
    }
    return { moving, failed };
  }

  /**
   * With --deliver, after the last accept: waits until every spool file is released (all its messages stored and
   * announced for every rule) — or until nothing can move any more (what is left failed for good), or `signal`.
   */
  async drain(signal: AbortSignal): Promise<DrainOutcome> {
    let still = 0;
    for (;;) {
      const files = (await this.gw.spool.list()).length;
      if (files === 0) return { drained: true };
      if (signal.aborted) return { drained: false, spooledFiles: files, failed: [], stopped: true };
      const { moving } = await this.queueState();
      // Twice in a row, with a recovery pass between: a file whose jobs Redis lost gets them back.
      if (moving === 0 && ++still >= 2) {
        if (still === 2) await this.gw.recovery?.run();
        else return { drained: false, spooledFiles: files, failed: await this.failures(), stopped: false };
      } else if (moving > 0) still = 0;
      await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
    }
  }

  /** Messages of this node's deliveries that failed for good (from the first `limit` jobs), with their sources. */
  async failures(limit = 100): Promise<DeliveryFailure[]> {
    const admin = new QueueAdmin(this.o.runtime.settings.redis, this.o.runtime.settings.redis.prefix, this.gw.nodeId);
    try {
      await admin.ready();
      return (await admin.failed(limit)).flatMap((failure) =>
        failure.messageIds.map((messageId) => {
          const source = this.pending.get(messageId)?.source;
          return { messageId, failure, ...(source !== undefined ? { source } : {}) };
        }),
      );
    } finally {
      await admin.close();
    }
  }

  /** Lets accepts in flight finish, gives deliveries their shutdown time, and lets go of the spool and Redis. */
  stop(): Promise<void> {
    return (this.stopping ??= (async () => {
      for (const wake of this.deliveryDone.splice(0)) wake();
      await this.gw.stop();
      await this.target.close();
      await this.counts.close();
      for (const c of this.s3s.values()) c.destroy();
    })());
  }
}
