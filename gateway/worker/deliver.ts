import type { Readable } from 'node:stream';
import { UnrecoverableError } from 'bullmq';
import { NotificationTooLargeError, type ReceivedNotification } from '../../shared/notification/index.js';
import { continuesHeaderBlock, HeaderInjectionError } from '../../shared/ses/header-block.js';
import { objectKey } from '../../shared/ses/object-key.js';
import type { UploadTuning } from '../store/put-message.js';
import type { DeliveryJobData, DeliveryMessage, DeliveryRule } from '../queue/jobs.js';
import { SpoolFormatError, type SpooledRule, type SpoolRecord } from '../spool/format.js';
import { SpoolMissingError, type OpenSpoolFile, type SpoolReader } from '../spool/reader.js';
import type { DeliveryMetrics } from '../observability/metrics.js';
import type { AwsClients } from './aws.js';
import { MessageCopy } from './message-copy.js';
import { isPermanentSnsRefusal, publishNotifications, type PublishOutcome } from './notify.js';
import type { Slots } from './slots.js';
import type { Verdicts } from '../verdicts/verdicts.js';

export interface DeliverDeps {
  spool: SpoolReader;
  aws: AwsClients;
  tuning: UploadTuning;
  /** Deliveries in flight across every job of the worker. */
  slots: Slots;
  metrics?: DeliveryMetrics;
  /** The message verdicts (SPF, DKIM, DMARC, spam, virus), when any are configured; else GRAY as SES's "not checked". */
  verdicts?: Verdicts;
  /**
   * Whether this job was started before (BullMQ's attemptsStarted > 1). Only then can a lone job's missing spool file
   * mean that an earlier run released it; on a first run it means the file never reached the disk (see deliver()).
   */
  ranBefore: boolean;
}

/** One message's copy, stored (and notified, when the rule has a topic). */
export interface MessageDelivery {
  messageId: string;
  key: string;
  storedBytes: number;
  multipart: boolean;
  snsMessageId?: string;
  /** From the start of this message's delivery to its notification. */
  ms: number;
}

export interface MessageFailure {
  messageId: string;
  error: Error;
  /**
   * No retry can fix it: the spool entry is gone or damaged, the envelope or DATA cannot go behind the header
   * block, or SNS refused the notification as written.
   */
  unrecoverable: boolean;
  /** Set when the message is stored (under this key) and only its notification failed. */
  storedKey?: string;
}

export interface DeliveryOutcome {
  bucket: string;
  rule: string;
  encrypted: boolean;
  delivered: MessageDelivery[];
  failed: MessageFailure[];
  /** What the job's data should say now, for a retry (see DeliveryJobData). */
  done: string[];
  stored: string[];
  /**
   * A lone job (`release`) whose spool file is gone on a second or later run: only that job deletes it, and only
   * once every message is done, so an earlier run of it (stopped before BullMQ recorded its end) delivered these.
   * Counted done, not failed.
   */
  foundReleased: string[];
}

/** What the worker returns for a completed job. */
export interface DeliveryResult {
  bucket: string;
  rule: string;
  encrypted: boolean;
  delivered: MessageDelivery[];
}

async function firstBytes(stream: Readable): Promise<Buffer> {
  for await (const chunk of stream) return chunk as Buffer;
  return Buffer.alloc(0);
}

/**
 * This job's rule as the message's spool record has it, with the recipients it matched. The record is what the
 * delivery stores from — the envelope and recipients too: a job for a sealed spool file carries only message ids
 * (queue/jobs.ts), so addresses stay out of Redis.
 */
function spooledRuleOf(rule: DeliveryRule, record: SpoolRecord): SpooledRule {
  const named = record.rules.filter((r) => r.name === rule.name);
  const same = named.length === 1 ? named[0] : named.find(({ recipients: _, ...r }) => JSON.stringify(r) === JSON.stringify(rule));
  if (!same) throw new SpoolFormatError(`message ${record.envelope.messageId}'s spool record does not list rule "${rule.name}"`);
  return { ...rule, recipients: same.recipients };
}

const unrecoverable = (err: unknown) =>
  err instanceof SpoolMissingError || err instanceof SpoolFormatError || err instanceof HeaderInjectionError || err instanceof NotificationTooLargeError || (err instanceof Error && isPermanentSnsRefusal(err));

/**
 * One rule's S3 action for the messages of one delivery job: each is stored (header block + DATA, encrypted when the
 * rule has a key) at its SES key, then the stored ones are announced to the rule's topic (PublishBatch, up to ten a
 * call). Idempotent per message: a re-run writes the same key with the same plaintext (with KMS the ciphertext
 * differs — a fresh data key and IV per write, as SES itself would) and publishes again (at-least-once).
 *
 * Never throws for one message's failure: the outcome lists what was delivered and what failed, and the caller
 * decides about retries. Errors from S3, KMS and SNS are kept as they are; what no retry can fix is marked so.
 */
export async function deliver(data: DeliveryJobData, deps: DeliverDeps, abortSignal?: AbortSignal): Promise<DeliveryOutcome> {
  const { rule } = data;
  const action = rule.s3Action;
  const done = new Set(data.done);
  const stored = new Set(data.stored);
  const outcome: DeliveryOutcome = { bucket: action.bucketName, rule: rule.name, encrypted: !!action.kmsKeyArn, delivered: [], failed: [], done: [], stored: [], foundReleased: [] };
  const todo = data.messages.filter((m) => !done.has(m.envelope.messageId));
  const fail = (m: DeliveryMessage, err: unknown) => {
    const id = m.envelope.messageId;
    outcome.failed.push({ messageId: id, error: err as Error, unrecoverable: unrecoverable(err), ...(stored.has(id) ? { storedKey: objectKey(action.objectKeyPrefix, id) } : {}) });
  };

  let reader: OpenSpoolFile | undefined;
  try {
    // A retry with nothing left to deliver (a lone job whose release failed) needs no file.
    if (todo.length > 0) reader = await deps.spool.open(deps.spool.directory.fileIdOf(data.spoolFile));
  } catch (err) {
    if (data.release && err instanceof SpoolMissingError && deps.ranBefore) {
      for (const m of todo) done.add(m.envelope.messageId);
      outcome.foundReleased = todo.map((m) => m.envelope.messageId);
    } else if (data.release && err instanceof SpoolMissingError) {
      // Jobs are added while their batch file is still being flushed (intake/intake.ts), so a machine that stopped in
      // between can leave a job whose file never reached the disk. Nobody was answered 250 for it.
      const why = new SpoolMissingError(
        `${err.message}, and no earlier run of this job released it: the machine stopped before the file reached the disk (its client was never answered 250 and sends the message again), or the file was deleted`,
      );
      for (const m of todo) fail(m, why);
    } else for (const m of todo) fail(m, err);
  }
  // Built as each message is stored, so its DATA need not be held until the batch publishes.
  const toNotify: Array<{ m: DeliveryMessage; region: string; notification: ReceivedNotification; key: string; started: number; storedBytes: number; multipart: boolean }> = [];
  const topicArn = action.topicArn;
  if (reader) {
    const r = reader;
    try {
      await Promise.all(
        todo.map((m) =>
          deps.slots.run(async () => {
            const id = m.envelope.messageId;
            const started = Date.now();
            try {
              const msg = await r.entry(m.at, id, m.length);
              const { envelope } = msg.record;
              const spooledRule = spooledRuleOf(rule, msg.record);
              // Behind the SMTP front's refusal, for files spooled before it: DATA never folds into the gateway's block.
              if (continuesHeaderBlock(msg.data ?? (await firstBytes(deps.spool.dataStream(msg, 1))))) {
                throw new HeaderInjectionError('DATA', 'starts with a space or tab, which would continue the header block before it');
              }
              // Once per message, for every rule and retry, before anything is stored (gateway/verdicts).
              const verdicts = deps.verdicts
                ? await deps.verdicts.of({
                    fileId: deps.spool.directory.fileIdOf(data.spoolFile),
                    envelope,
                    rules: msg.record.rules,
                    data: msg.data ?? { size: msg.dataLength, open: () => deps.spool.dataStream(msg) },
                  })
                : undefined;
              const copy = new MessageCopy(envelope, spooledRule, msg.data ?? { length: msg.dataLength, open: (limit) => deps.spool.dataStream(msg, limit) }, verdicts);
              const key = copy.key;
              let storedBytes = 0;
              let multipart = false;
              if (!stored.has(id)) {
                const t = process.hrtime.bigint();
                const put = await copy.store(deps.aws, deps.tuning, abortSignal);
                storedBytes = put.storedBytes;
                multipart = put.multipart;
                deps.metrics?.uploaded(put.storedBytes, Number(process.hrtime.bigint() - t) / 1e9);
                stored.add(id);
              }
              if (topicArn) {
                const notification = await copy.notification(topicArn);
                toNotify.push({ m, region: envelope.region, notification, key, started, storedBytes, multipart });
              } else {
                done.add(id);
                outcome.delivered.push({ messageId: id, key, storedBytes, multipart, ms: Date.now() - started });
              }
            } catch (err) {
              fail(m, err);
            }
          }),
        ),
      );

      if (topicArn && toNotify.length > 0) {
        let published: Map<string, PublishOutcome>;
        try {
          published = await publishNotifications(deps.aws.sns(topicArn, toNotify[0]!.region), topicArn, toNotify.map((n) => ({ key: n.m.envelope.messageId, notification: n.notification })), abortSignal);
        } catch (err) {
          // publishNotifications reports per entry; anything thrown around it fails only the publishes.
          published = new Map(toNotify.map((n) => [n.m.envelope.messageId, { ok: false, error: err as Error }]));
        }
        for (const n of toNotify) {
          const id = n.m.envelope.messageId;
          const p = published.get(id) ?? { ok: false, error: new Error('no publish outcome for this message') };
          if (!p.ok) {
            fail(n.m, p.error);
            continue;
          }
          done.add(id);
          outcome.delivered.push({ messageId: id, key: n.key, storedBytes: n.storedBytes, multipart: n.multipart, ...(p.snsMessageId ? { snsMessageId: p.snsMessageId } : {}), ms: Date.now() - n.started });
        }
      }
    } finally {
      await r.close().catch(() => undefined);
    }
  }
  outcome.done = [...done];
  outcome.stored = [...stored].filter((id) => !done.has(id));
  return outcome;
}

/** The error a job with failed messages ends with: retried unless every failure is beyond repair. */
export function jobError(outcome: DeliveryOutcome, attempted: number): Error {
  const [first] = outcome.failed;
  const text = `${outcome.failed.length} of ${attempted} message${attempted === 1 ? '' : 's'} not delivered; first: ${first!.messageId}: ${first!.error.name}: ${first!.error.message}`;
  return outcome.failed.every((f) => f.unrecoverable) ? new UnrecoverableError(text) : new Error(text);
}
