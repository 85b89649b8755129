import type { CommonHeaders, MailHeader } from './types.js';

/**
 * `mail.commonHeaders` and `mail.destination` (docs/ses-format.md#notification-document), derived from the parsed header fields.
 *
 * Choices for UNCONFIRMED points (docs/ses-format.md#notification-details):
 * - Key order: returnPath, from, sender, replyTo, date, to, cc, bcc, messageId, subject — the observed keys keep
 *   their observed order (replyTo between from and date, 2024 sample); sender/cc/bcc sit where the community
 *   type definitions put them. `sender` is a list, as those definitions type it.
 * - Address fields (from, sender, replyTo, to, cc, bcc) join every occurrence of their header; the single-valued
 *   ones (returnPath, date, messageId, subject) take the first, as JavaMail does. An address header with no
 *   element is left out.
 * - Address elements stay as written (trimmed; encoded-words not decoded); only `subject` is RFC 2047-decoded, so
 *   it may hold any character an encoded-word carries, CR, LF and NUL included: consumers get them JSON-escaped
 *   (`\r`, `\n`, `\u0000`) and must not paste the subject into a header or a log line unchecked.
 * - Sizes are bounded when the notification is built (size.ts).
 */

/**
 * Calls `visit` for each character of `s` outside quoted strings and comments, with its index; quoted-pairs
 * (`\x`) are honoured in both.
 */
function forEachTopLevel(s: string, visit: (ch: string, i: number) => void): void {
  let quoted = false;
  let comment = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quoted || comment > 0) {
      if (ch === '\\') i++;
      else if (quoted && ch === '"') quoted = false;
      else if (!quoted && ch === '(') comment++;
      else if (!quoted && ch === ')') comment--;
    } else if (ch === '"') quoted = true;
    else if (ch === '(') comment = 1;
    else visit(ch, i);
  }
}

function split(value: string, groups: boolean): { parts: string[]; openGroup: boolean } {
  const parts: string[] = [];
  let angle = false;
  let group = false;
  let from = 0;
  forEachTopLevel(value, (ch, i) => {
    if (ch === '<') angle = true;
    else if (ch === '>') angle = false;
    else if (groups && !angle && ch === ':') group = true;
    else if (groups && !angle && ch === ';') group = false;
    else if (ch === ',' && !angle && !group) {
      parts.push(value.slice(from, i));
      from = i + 1;
    }
  });
  parts.push(value.slice(from));
  return { parts: parts.map((p) => p.trim()).filter((p) => p !== ''), openGroup: group };
}

/**
 * Splits an address-list header value at its top-level commas: not inside quoted strings, comments, angle
 * brackets or a group (`Team: a@x, b@x;` stays one element). Elements are kept as written, trimmed. A `:` that
 * never finds its `;` is no group (a display name like `Re: x <a@b>` written unquoted), so it is split plainly.
 */
export function splitAddressList(value: string): string[] {
  const grouped = split(value, true);
  return grouped.openGroup ? split(value, false).parts : grouped.parts;
}

function stripComments(s: string): string {
  let out = '';
  let last = 0;
  let quoted = false;
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '\\' && (quoted || depth > 0)) i++;
    else if (depth === 0 && ch === '"') quoted = !quoted;
    else if (!quoted && ch === '(') {
      if (depth++ === 0) out += s.slice(last, i);
    } else if (!quoted && depth > 0 && ch === ')') {
      if (--depth === 0) last = i + 1;
    }
  }
  return depth === 0 ? out + s.slice(last) : out;
}

/** The addr-specs of one address-list element: its angle-addr, or the bare address; a group gives its members'. */
export function addrSpecs(element: string): string[] {
  let colon = -1;
  let lt = -1;
  let gt = -1;
  forEachTopLevel(element, (ch, i) => {
    if (ch === '<' && lt < 0) lt = i;
    else if (ch === '>' && lt >= 0 && gt < 0) gt = i;
    else if (ch === ':' && lt < 0 && colon < 0) colon = i;
  });
  if (colon >= 0 && /;\s*$/.test(element)) {
    return splitAddressList(element.slice(colon + 1).replace(/;\s*$/, '')).flatMap(addrSpecs);
  }
  let spec = lt >= 0 ? element.slice(lt + 1, gt > lt ? gt : undefined) : stripComments(element);
  spec = spec.trim().replace(/^@[^:]*:/, ''); // obs-route `<@relay:user@host>`
  return spec.includes('@') ? [spec] : [];
}

/**
 * `mail.destination` (DOC: the To and Cc recipients of the MIME headers): addr-spec only, To before Cc, in header
 * order, duplicates kept and case kept as written — SES documents no normalisation, and rewriting would make the
 * list disagree with the headers it came from. Elements without an `@` (`undisclosed-recipients:;`) yield nothing.
 */
export function destination(headers: readonly MailHeader[]): string[] {
  return [...addressField(headers, 'to'), ...addressField(headers, 'cc')].flatMap(addrSpecs);
}

function addressField(headers: readonly MailHeader[], lowerName: string): string[] {
  return headers.filter((h) => h.name.toLowerCase() === lowerName).flatMap((h) => splitAddressList(h.value));
}

function firstValue(headers: readonly MailHeader[], lowerName: string): string | undefined {
  return headers.find((h) => h.name.toLowerCase() === lowerName)?.value;
}

export function commonHeaders(headers: readonly MailHeader[]): CommonHeaders {
  const out: CommonHeaders = {};
  const returnPath = firstValue(headers, 'return-path');
  if (returnPath !== undefined) out.returnPath = /<([^>]*)>/.exec(returnPath)?.[1]?.trim() ?? returnPath.trim();
  const list = (key: 'from' | 'sender' | 'replyTo' | 'to' | 'cc' | 'bcc', name: string) => {
    const elements = addressField(headers, name);
    if (elements.length > 0) out[key] = elements;
  };
  list('from', 'from');
  list('sender', 'sender');
  list('replyTo', 'reply-to');
  const date = firstValue(headers, 'date');
  if (date !== undefined) out.date = date;
  list('to', 'to');
  list('cc', 'cc');
  list('bcc', 'bcc');
  const messageId = firstValue(headers, 'message-id');
  if (messageId !== undefined) out.messageId = messageId;
  const subject = firstValue(headers, 'subject');
  if (subject !== undefined) out.subject = decodeEncodedWords(subject);
  return out;
}

const ENCODED_WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;

function wordBytes(encoding: string, text: string): Buffer {
  if (encoding.toUpperCase() === 'B') return Buffer.from(text, 'base64');
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    const hex = ch === '=' ? /^[0-9A-Fa-f]{2}$/.exec(text.slice(i + 1, i + 3)) : null;
    if (hex) {
      bytes.push(parseInt(hex[0], 16));
      i += 2;
    } else bytes.push(ch === '_' ? 0x20 : ch.charCodeAt(0) & 0xff);
  }
  return Buffer.from(bytes);
}

function decodeBytes(charset: string, bytes: Buffer): string | undefined {
  try {
    // RFC 2231 allows a language suffix: `utf-8*en`.
    return new TextDecoder(charset.replace(/\*.*$/, '')).decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Decodes RFC 2047 encoded-words (B and Q, any charset the runtime's TextDecoder knows: UTF-8, ISO-8859-x,
 * Windows-125x, …). Whitespace between adjacent encoded-words is dropped, and adjacent words of one charset are
 * decoded together so a multi-byte character split across words survives. A word in an unknown charset is left
 * as written. Whether SES decodes `subject` is UNCONFIRMED (docs/ses-format.md#notification-details); decoding is the useful choice.
 */
export function decodeEncodedWords(value: string): string {
  // Runs of adjacent same-charset words, each with the text before it and its raw form (the fallback).
  const runs: Array<{ before: string; charset: string; bytes: Buffer[]; raw: string }> = [];
  let last = 0;
  for (const m of value.matchAll(ENCODED_WORD)) {
    const between = value.slice(last, m.index);
    const charset = m[1]!.toLowerCase();
    const prev = runs.at(-1);
    const adjacent = prev !== undefined && !/\S/.test(between);
    const bytes = wordBytes(m[2]!, m[3]!);
    if (adjacent && prev.charset === charset) {
      prev.bytes.push(bytes);
      prev.raw += between + m[0];
    } else runs.push({ before: adjacent ? '' : between, charset, bytes: [bytes], raw: m[0] });
    last = m.index + m[0].length;
  }
  const decoded = runs.map((r) => r.before + (decodeBytes(r.charset, Buffer.concat(r.bytes)) ?? r.raw));
  return decoded.join('') + value.slice(last);
}
