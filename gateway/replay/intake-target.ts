import type { Readable } from 'node:stream';
import { objectKey } from '../../shared/ses/object-key.js';
import type { Intake, Refusal } from '../intake/intake.js';
import type { SpoolDirectory } from '../spool/directory.js';
import { SpoolFormatError, type SpooledRule } from '../spool/format.js';
import { SpoolMissingError, type SpoolReader } from '../spool/reader.js';
import type { BucketCheck } from './bucket-check.js';
import { objectTag, type Checkpoint } from './checkpoint.js';
import type { AcceptOutcome, RefusalKind, ReplayAcceptMessage, ReplayTarget, StoredBy } from './target.js';

/**
 * Replay into the gateway's durable path: each message goes through the Intake of replay's own accepting node (its
 * spool, its node's queues; see accept-node.ts), exactly as the SMTP front hands a message over, and from there the
 * same workers store and announce it.
 *
 * "Already there", per rule's object, in the order of cost:
 *   1. the checkpoint: objects earlier runs' accepts took (checkpoint.ts);
 *   2. the replay spool as it was when the run began: messages accepted and not yet delivered (their jobs, or spool
 *      recovery, deliver them);
 *   3. a HEAD of the key: what was delivered (and released from the spool) without its `accepted` line — an accept
 *      whose line a crash cut off — and, unless `checkBucket` is off, what a run through another spool stored.
 * The checkpoint's `accepting` line is on disk before each accept begins, so a crash between an accept and its
 * `accepted` line leaves the object "begun": it is then still in the spool (2: a spool file is released only once
 * every rule's object is stored and announced) or delivered (3). Either way a second run does not accept it again,
 * and no notification is published twice because of the replay. What is left: a spool file torn by a machine crash
 * that cannot be read at start (its whole entries are still delivered by their jobs, and replayed again:
 * at-least-once), a bucket that refuses HEAD (bucket-check.ts), and the delivery's own at-least-once (a worker stopped
 * between a publish and its job's end) — the gateway's, as for SMTP mail.
 */

export interface IntakeTargetOptions {
  intake: Intake;
  checkpoint: Checkpoint;
  /** Objects (objectTag) of the messages in the replay spool when the run began: spooledObjects(). */
  spooled: ReadonlySet<string>;
  bucket: BucketCheck;
  /**
   * HEAD every object the checkpoint and the spool do not know (true), or only those whose accept was begun and not
   * recorded (false: the replay spool is trusted to know what was replayed, `--no-bucket-check`).
   */
  checkBucket: boolean;
  /** The receiving region: a rule's bucket is there unless its action names another. */
  region: string;
  /** Waits while enough is accepted and not yet delivered (replay --deliver); resolves at once otherwise. */
  admit?: () => Promise<void>;
  /** Told of every accepted message. */
  onAccepted?: (message: ReplayAcceptMessage, dataLength: number) => void;
}

const objectOf = (rule: Pick<SpooledRule, 's3Action'>, messageId: string) => ({ bucket: rule.s3Action.bucketName, key: objectKey(rule.s3Action.objectKeyPrefix, messageId) });

/** The objects (objectTag) of every message in the spool, and the files that could not be read. */
export async function spooledObjects(directory: SpoolDirectory, reader: SpoolReader): Promise<{ objects: Set<string>; messages: number; unreadable: string[] }> {
  const objects = new Set<string>();
  const unreadable: string[] = [];
  let messages = 0;
  for (const id of await directory.list()) {
    let file;
    try {
      file = await reader.entries(id);
    } catch (err) {
      // Delivered and released meanwhile: its objects are in their buckets. Torn or empty: see above.
      if (err instanceof SpoolMissingError) continue;
      if (err instanceof SpoolFormatError) {
        unreadable.push(id);
        continue;
      }
      throw err;
    }
    for (const { record } of file.entries) {
      messages++;
      for (const rule of record.rules) {
        const o = objectOf(rule, record.envelope.messageId);
        objects.add(objectTag(o.bucket, o.key));
      }
    }
  }
  return { objects, messages, unreadable };
}

function refusalReason(r: Refusal): { kind: RefusalKind; reason: string } {
  switch (r.kind) {
    case 'too-big':
      return { kind: r.kind, reason: `its DATA is ${r.dataLength} bytes, over the limit of ${r.limitBytes} (maxMessageSize)` };
    case 'no-space':
      return { kind: r.kind, reason: "the replay spool's file system is full: free space there (or choose another --spool-dir), then run the same command again" };
    case 'no-rule':
      return { kind: r.kind, reason: 'no receipt rule takes it' };
    default:
      return { kind: r.kind, reason: r.reason };
  }
}

export class IntakeTarget implements ReplayTarget {
  constructor(private readonly o: IntakeTargetOptions) {}

  async alreadyStored(message: ReplayAcceptMessage): Promise<ReadonlyMap<string, StoredBy>> {
    const there = new Map<string, StoredBy>();
    await Promise.all(
      message.rules.map(async (rule) => {
        const { bucket, key } = objectOf(rule, message.messageId);
        const tag = objectTag(bucket, key);
        if (this.o.checkpoint.has(tag)) there.set(rule.name, 'checkpoint');
        else if (this.o.spooled.has(tag)) there.set(rule.name, 'spool');
        else if (this.o.checkBucket || this.o.checkpoint.wasBegun(tag)) {
          if ((await this.o.bucket.presence(bucket, rule.s3Action.bucketRegion ?? this.o.region, key)) === 'present') there.set(rule.name, 'bucket');
        }
      }),
    );
    return there;
  }

  async accept(message: ReplayAcceptMessage, body: Readable): Promise<AcceptOutcome> {
    await this.o.admit?.();
    const objects = message.rules.map((r) => ({ messageId: message.messageId, rule: r.name, ...objectOf(r, message.messageId) }));
    try {
      await this.o.checkpoint.begin(objects);
    } catch (err) {
      return { accepted: false, kind: 'unavailable', reason: `the checkpoint ${this.o.checkpoint.path} could not be written (${(err as Error).message})` };
    }
    const outcome = await this.o.intake.accept(
      {
        mailFrom: message.mailFrom,
        rules: message.rules,
        messageId: message.messageId,
        ...(message.receivedAt ? { receivedAt: message.receivedAt } : {}),
        ...(message.client ? { client: message.client } : {}),
      },
      body,
    );
    if (!outcome.accepted) return { accepted: false, ...refusalReason(outcome.refusal) };
    // Not awaited: the line goes out with the round's others; a crash before it leaves the object begun (see above).
    void this.o.checkpoint.record(objects).catch(() => undefined);
    this.o.onAccepted?.(message, outcome.dataLength);
    return outcome;
  }

  async close(): Promise<void> {
    await this.o.checkpoint.close();
  }
}
