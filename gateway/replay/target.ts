import type { Readable } from 'node:stream';
import type { SpooledRule } from '../spool/format.js';

/**
 * Where replay hands each message: the seam between the replay driver and the gateway's durable accept path.
 *
 * The types mirror the Intake's (gateway/intake/): `ReplayAcceptMessage` is its IntakeMessage with the recipients
 * spelled out, `AcceptOutcome` its outcome. The Intake's implementation is intake-target.ts; the dry run below is the
 * other one.
 *
 * Contract for an implementation:
 * - It reads `body` to its end before it answers `accepted: true`, and stores nothing when `body` fails instead of
 *   ending: replay's sources fail the stream (with a ReplayProblem) when they learn late that a message is bad — a
 *   GCM tag that does not verify at the end of an encrypted object, a file that changed since its id was derived,
 *   more bytes than the limit.
 * - `messageId` is chosen by replay (deterministic); a second accept of the same id for the same rule writes the same
 *   key again, never another one.
 */

export interface ReplayAcceptMessage {
  /** Stored form (A-label domain); "" for the null reverse-path. */
  mailFrom: string;
  /** Stored form, deduplicated: every recipient a rule took. */
  recipients: string[];
  /** The matched receipt rules' snapshots (RecipientRouter.rulesFor), or the one rule `--rule` names. */
  rules: SpooledRule[];
  messageId: string;
  /** The source's receipt time; absent with `--timestamp now` (the accept path then uses its own clock). */
  receivedAt?: Date;
  /**
   * The SMTP client the source recorded: only a stored SES or gateway object does (its Received field). Without it,
   * re-storing the object would drop the original client from the new header block. TLS is not recorded there
   * (SES writes `with SMTP` either way): false.
   */
  client?: { ip: string; hostname?: string; helo: string; tls: boolean };
  /** Where the message is in its source (for reports about it after the accept: a delivery that failed). */
  source?: string;
}

/** Why the accept path refused a message (the Intake's refusal kinds). */
export type RefusalKind = 'too-big' | 'no-space' | 'unavailable' | 'body-failed' | 'malformed' | 'no-rule';

export type AcceptOutcome =
  | { accepted: true; messageId: string; dataLength: number }
  | { accepted: false; kind: RefusalKind; reason: string };

/** How a rule's object is known to be there already: a checkpoint of earlier runs, the replay spool, the bucket. */
export type StoredBy = 'checkpoint' | 'spool' | 'bucket';

export interface ReplayTarget {
  accept(message: ReplayAcceptMessage, body: Readable): Promise<AcceptOutcome>;
  /**
   * The message's rules whose object is there already (rule name → how that is known), so that a second run, or a
   * run after a crash, stores nothing twice: a message every rule has is skipped, one that some rules have is handed
   * on for the others only. Absent: nothing is skipped.
   */
  alreadyStored?(message: ReplayAcceptMessage): Promise<ReadonlyMap<string, StoredBy>>;
  close(): Promise<void>;
}

/**
 * `--dry-run`: every message is read to its end — a tampered object or a changed file shows up as it would in a
 * real run — and nothing is stored.
 */
export function dryRunTarget(): ReplayTarget {
  return {
    async accept(message, body) {
      let dataLength = 0;
      for await (const chunk of body as AsyncIterable<Buffer>) dataLength += chunk.length;
      return { accepted: true, messageId: message.messageId, dataLength };
    },
    async close() {},
  };
}
