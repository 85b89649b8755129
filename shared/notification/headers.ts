import { createReadStream } from 'node:fs';
import { SES_LIMITS } from '../ses/limits.js';
import type { MailHeader } from './types.js';

/**
 * The stored message's header block (the SES block plus the sender's headers, up to the blank line), parsed into the
 * notification's `mail.headers` list (docs/ses-format.md#headers-and-truncation).
 */

/**
 * How much of a message is read to find its header block: far past the 10 KB notification limit and Postfix's
 * 100 KB default `header_size_limit`, so only a pathological block is cut, and never the whole 40 MB message.
 * A cut block still yields its first fields (and `headersTruncated`), but commonHeaders cannot see the fields
 * beyond the cut.
 */
export const HEADER_READ_LIMIT = 256 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;

/**
 * Length in bytes of the header block at the start of `head`, through the line break of its last field and
 * excluding the blank line; undefined when `head` does not contain the blank line yet. Bare LF is accepted as
 * a line break too: SES stores DATA verbatim, and sloppy senders exist.
 */
export function headerBlockLength(head: Uint8Array, from = 0): number | undefined {
  if (head[0] === LF || (head[0] === CR && head[1] === LF)) return 0;
  for (let i = head.indexOf(LF, Math.max(0, from)); i >= 0; i = head.indexOf(LF, i + 1)) {
    const next = head[i + 1];
    if (next === LF || (next === CR && head[i + 2] === LF)) return i + 1;
  }
  return undefined;
}

export interface HeaderBlock {
  block: Buffer;
  /** False when the read limit cut the block before its blank line (or end of message). */
  complete: boolean;
}

/**
 * The header block in `head`, the first bytes of a message: cut at its blank line, or at `limit` (at a line end);
 * undefined when `head` is shorter than `limit` and has no blank line yet (more bytes are needed, unless the message
 * ends there: then it is all header). `scanned` bytes were already searched (the blank line may straddle chunks).
 */
export function headerBlockIn(head: Buffer, limit = HEADER_READ_LIMIT, scanned = 0): HeaderBlock | undefined {
  const end = headerBlockLength(head, scanned - 2);
  if (end !== undefined && end <= limit) return { block: head.subarray(0, end), complete: true };
  if (head.length >= limit) return { block: cutAtLine(head.subarray(0, limit)), complete: false };
  return undefined;
}

/** The header block of a whole message held in memory (a spooled small message): no stream, no copy beyond `limit`. */
export function headerBlockOf(message: Buffer, limit = HEADER_READ_LIMIT): HeaderBlock {
  return headerBlockIn(message, limit) ?? { block: message, complete: true };
}

/**
 * Reads a message's header block from a stream of its bytes (a file, an S3 body…), stopping at the blank line or
 * after `limit` bytes; the rest of the stream is not consumed. A message without a blank line is all header.
 */
export async function readHeaderBlock(chunks: AsyncIterable<Uint8Array>, limit = HEADER_READ_LIMIT): Promise<HeaderBlock> {
  let head = Buffer.alloc(0);
  for await (const chunk of chunks) {
    const scanned = head.length;
    head = Buffer.concat([head, chunk]);
    const found = headerBlockIn(head, limit, scanned);
    if (found) return found;
  }
  return { block: head, complete: true };
}

/** Reads at most `limit` bytes of the file at `path` to get its header block. */
export async function readHeaderBlockFromFile(path: string, limit = HEADER_READ_LIMIT): Promise<HeaderBlock> {
  const stream = createReadStream(path, { start: 0, end: limit - 1 });
  try {
    return await readHeaderBlock(stream, limit);
  } finally {
    stream.destroy();
  }
}

/** Drops a partial last line, so a cut never yields half a field. */
function cutAtLine(head: Buffer): Buffer {
  const lastLf = head.lastIndexOf(LF);
  return lastLf < 0 ? head.subarray(0, 0) : head.subarray(0, lastLf + 1);
}

/**
 * Unfolds a raw field value: each line break and the whitespace run after it become one space; spaces that were
 * on one line stay (`"Fri,  4 Oct 2024"`, OBS). Leading whitespace after the colon is dropped, trailing kept.
 */
export function unfoldHeaderValue(raw: string): string {
  return raw.replace(/\r?\n[ \t]*/g, ' ').replace(/^[ \t]+/, '');
}

export interface ParsedHeaderBlock {
  /** The notification's `mail.headers`: the fields that fit the limit, in order, duplicates kept. */
  headers: MailHeader[];
  headersTruncated: boolean;
  /** Every field of the block, for commonHeaders (which SES still sends when the list is cut). */
  allHeaders: MailHeader[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Raw UTF-8 is what SES was seen passing through (2024 sample); a field that is not valid UTF-8 (8-bit latin1
 * from old mailers) is read as latin1 rather than turned into U+FFFD. Both are choices (docs/ses-format.md#notification-details).
 */
function decodeField(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return Buffer.from(bytes).toString('latin1');
  }
}

/**
 * Parses a header block (anything after its blank line is ignored) into fields and applies the 10 KB limit.
 *
 * Truncation accounting, a choice for an UNCONFIRMED point (docs/ses-format.md#notification-details): a field costs its raw bytes including every line
 * break of its folded lines; fields are kept while the running total stays ≤ `limitBytes`, and the first field
 * that would pass it is cut together with everything after it. So `headersTruncated` is exactly "the block
 * (without the blank line) is larger than 10 × 1024 bytes", and a block of exactly 10240 bytes is not truncated.
 *
 * A line that is neither a field (`name:`) nor a continuation is skipped but still counts toward the total.
 */
export function parseHeaderBlock(block: Uint8Array | string, limitBytes: number = SES_LIMITS.notificationHeaderBytes): ParsedHeaderBlock {
  const bytes = typeof block === 'string' ? Buffer.from(block, 'utf8') : block;
  const length = headerBlockLength(bytes) ?? bytes.length;
  const allHeaders: MailHeader[] = [];
  const headers: MailHeader[] = [];

  let start = 0;
  while (start < length) {
    // A field runs to the line break of its last continuation line (one starting with SP or HT).
    let end = start;
    do {
      const lf = bytes.indexOf(LF, end);
      end = lf < 0 || lf >= length ? length : lf + 1;
    } while (end < length && (bytes[end] === SP || bytes[end] === HT));

    const field = parseField(decodeField(bytes.subarray(start, end)));
    if (field) {
      allHeaders.push(field);
      if (end <= limitBytes) headers.push(field);
    }
    start = end;
  }
  return { headers, headersTruncated: length > limitBytes, allHeaders };
}

function parseField(text: string): MailHeader | undefined {
  const colon = text.indexOf(':');
  if (colon <= 0 || /[\r\n]/.test(text.slice(0, colon))) return undefined;
  // obs-syntax allows whitespace before the colon (`Subject :`); the name itself keeps its case. A "name" with
  // inner whitespace is no field (e.g. an mbox `From ` line).
  const name = text.slice(0, colon).replace(/[ \t]+$/, '');
  if (!name || /[ \t]/.test(name)) return undefined;
  const raw = text.slice(colon + 1).replace(/\r?\n$/, '');
  return { name, value: unfoldHeaderValue(raw) };
}
