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
  /**
   * Format version of this record; bump on incompatible change and keep reading the old one. (2 is taken by the line
   * that starts a sealed file, SealedFileHeader, which holds records of this version inside.)
   */
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

/**
 * The first line of a sealed (encrypted) spool file, in plaintext: how the rest of the file is sealed. The rest is one
 * AWS Encryption SDK message whose plaintext is the file as it would be unsealed — its entries, laid out as above —
 * so entry offsets (a job's `at`, `length`) are offsets in that plaintext. Only this line and the message's own header
 * are readable without the key: no address, no byte of DATA (docs/spool-encryption.md).
 *
 * A batch file is sealed whole, once per round (one Encryption SDK message per file, not per message: its fixed cost
 * per message would have taken most of the accept path's CPU); a streamed message's file on its own.
 */
export interface SealedFileHeader {
  v: 2;
  sealed: {
    /** The format of what follows: an AWS Encryption SDK message. */
    by: 'aws-encryption-sdk';
    /** Its algorithm suite, by the SDK's name. */
    suite: string;
    /** What wraps its data key: a KMS key (`keyId` its ARN) or a raw AES key (`keyId` a fingerprint of the key). */
    keyring: 'aws-kms' | 'raw-aes';
    keyId: string;
  };
  /** Bytes of ciphertext after this line (a batch file); absent: to the end of the file (a streamed message). */
  length?: number;
  /**
   * CRC-32 of the ciphertext after this line, as on disk (a batch file: visible before it is durable, see writer.ts).
   * A torn file is told by it before any decryption, as an unsealed one is by its entries' `dataCrc32`.
   */
  crc32?: number;
  /** Bytes of plaintext the ciphertext holds (the unsealed file's size); checked when it is decrypted. */
  plaintextLength: number;
}

/**
 * The line, LF-terminated; `width` pads it with spaces to that many bytes (JSON allows them), so a streamed file can
 * write it before its plaintext length is known and overwrite it in place once it is.
 */
export function encodeSealedLine(header: SealedFileHeader, width?: number): Buffer {
  const json = JSON.stringify(header);
  if (width !== undefined && json.length + 1 > width) throw new Error(`sealed spool line needs ${json.length + 1} bytes, has ${width}`);
  return Buffer.from(`${width === undefined ? json : json.padEnd(width - 1, ' ')}\n`, 'utf8');
}

/** What a spool file's first line is: the record of its first entry, or the header of a sealed file. */
export type FirstLine = { sealed: false; record: SpoolRecord } | { sealed: true; header: SealedFileHeader };

/** JSON.stringify keeps the key order: a sealed file starts so, a record line `{"v":1,`. */
const SEALED_START = '{"v":2,';

/** Whether a spool file's first bytes are a sealed file's line: told without parsing it. */
export function isSealedStart(head: Buffer): boolean {
  return head.length > SEALED_START.length && head.toString('latin1', 0, SEALED_START.length) === SEALED_START;
}

export function parseFirstLine(line: Buffer | string): FirstLine {
  const text = typeof line === 'string' ? line : line.toString('utf8');
  if (!text.startsWith(SEALED_START)) return { sealed: false, record: parseRecordLine(text) };
  let h: Partial<SealedFileHeader> | null;
  try {
    h = JSON.parse(text) as Partial<SealedFileHeader> | null;
  } catch (err) {
    throw new SpoolFormatError(`sealed spool line is not JSON: ${(err as Error).message}`);
  }
  const s = h?.sealed;
  const count = (n: unknown, max = Number.MAX_SAFE_INTEGER) => Number.isSafeInteger(n) && (n as number) >= 0 && (n as number) <= max;
  if (!h || h.v !== 2 || !s || s.by !== 'aws-encryption-sdk' || typeof s.suite !== 'string' || (s.keyring !== 'aws-kms' && s.keyring !== 'raw-aes') || typeof s.keyId !== 'string') {
    throw new SpoolFormatError('sealed spool line does not say how the file is sealed');
  }
  if (!count(h.plaintextLength) || (h.length !== undefined && !count(h.length)) || (h.crc32 !== undefined && !count(h.crc32, 0xffffffff))) throw new SpoolFormatError('sealed spool line has a bad length or checksum');
  return { sealed: true, header: h as SealedFileHeader };
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
  /** The file is sealed (SealedFileHeader): its entries' `at` and `length` are offsets in its plaintext. */
  sealed?: boolean;
}

const SUFFIX = '.msg';

export function spoolFileName(id: string): string {
  return `${id}${SUFFIX}`;
}

/** The id of a spool file name, or undefined when the name is not one. */
export function spoolFileId(name: string): string | undefined {
  return name.endsWith(SUFFIX) ? name.slice(0, -SUFFIX.length) : undefined;
}
