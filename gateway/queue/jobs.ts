import type { FlowJob, JobsOptions } from 'bullmq';
import type { S3Action } from '../../shared/config/index.js';
import { isMessageId } from '../../shared/ses/message-id.js';
import { spoolFileName, type MessageEnvelope, type SpoolFile, type SpooledRule } from '../spool/format.js';

/**
 * The job contract between the accept path and the workers. Per spool file (one message, or a batch of small ones
 * that reached the disk together, spool/writer.ts):
 *
 * - every message of the file matched the same one rule (the usual case): one job,
 *     deliveries / "deliver"  (job id = the file id, `release: true`)   stores and announces the file's messages,
 *                                                                      then deletes the spool file itself;
 * - several rules: one BullMQ flow,
 *     spool / "release"  (job id = the file id)                  parent: deletes the spool file
 *       └─ deliveries / "deliver"  (job id = fileId.ruleName)    one per rule any of its messages matched,
 *                                                                listing those messages
 *   BullMQ runs a parent only after every child completed, so "delete the spool file when every rule of every
 *   message in it is done" is the queue's own bookkeeping, not ours; a delivery that keeps failing leaves its
 *   parent waiting and the file in place.
 *
 * Either way the file id names the job that marks "this file has jobs" (recovery looks in both queues), job ids are
 * deterministic, so enqueuing a file twice (recovery after a crash before the enqueue) adds nothing, and jobs
 * carry envelopes and where each message is in its spool file, never the body.
 *
 * Why one delivery job per file and rule rather than per message: queue bookkeeping (a Lua call to add, two to
 * take and finish, lock renewals) cost more CPU per message than storing it, on both sides; a batch pays it once.
 * Why no flow for a one-rule file: a flow is two jobs, costing about twice a lone job's CPU and Redis time to add
 * (docs/performance.md#one-job-per-spool-file), and its release is a second job to take and finish. What a job finished is recorded in it (`done`, `stored`), so a retry redoes only the messages that failed.
 *
 * Both queues live under the accepting node's BullMQ prefix (cluster/node.ts), so a message's jobs are only ever
 * taken by workers that can read its spool file.
 */

export const DELIVERIES_QUEUE = 'deliveries';
export const SPOOL_QUEUE = 'spool';
export const DELIVER_JOB = 'deliver';
export const RELEASE_JOB = 'release';
/** Custom backoff strategy name (capped exponential with jitter, see cappedExponentialBackoff). */
export const BACKOFF_TYPE = 'mailroom-capped-exponential';

/** A receipt rule as it was when the mail arrived (the recipients are per message). */
export interface DeliveryRule {
  name: string;
  scanEnabled: boolean;
  s3Action: S3Action;
}

export interface DeliveryMessage {
  /** Byte offset of the message's entry in the spool file (in its plaintext, for a sealed file). */
  at: number;
  /** The entry's length in bytes, when known (one exact read instead of a 64 KiB head). */
  length?: number;
  /**
   * The message's envelope, for operators reading the job; the delivery stores from its spool record. For a sealed
   * spool file (spool encryption) only its message id: addresses and the client stay sealed on disk, out of Redis.
   */
  envelope: MessageEnvelope | Pick<MessageEnvelope, 'messageId'>;
  /** RCPT TO addresses this rule matched, in SMTP order; empty for a sealed spool file (as `envelope`). */
  recipients: string[];
}

export interface DeliveryJobData {
  v: 2;
  /** Spool file name, relative to the spool directory's messages/. */
  spoolFile: string;
  rule: DeliveryRule;
  messages: DeliveryMessage[];
  /** Message ids stored and notified by an earlier attempt: a retry skips them. */
  done?: string[];
  /** Message ids stored by an earlier attempt whose notification failed: a retry only publishes. */
  stored?: string[];
  /**
   * This job is its spool file's only job (every message in the file matched this one rule): once all are done it
   * deletes the file itself, as a release parent would.
   */
  release?: true;
}

/** The job of the previous release: one message, one rule. Still read, so an upgrade leaves no job behind. */
export interface DeliveryJobDataV1 {
  v: 1;
  spoolFile: string;
  spoolAt?: number;
  envelope: MessageEnvelope;
  rule: SpooledRule;
  stored?: boolean;
}

export function deliveryBatch(data: DeliveryJobData | DeliveryJobDataV1): DeliveryJobData {
  if (data.v === 2) return data;
  const { recipients, ...rule } = data.rule;
  const id = data.envelope.messageId;
  return { v: 2, spoolFile: data.spoolFile, rule, messages: [{ at: data.spoolAt ?? 0, envelope: data.envelope, recipients }], ...(data.stored ? { stored: [id] } : {}) };
}

export interface ReleaseJobData {
  v: 1;
  spoolFile: string;
  /** The messages in the file, for the operator reading the job. */
  messageIds: string[];
}

/** A job named by its spool file's id (a flow's release, a lone delivery) rather than `<fileId>.<rule>`. */
export function isSpoolFileJobId(jobId: string): boolean {
  return isMessageId(jobId);
}

/** BullMQ job ids cannot contain ":" (its key separator); message ids and rule names never do. */
export function deliveryJobId(fileId: string, ruleName: string): string {
  return `${fileId}.${ruleName}`;
}

export interface JobPolicy {
  attempts: number;
  backoffBaseMs: number;
  keepCompleted: number;
}

export function deliveryJobOptions(jobId: string, policy: JobPolicy): JobsOptions {
  return {
    jobId,
    attempts: policy.attempts,
    backoff: { type: BACKOFF_TYPE, delay: policy.backoffBaseMs },
    removeOnComplete: { count: policy.keepCompleted },
    // Failed deliveries stay until an operator retries them (`mailroom queue retry`); their spool file stays too.
    removeOnFail: false,
  };
}

/**
 * The jobs of one spool file: a lone delivery job that also releases the file when one rule covers every message,
 * else a flow of its release and one delivery job per rule listing that rule's messages.
 */
export function spoolFileJobs(file: SpoolFile, policy: JobPolicy): FlowJob {
  const spoolFile = spoolFileName(file.id);
  // Grouped by the rule's definition as well as its name: messages of one file were accepted under one config, but
  // should two snapshots of a rule ever differ, each keeps its own.
  // Messages of one process share the config's rule objects, so the same snapshot is usually the same object: only
  // when it is not is the definition compared (one JSON encoding per distinct snapshot, not per message).
  const groups: Array<{ rule: DeliveryRule; action: object; key?: string; messages: DeliveryMessage[] }> = [];
  const keyOf = (g: { rule: DeliveryRule; key?: string }) => (g.key ??= JSON.stringify(g.rule));
  for (const { record, at, length } of file.entries) {
    for (const { recipients, ...rule } of record.rules) {
      const same = (g: (typeof groups)[number]) => g.rule.name === rule.name && (g.action === rule.s3Action ? g.rule.scanEnabled === rule.scanEnabled : keyOf(g) === JSON.stringify(rule));
      let g = groups.find(same);
      if (!g) groups.push((g = { rule, action: rule.s3Action, messages: [] }));
      g.messages.push({ at, ...(length !== undefined ? { length } : {}), ...(file.sealed ? { envelope: { messageId: record.envelope.messageId }, recipients: [] } : { envelope: record.envelope, recipients }) });
    }
  }
  if (groups.length === 1) {
    const { rule, messages } = groups[0]!;
    return { name: DELIVER_JOB, queueName: DELIVERIES_QUEUE, data: { v: 2, spoolFile, rule, messages, release: true } satisfies DeliveryJobData, opts: deliveryJobOptions(file.id, policy) };
  }
  const named = new Map<string, number>();
  return {
    name: RELEASE_JOB,
    queueName: SPOOL_QUEUE,
    data: { v: 1, spoolFile, messageIds: file.entries.map((e) => e.record.envelope.messageId) } satisfies ReleaseJobData,
    opts: { jobId: file.id, attempts: policy.attempts, backoff: { type: BACKOFF_TYPE, delay: policy.backoffBaseMs }, removeOnComplete: { count: policy.keepCompleted }, removeOnFail: false },
    children: groups.map(({ rule, messages }) => {
      const n = (named.get(rule.name) ?? 0) + 1;
      named.set(rule.name, n);
      return {
        name: DELIVER_JOB,
        queueName: DELIVERIES_QUEUE,
        data: { v: 2, spoolFile, rule, messages } satisfies DeliveryJobData,
        opts: deliveryJobOptions(deliveryJobId(file.id, n === 1 ? rule.name : `${rule.name}~${n}`), policy),
      };
    }),
  };
}

/** Retry delay before attempt n+1: base·2^(n−1), capped, ±20 % jitter so retries after an outage do not stampede. */
export function cappedExponentialBackoff(baseMs: number, maxMs: number): (attemptsMade: number) => number {
  return (attemptsMade) => Math.round(Math.min(baseMs * 2 ** Math.max(0, attemptsMade - 1), maxMs) * (0.8 + Math.random() * 0.4));
}
