/**
 * Which stored copies a run is waiting for, and when each was handed over: one copy per message and receipt rule,
 * as SES (and the gateway) store one object and publish one notification per rule. Delivery latency is from the
 * hand-over (the 250 reply; for `load upload` the start of the store) to the copy being seen.
 */
import { performance } from 'node:perf_hooks';
import type { ReceivedNotification } from '../shared/notification/index.js';
import type { S3Action } from '../shared/config/index.js';
import { tokenOfMessageId } from './messages.js';
import type { Recorder } from './recorder.js';

export interface RuleCopy {
  rule: string;
  s3Action: S3Action;
}

interface Expected {
  handedOver: number;
  copies: Array<RuleCopy & { seen: boolean }>;
}

export class DeliveryTracker {
  private readonly byToken = new Map<string, Expected>();
  private readonly tokenBySesId = new Map<string, string>();
  /** This run's notifications that came before their message's hand-over was recorded (a gateway may store and announce a message while its 250 is still on the way). */
  private readonly early = new Map<string, ReceivedNotification[]>();
  private pendingCopies = 0;
  expected = 0;
  duplicates = 0;
  /** Notifications on the watched topics that are not this run's (other mail, an earlier run). */
  foreign = 0;

  constructor(
    private readonly recorder: Recorder,
    private readonly runId: string,
  ) {}

  expect(token: string, sesMessageId: string | undefined, handedOver: number, copies: RuleCopy[]): void {
    if (copies.length === 0) return;
    this.byToken.set(token, { handedOver, copies: copies.map((c) => ({ ...c, seen: false })) });
    if (sesMessageId) this.tokenBySesId.set(sesMessageId, token);
    this.pendingCopies += copies.length;
    this.expected += copies.length;
    const early = this.early.get(token);
    if (early) {
      this.early.delete(token);
      for (const n of early) this.notification(n, handedOver);
    }
  }

  /** The message failed after all: nothing of it is coming. */
  forget(token: string): void {
    const e = this.byToken.get(token);
    if (!e) return;
    this.byToken.delete(token);
    const open = e.copies.filter((c) => !c.seen).length;
    this.pendingCopies -= open;
    this.expected -= e.copies.length;
  }

  get pending(): number {
    return this.pendingCopies;
  }

  /** A notification arrived; true when it was one of ours. */
  notification(n: ReceivedNotification, at = performance.now()): boolean {
    const token = tokenOfMessageId(n.mail?.commonHeaders?.messageId) ?? this.tokenBySesId.get(n.mail?.messageId ?? '');
    const e = token ? this.byToken.get(token) : undefined;
    if (!e) {
      if (token?.startsWith(`${this.runId}-`)) {
        this.early.set(token, [...(this.early.get(token) ?? []), n]);
        return true;
      }
      this.foreign++;
      return false;
    }
    const a = n.receipt?.action;
    const copy = e.copies.find((c) => !c.seen && c.s3Action.topicArn === a?.topicArn && c.s3Action.bucketName === a?.bucketName && (c.s3Action.objectKeyPrefix ?? '') === (a?.objectKeyPrefix ?? ''));
    if (!copy) {
      this.duplicates++;
      return true;
    }
    this.mark(e, copy, at);
    return true;
  }

  /** A copy seen in the bucket (rules without a topic). */
  object(token: string, rule: string, at = performance.now()): void {
    const e = this.byToken.get(token);
    const copy = e?.copies.find((c) => c.rule === rule && !c.seen);
    if (e && copy) this.mark(e, copy, at);
  }

  private mark(e: Expected, copy: { seen: boolean }, at: number): void {
    copy.seen = true;
    this.pendingCopies--;
    this.recorder.count('delivered', at);
    this.recorder.latencyUs('delivery', Math.max(0, at - e.handedOver) * 1000, at);
  }

  /** Resolves once nothing is pending, `signal` aborts, or `ms` pass. */
  async settled(ms: number, signal: AbortSignal): Promise<void> {
    const until = performance.now() + ms;
    while (this.pendingCopies > 0 && !signal.aborted && performance.now() < until) await new Promise((r) => setTimeout(r, 50));
  }
}
