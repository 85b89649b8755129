import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { HEADER_READ_LIMIT, headerBlockIn, parseHeaderBlock } from '../../shared/notification/headers.js';
import type { MailHeader } from '../../shared/notification/types.js';
import { ReplayProblem } from './source.js';

/**
 * What replay learns from one pass over a message's DATA before it hands the message on: its length, its SHA-256
 * (the content half of the message id) and its header section (the envelope hints), with the message itself never
 * held: only the header section is kept, as far as HEADER_READ_LIMIT.
 */
export class DataMeter {
  length = 0;
  private readonly hash = createHash('sha256');
  private head = Buffer.alloc(0);
  private block: Buffer | undefined;

  push(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.hash.update(bytes);
    this.length += bytes.length;
    if (this.block) return;
    const scanned = this.head.length;
    this.head = Buffer.concat([this.head, bytes.subarray(0, HEADER_READ_LIMIT - scanned + 4)]);
    const found = headerBlockIn(this.head, HEADER_READ_LIMIT, scanned);
    if (found) this.block = Buffer.from(found.block);
  }

  finish(): MeteredData {
    const head = this.block ?? this.head; // no blank line: the message is all header
    return { length: this.length, digest: this.hash.digest('hex'), head, headers: parseHeaderBlock(head).allHeaders };
  }
}

export interface MeteredData {
  length: number;
  /** SHA-256 of the DATA, hex. */
  digest: string;
  /** The header section, without its blank line. */
  head: Buffer;
  headers: MailHeader[];
}

/**
 * Why bytes are not a mail message, or undefined. Deliberately loose — mail in archives is often sloppy — but a
 * file in a Maildir that is a picture, an index or a note is caught: a message starts with a header field.
 */
export function notMailReason(data: MeteredData): string | undefined {
  if (data.length === 0) return 'is empty: no header fields, no body';
  const firstLine = data.head.subarray(0, Math.max(0, data.head.indexOf(0x0a))).toString('latin1');
  if (data.head.length === 0 || !/^[\x21-\x39\x3b-\x7e]+[ \t]*:/.test(firstLine)) {
    return 'is not a mail message: its first line is not a header field ("Name: value")';
  }
  if (data.head.includes(0)) return 'is not a mail message: its header section holds a NUL byte';
  return undefined;
}

/**
 * The second read of a message's DATA, checked against the first: the same SHA-256 and length, so what is stored is
 * exactly what the message id was derived from. A file changed in between fails the stream at its end.
 */
export function verifyingStream(expected: { digest: string; length: number }, location: string): Transform {
  const hash = createHash('sha256');
  let length = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      hash.update(chunk);
      length += chunk.length;
      if (length > expected.length) return done(changed(location));
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      if (length !== expected.length || hash.digest('hex') !== expected.digest) return done(changed(location));
      done();
    },
  });
}

/** A message over the config's maxMessageSize: SMTP would have refused it (552), so replay does not store it either. */
export function tooBig(location: string, bytes: number, max: number, atLeast = false): ReplayProblem {
  return new ReplayProblem(
    'malformed',
    location,
    `is ${atLeast ? 'at least ' : ''}${bytes} bytes, over the limit of ${max} bytes (maxMessageSize; SES takes at most 40 MB): not replayed`,
  );
}

function changed(location: string): ReplayProblem {
  return new ReplayProblem('failed', location, 'changed while it was being replayed (its bytes differ from the first read): nothing was stored from it; run the replay again once the source is still');
}
