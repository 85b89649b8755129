import { SES_LIMITS } from '../ses/limits.js';
import type { CommonHeaders, ReceivedNotification } from './types.js';

/**
 * Every notification fits SNS. SES's notification carries headers only, cut at 10 KB, but `destination` and
 * `commonHeaders` are derived from every header read, so a message with a 170 KB To: header would make a document
 * SNS refuses (256 KB) — the message stored, never announced. Two bounds, in this order:
 *
 * 1. Per field, at the header limit SES applies to `headers` (10,240 bytes, UTF-8): `destination` and each address
 *    list of `commonHeaders` keep their elements, in order, while they add up to at most that; a longer single value
 *    (`subject`, `date`, `messageId`, `returnPath`) is cut to it at a character boundary.
 * 2. The whole document, serialized, at NOTIFICATION_MAX_BYTES: while it is larger (possible only when most of those
 *    bytes are characters JSON escapes, e.g. control characters as `\u0000`), the largest of those fields and
 *    `headers` is halved — a list loses the second half of its elements, a value the second half of its bytes.
 *
 * Whenever either cuts anything, `headersTruncated` is true. The envelope fields (`source`, `receipt.recipients`)
 * are bounded where they arrive (SMTP path and recipient limits), never cut here.
 */

/** SNS's limit on a message, and on the messages of one PublishBatch call together. */
export const SNS_MAX_MESSAGE_BYTES = 262_144;
/** What a notification may take: SNS's limit, less room for the Subject it is published with and a margin. */
export const NOTIFICATION_MAX_BYTES = SNS_MAX_MESSAGE_BYTES - 1024;
/** The per-field bound: SES's header limit. */
export const NOTIFICATION_FIELD_MAX_BYTES = SES_LIMITS.notificationHeaderBytes;
/**
 * `receipt.recipients`, serialized, at most: a quarter of the document, whatever gateway.smtp.maxRecipients says
 * (100 recipients of the longest address SMTP allows take about 26 KB). Enforced at RCPT, where the sender can be
 * told to send the rest in another transaction.
 */
export const RECIPIENTS_MAX_BYTES = 64 * 1024;

/** The bytes `recipients` take in `receipt.recipients`. */
export function recipientsBytes(recipients: readonly string[]): number {
  return jsonBytes(recipients);
}

const utf8Bytes = (s: string) => Buffer.byteLength(s, 'utf8');
const jsonBytes = (v: unknown) => utf8Bytes(JSON.stringify(v));

export class NotificationTooLargeError extends Error {
  override name = 'NotificationTooLargeError';
}

const LIST_KEYS = ['from', 'sender', 'replyTo', 'to', 'cc', 'bcc'] as const;
const VALUE_KEYS = ['returnPath', 'date', 'messageId', 'subject'] as const;


/** `s` cut to at most `maxBytes` of UTF-8, never inside a character. */
export function cutUtf8(s: string, maxBytes: number): string {
  if (utf8Bytes(s) <= maxBytes) return s;
  let bytes = 0;
  let end = 0;
  for (const ch of s) {
    const b = utf8Bytes(ch);
    if (bytes + b > maxBytes) break;
    bytes += b;
    end += ch.length;
  }
  return s.slice(0, end);
}

/** The leading elements of `list` whose UTF-8 bytes add up to at most `maxBytes`. */
function leading(list: string[], maxBytes: number): string[] {
  let bytes = 0;
  let n = 0;
  while (n < list.length && (bytes += utf8Bytes(list[n]!)) <= maxBytes) n++;
  return n === list.length ? list : list.slice(0, n);
}

/** Applies both bounds (see above) to `n`, in place, and returns it. */
export function fitNotification(n: ReceivedNotification, maxBytes = NOTIFICATION_MAX_BYTES, fieldMaxBytes = NOTIFICATION_FIELD_MAX_BYTES): ReceivedNotification {
  const { mail } = n;
  const common: CommonHeaders = mail.commonHeaders;
  let cut = false;
  const destination = leading(mail.destination, fieldMaxBytes);
  if (destination !== mail.destination) {
    mail.destination = destination;
    cut = true;
  }
  for (const key of LIST_KEYS) {
    const list = common[key];
    const kept = list && leading(list, fieldMaxBytes);
    if (kept && kept !== list) {
      common[key] = kept;
      cut = true;
    }
  }
  for (const key of VALUE_KEYS) {
    const value = common[key];
    const kept = value === undefined ? undefined : cutUtf8(value, fieldMaxBytes);
    if (kept !== value) {
      common[key] = kept;
      cut = true;
    }
  }
  if (cut) mail.headersTruncated = true;

  let total = jsonBytes(n);
  if (total <= maxBytes) return n;
  mail.headersTruncated = true;
  // The parts that may shrink, each with its serialized size; replacing one changes the total by exactly the
  // difference (its key and separators stay).
  type Part = { bytes: number; get: () => string[] | string | object[]; set: (v: never) => void };
  const parts: Part[] = [
    { bytes: 0, get: () => mail.headers, set: (v) => (mail.headers = v) },
    { bytes: 0, get: () => mail.destination, set: (v) => (mail.destination = v) },
    ...[...LIST_KEYS, ...VALUE_KEYS].filter((k) => common[k] !== undefined).map((k): Part => ({ bytes: 0, get: () => common[k]!, set: (v) => (common[k] = v) })),
  ];
  for (const p of parts) p.bytes = jsonBytes(p.get());
  while (total > maxBytes) {
    const largest = parts.reduce((a, b) => (b.bytes > a.bytes ? b : a));
    const value = largest.get();
    const smaller = typeof value === 'string' ? cutUtf8(value, Math.floor(utf8Bytes(value) / 2)) : value.slice(0, Math.floor(value.length / 2));
    if (smaller.length === value.length) {
      throw new NotificationTooLargeError(`the notification is ${total} bytes with every header-derived field emptied; at most ${maxBytes} fit SNS`);
    }
    largest.set(smaller as never);
    const bytes = jsonBytes(smaller);
    total -= largest.bytes - bytes;
    largest.bytes = bytes;
  }
  return n;
}
