import type { SNSClient } from '@aws-sdk/client-sns';
import { publishBatch as publishBatchRequest, type BatchEntry } from '../aws/sns-publish-batch.js';
import { buildReceivedNotification, headerBlockOf, readHeaderBlock, serializeNotification, SNS_SUBJECT, HEADER_READ_LIMIT, type ReceivedNotification } from '../../shared/notification/index.js';
import type { Readable } from 'node:stream';
import type { MessageEnvelope, SpooledRule } from '../spool/format.js';
import { storedMessageStream } from './stored-message.js';
import { notificationVerdicts, type MessageVerdicts } from '../verdicts/verdicts.js';

/**
 * The notification for one rule's copy. Its header list comes from the head of the stored message (header block +
 * DATA), read through the shared parser with its read limit, so a 40 MB message costs at most that limit. `source`
 * is the stored message itself when it is in memory (a batch-file entry: no stream to build and tear down per
 * message), else a stream of its DATA's head.
 *
 * Timestamps are the receipt time, so a re-run publishes the same document apart from processingTimeMillis.
 * Verdicts: the message's (gateway/verdicts, kept for every rule and retry), else spam/virus GRAY when the rule scans
 * and DISABLED when it does not (the value consumers know from SES's non-scanning rules, docs/ses-format.md#verdicts),
 * SPF/DKIM/DMARC GRAY — not computed, so not claimed.
 */
export async function notificationFor(
  envelope: MessageEnvelope,
  rule: SpooledRule & { s3Action: { topicArn: string } },
  headerBlock: Buffer,
  source: Readable | { stored: Buffer },
  now: number = Date.now(),
  verdicts?: MessageVerdicts,
): Promise<ReceivedNotification> {
  const head = 'stored' in source ? headerBlockOf(source.stored, HEADER_READ_LIMIT) : await readHeaderBlock(storedMessageStream(headerBlock, source), HEADER_READ_LIMIT);
  const received = new Date(envelope.receivedAt);
  const v = notificationVerdicts(verdicts, rule);
  return buildReceivedNotification({
    timestamp: received,
    processingTimeMillis: Math.max(0, now - received.getTime()),
    source: envelope.mailFrom,
    messageId: envelope.messageId,
    recipients: rule.recipients,
    headerBlock: head.block,
    verdicts: v.verdicts,
    ...(v.dmarcPolicy ? { dmarcPolicy: v.dmarcPolicy } : {}),
    action: { topicArn: rule.s3Action.topicArn, bucketName: rule.s3Action.bucketName, objectKeyPrefix: rule.s3Action.objectKeyPrefix },
  });
}

export interface NotificationToPublish {
  key: string;
  notification: ReceivedNotification;
}

export type PublishOutcome = { ok: true; snsMessageId?: string } | { ok: false; error: Error };

/** One entry of a PublishBatch call that SNS listed as Failed: named by its Code. */
export class SnsEntryError extends Error {
  constructor(
    code: string,
    message: string,
    readonly senderFault: boolean,
  ) {
    super(message);
    this.name = code;
  }
}

/** SNS's codes (and the SDK's names for them) for a request it refuses as written: the same request always fails. */
const REFUSES_THE_REQUEST = new Set([
  'InvalidParameter',
  'InvalidParameterException',
  'InvalidParameterValue',
  'InvalidParameterValueException',
  'ParameterValueInvalid',
  'ValidationException',
  'BatchRequestTooLong',
  'BatchRequestTooLongException',
]);

/**
 * Whether SNS refused the notification itself, so that publishing it again can never succeed (a message too long, a
 * parameter it rejects — the job's rule carries its topic ARN, so a config fix does not change the job either).
 * Errors an operator can fix while the job waits stay retryable: missing permission (AuthorizationError), a topic
 * not there yet (NotFound), a KMS key of an encrypted topic, throttling and server errors.
 */
export function isPermanentSnsRefusal(err: Error): boolean {
  if (!REFUSES_THE_REQUEST.has(err.name)) return false;
  if (err instanceof SnsEntryError) return err.senderFault;
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status !== undefined && status >= 400 && status < 500;
}

/** SNS PublishBatch limits: entries per call, and bytes of Message + Subject summed over the call. */
const BATCH_MAX_ENTRIES = 10;
const BATCH_MAX_BYTES = 262_144;

/**
 * Publishes each notification to `topicArn` with PublishBatch: at most 10 entries and 262,144 bytes of
 * Message+Subject per call. Resolves with one outcome per key (never rejects for a per-entry or per-call failure: a
 * failed call fails every entry it carried; an entry listed in Failed gets an Error whose name is the entry's Code
 * and whose message includes its Message and SenderFault). Entry Ids are batch-local ("n0".."n9"). Order of calls:
 * sequential batches (bounded, predictable).
 */
export async function publishNotifications(sns: SNSClient, topicArn: string, items: NotificationToPublish[], abortSignal?: AbortSignal): Promise<Map<string, PublishOutcome>> {
  const outcomes = new Map<string, PublishOutcome>();
  let batch: Array<{ key: string; entry: BatchEntry }> = [];
  let batchBytes = 0;
  const subjectBytes = Buffer.byteLength(SNS_SUBJECT);
  // Serialized per batch, not all up front: at most one call's worth of messages is held at once.
  for (const { key, notification } of items) {
    const Message = serializeNotification(notification);
    const bytes = Buffer.byteLength(Message) + subjectBytes;
    if (batch.length > 0 && (batch.length === BATCH_MAX_ENTRIES || batchBytes + bytes > BATCH_MAX_BYTES)) {
      await publishBatch(sns, topicArn, batch, outcomes, abortSignal);
      batch = [];
      batchBytes = 0;
    }
    // An oversized entry still goes (alone): SNS reports the error for it, as Publish would.
    batch.push({ key, entry: { Id: `n${batch.length}`, Subject: SNS_SUBJECT, Message } });
    batchBytes += bytes;
  }
  if (batch.length > 0) await publishBatch(sns, topicArn, batch, outcomes, abortSignal);
  return outcomes;
}

async function publishBatch(
  sns: SNSClient,
  topicArn: string,
  batch: Array<{ key: string; entry: BatchEntry }>,
  outcomes: Map<string, PublishOutcome>,
  abortSignal: AbortSignal | undefined,
): Promise<void> {
  let out;
  try {
    out = await publishBatchRequest(sns, { topicArn, entries: batch.map((b) => b.entry) }, abortSignal ? { abortSignal } : {});
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    // SNS counts a batch's bytes its own way: one that it finds too long goes again, an entry per call.
    if (batch.length > 1 && /^BatchRequestTooLong/.test(error.name)) {
      for (const one of batch) await publishBatch(sns, topicArn, [{ key: one.key, entry: { ...one.entry, Id: 'n0' } }], outcomes, abortSignal);
      return;
    }
    for (const { key } of batch) outcomes.set(key, { ok: false, error });
    return;
  }
  const results = new Map<string, PublishOutcome>();
  for (const s of out.Successful) results.set(s.Id, { ok: true, ...(s.MessageId !== undefined ? { snsMessageId: s.MessageId } : {}) });
  for (const f of out.Failed) {
    const error = new SnsEntryError(f.Code || 'PublishBatchEntryFailed', `SNS PublishBatch entry failed: ${f.Message ?? '(no message)'} (SenderFault: ${String(f.SenderFault)})`, f.SenderFault === true);
    results.set(f.Id, { ok: false, error });
  }
  for (const { key, entry } of batch) {
    outcomes.set(key, results.get(entry.Id) ?? { ok: false, error: new Error('SNS PublishBatch returned no result for entry') });
  }
}
