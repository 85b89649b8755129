/**
 * Reads the header block SES (or the gateway, through header-block.ts) put at the top of a stored message
 * (docs/ses-format.md#header-block), so that the message can be stored again — under another rule, key or bucket —
 * with the original DATA behind a new block instead of two blocks.
 *
 * The block is recognised by its fields in SES's order: `Return-Path`, SES's `Received` (`… by <host> with SMTP id
 * <message id> for <recipient>; <date>`, or `with local` for replayed mail that had no SMTP client), then, each at most once and in this order, the scan verdicts, SES's
 * `Received-SPF` (`spfCheck:` wording) and `Authentication-Results` (authserv-id `amazonses.com`, or the `by` host for a
 * gateway's block), `X-SES-RECEIPT` and
 * `X-SES-DKIM-SIGNATURE`. The first field out of that sequence is the sender's own header block — which may hold its
 * own `Return-Path` and `Received` fields further down; those stay.
 *
 * What the block records of the envelope: MAIL FROM (Return-Path), the client (HELO, reverse DNS, IP), the message
 * id, the receipt time to the second, and ONE recipient — the first the rule matched. The other recipients of the
 * original transaction are in no header; only the notification listed them.
 */

/** More than SES's block ever takes (its two signed fields are a few hundred bytes each). */
export const STORED_BLOCK_READ_LIMIT = 64 * 1024;

export interface StoredHeaderBlock {
  /** Bytes of the block; the original DATA starts right after them. */
  length: number;
  /** Envelope MAIL FROM; "" for the null reverse-path. */
  mailFrom: string;
  /** The message id SES (or the gateway) gave the message. */
  messageId: string;
  /** The first recipient the rule matched, as written in `for`. */
  recipient: string;
  receivedAt: Date;
  /** The `by` host: `inbound-smtp.<region>.amazonaws.com` for SES, the gateway's own name otherwise. */
  byHost: string;
  /** The SMTP client, when the `from` clause has SES's shape. */
  client?: { helo: string; hostname?: string; ip: string };
  scan?: { spam?: string; virus?: string };
  /** Values of SES's authentication fields, unfolded, when present. */
  receivedSpf?: string;
  authenticationResults?: string;
  /** SES's own signed fields were there: SES itself stored the message. */
  signedBySes: boolean;
}

export type StoredBlockReading =
  | { state: 'block'; block: StoredHeaderBlock }
  | { state: 'not-stored-format'; reason: string }
  /** The bytes so far end inside the block: read more (or, at the limit, it is no stored message). */
  | { state: 'more' };

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;

const OPTIONAL_FIELDS = ['x-ses-spam-verdict', 'x-ses-virus-verdict', 'received-spf', 'authentication-results', 'x-ses-receipt', 'x-ses-dkim-signature'] as const;

interface RawField {
  /** Lowercased. */
  name: string;
  /** Unfolded, without leading whitespace. */
  value: string;
  end: number;
}

/**
 * The field starting at `pos`: `null` at a blank line (the end of the header section) or a line that is no field,
 * `'more'` when `head` ends before the field is known to end (unless `atEnd`: then the field ends there).
 */
function fieldAt(head: Buffer, pos: number, atEnd: boolean): RawField | null | 'more' {
  if (pos >= head.length) return atEnd ? null : 'more';
  if (head[pos] === LF || head[pos] === CR) return null;
  let end = pos;
  for (;;) {
    const lf = head.indexOf(LF, end);
    if (lf < 0) {
      if (!atEnd) return 'more';
      end = head.length;
      break;
    }
    end = lf + 1;
    if (end >= head.length) {
      if (!atEnd) return 'more'; // a continuation line may follow
      break;
    }
    if (head[end] !== SP && head[end] !== HT) break;
  }
  const text = head.subarray(pos, end).toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0 || /[\s]/.test(text.slice(0, colon).trimEnd())) return null;
  const name = text.slice(0, colon).trimEnd().toLowerCase();
  const value = text
    .slice(colon + 1)
    .replace(/\r?\n$/, '')
    .replace(/\r?\n[ \t]*/g, ' ')
    .replace(/^[ \t]+/, '');
  return { name, value, end };
}

/** The lowercased name of the field starting at `pos`, null when there is none, 'more' when its colon is not in yet. */
function nameAt(head: Buffer, pos: number, atEnd: boolean): string | null | 'more' {
  if (pos >= head.length) return atEnd ? null : 'more';
  const lf = head.indexOf(LF, pos);
  const lineEnd = lf < 0 ? head.length : lf;
  const colon = head.indexOf(0x3a, pos);
  if (colon < 0 || colon > lineEnd) return lf < 0 && !atEnd ? 'more' : null;
  const name = head.subarray(pos, colon).toString('latin1').trimEnd();
  return name && !/\s/.test(name) ? name.toLowerCase() : null;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** The inverse of formatReceivedDate: `Fri, 04 Oct 2024 12:00:00 +0000 (UTC)`, the only form SES writes. */
export function parseReceivedDate(text: string): Date | undefined {
  const m = /^(\w{3}), (\d{1,2}) (\w{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) \+0000(?: \(UTC\))?$/.exec(text.trim());
  if (!m) return undefined;
  const month = MONTHS.indexOf(m[3]!);
  if (month < 0 || !DAYS.includes(m[1]!)) return undefined;
  const at = new Date(Date.UTC(Number(m[4]), month, Number(m[2]), Number(m[5]), Number(m[6]), Number(m[7])));
  if (at.getUTCDate() !== Number(m[2]) || DAYS[at.getUTCDay()] !== m[1]) return undefined;
  return at;
}

const RECEIVED = /^(?:from (.+?) )?by (\S+) with (?:SMTP|local) id ([0-9a-v]{20,64}) for (\S+?);\s*(.+)$/;
const FROM_CLAUSE = /^(\S+) \((\S+) \[(?:IPv6:)?([^\]\s]+)\]\)$/;

/**
 * Reads the stored block at the top of `head` (the first bytes of a stored message, at most
 * STORED_BLOCK_READ_LIMIT of them; `atEnd` when the message has no more).
 */
export function readStoredHeaderBlock(head: Buffer, atEnd: boolean): StoredBlockReading {
  const more = (): StoredBlockReading =>
    !atEnd && head.length < STORED_BLOCK_READ_LIMIT ? { state: 'more' } : { state: 'not-stored-format', reason: `no header block ends within its first ${STORED_BLOCK_READ_LIMIT / 1024} KiB` };

  const returnPath = fieldAt(head, 0, atEnd);
  if (returnPath === 'more') return more();
  if (!returnPath || returnPath.name !== 'return-path') return { state: 'not-stored-format', reason: 'it does not begin with a Return-Path field, as every message SES or the gateway stores does' };
  const path = /^<([^<>]*)>\s*$/.exec(returnPath.value);
  if (!path) return { state: 'not-stored-format', reason: 'its Return-Path is not written <address>, as SES writes it' };

  const received = fieldAt(head, returnPath.end, atEnd);
  if (received === 'more') return more();
  const r = received && received.name === 'received' ? RECEIVED.exec(received.value) : null;
  if (!received || !r) return { state: 'not-stored-format', reason: "its Return-Path is not followed by SES's Received field (… by <host> with SMTP id <message id> for <recipient>; <date>)" };
  const receivedAt = parseReceivedDate(r[5]!);
  if (!receivedAt) return { state: 'not-stored-format', reason: `the date of its Received field is not in SES's form ("${r[5]}")` };

  const block: StoredHeaderBlock = {
    length: received.end,
    mailFrom: path[1]!.trim(),
    messageId: r[3]!,
    recipient: r[4]!,
    receivedAt,
    byHost: r[2]!,
    signedBySes: false,
  };
  const from = r[1] ? FROM_CLAUSE.exec(r[1]) : null;
  if (from) block.client = { helo: from[1]!, ...(from[2] !== 'unknown' ? { hostname: from[2]! } : {}), ip: from[3]! };

  let next = 0;
  for (let pos = received.end; ; ) {
    // The next field's name alone tells whether the block goes on; its end is needed only if it does.
    const name = nameAt(head, pos, atEnd);
    if (name === 'more') return more();
    const at = name ? OPTIONAL_FIELDS.indexOf(name as (typeof OPTIONAL_FIELDS)[number], next) : -1;
    if (at < 0) break;
    const f = fieldAt(head, pos, atEnd);
    if (f === 'more') return more();
    if (!f || !belongsToBlock(f, block.byHost)) break;
    next = at + 1;
    pos = block.length = f.end;
    switch (f.name) {
      case 'x-ses-spam-verdict':
        block.scan = { ...block.scan, spam: f.value.trim() };
        break;
      case 'x-ses-virus-verdict':
        block.scan = { ...block.scan, virus: f.value.trim() };
        break;
      case 'received-spf':
        block.receivedSpf = f.value;
        break;
      case 'authentication-results':
        block.authenticationResults = f.value;
        break;
      default:
        block.signedBySes = true;
    }
  }
  return { state: 'block', block };
}

/**
 * SES's authentication fields have its wording, and its (or the gateway's, named in `by`) authserv-id; a sender's own
 * ones (from another receiver) do not.
 */
function belongsToBlock(f: RawField, byHost: string): boolean {
  if (f.name === 'received-spf') return f.value.includes('(spfCheck:');
  if (f.name === 'authentication-results') {
    const id = /^([^;\s]+)\s*;/.exec(f.value)?.[1]?.toLowerCase();
    return id === 'amazonses.com' || id === byHost.toLowerCase();
  }
  return true;
}
