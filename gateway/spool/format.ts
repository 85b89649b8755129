import type { S3Action } from '../../shared/config/index.js';

/**
 * What the gateway knows about an accepted message besides its bytes: the SMTP envelope and the receipt rules it
 * matched, each with a snapshot of the rule as it was at receipt.
 *
 * Why a snapshot: SES applies the rule set that was active when the mail arrived ("fixing the rule set only affects
 * mail received after the fix", docs/ses-format.md#retries), so a delivery retried after a config change goes where it would have gone
 * then. An operator who wants a failed delivery elsewhere re-sends the mail.
 */
export interface MessageEnvelope {
  messageId: string;
  /** ISO-8601 with milliseconds: the notification's timestamp and the Received date. Set when DATA begins. */
  receivedAt: string;
  /** Envelope MAIL FROM, bare; "" for the null reverse-path. */
  mailFrom: string;
  /** The SMTP client (HELO, address, reverse-DNS name, TLS): absent for a message that did not come over SMTP (replay). */
  helo?: string;
  clientIp?: string;
  /** Reverse-DNS name; absent when unknown (the Received header then says `unknown`). */
  clientHostname?: string;
  tls?: boolean;
  /** The gateway's own name, written in Received's `by`. */
  byHost: string;
  /** Account that owns the rule set (`aws:ses:source-account`) and the receiving region. */
  accountId: string;
  region: string;
}

export interface SpooledRule {
  name: string;
  /** RCPT TO addresses this rule matched, in SMTP order. */
  recipients: string[];
  scanEnabled: boolean;
  s3Action: S3Action;
}

export interface SpoolRecord {
  /** Format version of this record; bump on incompatible change and keep reading the old one. */
  v: 1;
  envelope: MessageEnvelope;
  /** Matched enabled rules, in rule-set order: one delivery each. */
  rules: SpooledRule[];
  /**
   * Length of this entry's DATA, when another entry may follow it in the same file (a batch file). Absent: DATA runs
   * to the end of the file (a message streamed to disk on its own, whose length is unknown when its record is written).
   */
  dataLength?: number;
  /**
   * CRC-32 (zlib's) of this entry's DATA; set by the batch writer, which makes a file visible in `messages/` before its
   * bytes are on disk (writer.ts): after a crash mid-write the file may be torn, and this is how a reader tells.
   * Absent in a file streamed to disk on its own (renamed into place only once durable) and in older files.
   */
  dataCrc32?: number;
}

/**
 * Spool file layout: one or more entries, each one line of JSON (the SpoolRecord; JSON.stringify never writes a raw
 * line break), LF, then the DATA bytes exactly as received (dot-unstuffed, CRLF kept). The record goes first because
 * it is complete when DATA starts, so a big message streams to disk behind it (one entry, DATA to the end of the
 * file). Small messages that end together share one file, each record giving its `dataLength` and `dataCrc32`: one
 * fdatasync makes the whole batch durable, where one file per message costs one disk flush each — the accept path's
 * ceiling (docs/performance.md#batch-spool-files).
 */
export function encodeRecordLine(record: SpoolRecord): Buffer {
  return Buffer.from(`${JSON.stringify(record)}\n`, 'utf8');
}

export class SpoolFormatError extends Error {
  override name = 'SpoolFormatError';
}

export function parseRecordLine(line: Buffer | string): SpoolRecord {
  let value: unknown;
  try {
    value = JSON.parse(typeof line === 'string' ? line : line.toString('utf8'));
  } catch (err) {
    throw new SpoolFormatError(`spool record is not JSON: ${(err as Error).message}`);
  }
  const r = value as Partial<SpoolRecord> | null;
  if (!r || r.v !== 1 || !r.envelope || typeof r.envelope.messageId !== 'string' || !Array.isArray(r.rules)) {
    throw new SpoolFormatError('spool record has an unknown version or misses envelope/rules');
  }
  if (r.dataLength !== undefined && !(Number.isSafeInteger(r.dataLength) && r.dataLength >= 0)) throw new SpoolFormatError('spool record has a bad dataLength');
  if (r.dataCrc32 !== undefined && !(Number.isSafeInteger(r.dataCrc32) && r.dataCrc32 >= 0 && r.dataCrc32 <= 0xffffffff)) throw new SpoolFormatError('spool record has a bad dataCrc32');
  return r as SpoolRecord;
}

/** One message in a spool file: its record, the byte offset of its record line, and the entry's length when known. */
export interface SpoolEntry {
  record: SpoolRecord;
  at: number;
  /** Record line + DATA, in bytes: a delivery reads exactly this (absent: the first read takes a 64 KiB head). */
  length?: number;
}

/**
 * A file in `messages/`, holding one message or a batch of them. Its id (its name) is its message's id for a streamed
 * message; a batch file written into a spare has the spare's own id, one created in its round its first message's.
 */
export interface SpoolFile {
  id: string;
  entries: SpoolEntry[];
}

const SUFFIX = '.msg';

export function spoolFileName(id: string): string {
  return `${id}${SUFFIX}`;
}

/** The id of a spool file name, or undefined when the name is not one. */
export function spoolFileId(name: string): string | undefined {
  return name.endsWith(SUFFIX) ? name.slice(0, -SUFFIX.length) : undefined;
}
