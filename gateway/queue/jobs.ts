import type { FlowJob, JobsOptions } from 'bullmq';
import { spoolFileName, type MessageEnvelope, type SpoolFile, type SpooledRule } from '../spool/format.js';

/**
 * The job contract between the accept path and the workers. Per spool file (one message, or a batch of small ones
 * that reached the disk together, spool/writer.ts), one BullMQ flow:
 *
 *   spool / "release"  (job id = the file id)                     parent: deletes the spool file
 *     └─ deliveries / "deliver"  (job id = messageId.ruleName)    one per message and matching enabled rule
 *
 * BullMQ runs a parent only after every child completed, so "delete the spool file when every rule of every
 * message in it is done" is the queue's own bookkeeping, not ours; a delivery that keeps failing leaves its parent
 * waiting and the file in place. Job ids are deterministic, so enqueuing a file twice (recovery after a crash
 * between fsync and enqueue) adds nothing. Jobs carry the envelope and where the message is in its spool file,
 * never the body.
 * Both queues live under the accepting node's BullMQ prefix (cluster/node.ts), so a message's jobs are only ever
 * taken by workers that can read its spool file.
 */

export const DELIVERIES_QUEUE = 'deliveries';
export const SPOOL_QUEUE = 'spool';
export const DELIVER_JOB = 'deliver';
export const RELEASE_JOB = 'release';
/** Custom backoff strategy name (capped exponential with jitter, see cappedExponentialBackoff). */
export const BACKOFF_TYPE = 'mailroom-capped-exponential';

export interface DeliveryJobData {
  v: 1;
  /** Spool file name, relative to the spool directory's messages/. */
  spoolFile: string;
  /** Byte offset of the message's entry in that file (absent: 0). */
  spoolAt?: number;
  envelope: MessageEnvelope;
  rule: SpooledRule;
  /** Set by a run that stored the object but failed to notify, so the retry only publishes. */
  stored?: boolean;
}

export interface ReleaseJobData {
  v: 1;
  spoolFile: string;
  /** The messages in the file, for the operator reading the job. */
  messageIds: string[];
}

/** BullMQ job ids cannot contain ":" (its key separator); message ids and rule names never do. */
export function deliveryJobId(messageId: string, ruleName: string): string {
  return `${messageId}.${ruleName}`;
}

export interface JobPolicy {
  attempts: number;
  backoffBaseMs: number;
  keepCompleted: number;
}

export function deliveryJobOptions(messageId: string, ruleName: string, policy: JobPolicy): JobsOptions {
  return {
    jobId: deliveryJobId(messageId, ruleName),
    attempts: policy.attempts,
    backoff: { type: BACKOFF_TYPE, delay: policy.backoffBaseMs },
    removeOnComplete: { count: policy.keepCompleted },
    // Failed deliveries stay until an operator retries them (`mailroom queue retry`); their spool file stays too.
    removeOnFail: false,
  };
}

/** The flow for one spool file. */
export function spoolFileFlow(file: SpoolFile, policy: JobPolicy): FlowJob {
  const spoolFile = spoolFileName(file.id);
  return {
    name: RELEASE_JOB,
    queueName: SPOOL_QUEUE,
    data: { v: 1, spoolFile, messageIds: file.entries.map((e) => e.record.envelope.messageId) } satisfies ReleaseJobData,
    opts: { jobId: file.id, attempts: policy.attempts, backoff: { type: BACKOFF_TYPE, delay: policy.backoffBaseMs }, removeOnComplete: { count: policy.keepCompleted }, removeOnFail: false },
    children: file.entries.flatMap(({ record: { envelope, rules }, at }) =>
      rules.map((rule) => ({
        name: DELIVER_JOB,
        queueName: DELIVERIES_QUEUE,
        data: { v: 1, spoolFile, ...(at > 0 ? { spoolAt: at } : {}), envelope, rule } satisfies DeliveryJobData,
        opts: deliveryJobOptions(envelope.messageId, rule.name, policy),
      })),
    ),
  };
}

/** Retry delay before attempt n+1: base·2^(n−1), capped, ±20 % jitter so retries after an outage do not stampede. */
export function cappedExponentialBackoff(baseMs: number, maxMs: number): (attemptsMade: number) => number {
  return (attemptsMade) => Math.round(Math.min(baseMs * 2 ** Math.max(0, attemptsMade - 1), maxMs) * (0.8 + Math.random() * 0.4));
}
