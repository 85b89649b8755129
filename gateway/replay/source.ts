import type { Readable } from 'node:stream';
import type { MailHeader } from '../../shared/notification/types.js';
import type { StoredHeaderBlock } from '../../shared/ses/header-block-read.js';

/**
 * What every replay source yields: the messages it holds, each with where it is, and the problems it meets, each
 * with where and why. A source reads only as far as the next message; what a message needs before its accept
 * (its size, content digest, envelope hints) is read by `prepare`, which the driver runs in its concurrent slots.
 */

/** Why a message (or a whole source) cannot be replayed; the summary counts each kind. */
export type ProblemKind =
  /** The source's bytes are not a message replay can store: not mail, truncated, over the size limit, not SES's format, tampered. */
  | 'malformed'
  /** No receipt rule takes any of its recipients (or none could be found). */
  | 'unmatched'
  /** Could not be read or stored: a missing source, an S3 or disk error, the accept path refusing. */
  | 'failed';

export class ReplayProblem extends Error {
  constructor(
    readonly kind: ProblemKind,
    /** Where: `file:line (byte N)`, a file, `s3://bucket/key`, `-` for standard input. */
    readonly location: string,
    /** Why, in words that say what to do where there is something to do. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${location} ${reason}`, options);
    this.name = 'ReplayProblem';
  }
}

/** Something the operator should know about a source that is no problem with any one message. */
export class SourceNote {
  constructor(
    readonly location: string,
    readonly text: string,
  ) {}
}

/** A time the source gives for a message, and where it comes from (for `--dry-run` and the docs). */
export interface SourceTime {
  at: Date;
  from: 'mbox From line' | 'Date header' | 'file mtime' | 'Received (SES header block)' | 'object LastModified';
}

/** What the source knows about the envelope besides the message's own header fields. */
export interface SourceHints {
  /** The mbox `From ` line's sender, as written (`MAILER-DAEMON` for a null sender). */
  fromLineSender?: string;
  /** An SES (or gateway) object's header block, read off the top of the stored message. */
  storedBlock?: StoredHeaderBlock;
}

export interface PreparedMessage {
  location: string;
  /** Stable across runs: the source's own name for this message (file path and place, object key). */
  identity: string;
  /** The content it was derived for: `sha256:<hex>` of the DATA, or an object's `etag:<ETag>`. */
  contentTag: string;
  /** DATA bytes, when known before the body is read. */
  dataLength?: number;
  /** The DATA's own header fields (as far as HEADER_READ_LIMIT), for the envelope and the Date. */
  headers: MailHeader[];
  hints: SourceHints;
  /** Candidate receipt times, best first; `--timestamp source` takes the first plausible one. */
  times: SourceTime[];
  /**
   * The DATA, CRLF line ends, readable once. If the source turns out bad while it is read (a tag that does not verify,
   * a file changed since it was prepared, over the size limit), the stream is destroyed with a ReplayProblem before it
   * ends: whoever stores it must store nothing.
   */
  body(): Readable;
  /** Gives up the body unread (the message is not replayed): closes files and connections. */
  discard(): void;
}

export interface SourceItem {
  location: string;
  /** Throws ReplayProblem when the message cannot be replayed. */
  prepare(): Promise<PreparedMessage>;
}

/** A source is read once, in order; problems are yielded where they are met and do not stop it. */
export type Source = AsyncIterable<SourceItem | ReplayProblem | SourceNote>;
