import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import type { SpoolDirectory } from './directory.js';
import { isSealedStart, parseFirstLine, parseRecordLine, SpoolFormatError, type SealedFileHeader, type SpoolEntry, type SpoolFile, type SpoolRecord } from './format.js';
import { describeSealedKey, SpoolKeyError, type SpoolSeal } from './seal.js';
import { SMALL_MESSAGE_BYTES } from './writer.js';

/** The record line is small (envelope + rule snapshots); this bounds what is read to find it. */
const MAX_RECORD_BYTES = 4 * 1024 * 1024;
/** First read of an entry when delivering or recovering. */
const HEAD_READ_BYTES = 64 * 1024;
/** Spool files up to this size are read whole when a delivery job opens them. */
const WHOLE_READ_BYTES = 1024 * 1024;
/** A sealed file's line is short (how it is sealed, a key ARN, lengths): this bounds what is read to find it. */
const SEALED_LINE_BYTES = 4 * 1024;

/** What readEntry reads through: a FileHandle, or a file already in memory (read as views, no copy). */
interface ReadAt {
  read(buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  view?(position: number, length: number): Buffer;
}

export interface SpooledMessage {
  record: SpoolRecord;
  path: string;
  /** Byte offset of DATA in the file. */
  dataOffset: number;
  dataLength: number;
  /** The DATA bytes, when the file is small enough to have been read whole by `open` (then no second read). */
  data?: Buffer;
  /**
   * A sealed file too big to hold (a streamed message): its DATA is decrypted as it streams from byte `cipherAt` on
   * (`dataOffset` is then an offset in the plaintext).
   */
  sealed?: { fileId: string; header: SealedFileHeader; cipherAt: number };
}

/** A spool file held open for reading several of its messages (a delivery job): one open, one read per message. */
export interface OpenSpoolFile {
  /** The message whose entry starts at byte `at` (`length` bytes long, when known); SpoolFormatError when that is not `messageId`'s. */
  entry(at: number, messageId: string, length?: number): Promise<SpooledMessage>;
  close(): Promise<void>;
}

export class SpoolMissingError extends Error {
  override name = 'SpoolMissingError';
}

/**
 * A file's contents as entries are read from: its bytes (a FileHandle, or in memory), or a sealed file's plaintext
 * (in memory for a batch file); `streamed`, for a sealed file of one streamed message, is that message.
 */
interface Contents {
  path: string;
  size: number;
  source: FileHandle | ReadAt;
  sealed: boolean;
  streamed?: SpooledMessage;
}

/** Reads `want` bytes at `position` (fewer only at the end of the file). */
async function readAt(fh: FileHandle, want: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(want);
  let got = 0;
  while (got < want) {
    const { bytesRead } = await fh.read(buf, got, want - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/** An in-memory file as readEntry reads it: views, no copies. */
function inMemory(whole: Buffer): ReadAt {
  const end = whole.length;
  return {
    read: async (buf: Buffer, offset: number, len: number, position: number) => ({ bytesRead: position >= end ? 0 : whole.copy(buf, offset, position, Math.min(position + len, end)) }),
    view: (position: number, len: number) => whole.subarray(position, Math.min(position + len, end)),
  };
}

/** The first line of a stream, LF included, within `max` bytes; the stream is destroyed once it is read. */
async function firstLine(stream: Readable, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const c of stream as AsyncIterable<Buffer>) {
      const lf = c.indexOf(0x0a);
      if (lf >= 0) {
        chunks.push(c.subarray(0, lf + 1));
        return Buffer.concat(chunks);
      }
      chunks.push(c);
      bytes += c.length;
      if (bytes >= max) return undefined;
    }
    return undefined;
  } finally {
    stream.destroy();
  }
}

/** Bytes [start, start + length) of a stream; the stream is destroyed once they are passed on. */
async function* slice(stream: Readable, start: number, length: number): AsyncGenerator<Buffer> {
  let pos = 0;
  const end = start + length;
  try {
    for await (const c of stream as AsyncIterable<Buffer>) {
      const from = Math.max(start - pos, 0);
      const to = Math.min(end - pos, c.length);
      pos += c.length;
      if (to > from) yield c.subarray(from, to);
      if (pos >= end) return;
    }
    if (pos < end) throw new SpoolFormatError(`spool file ended ${end - pos} bytes early`);
  } finally {
    stream.destroy();
  }
}

/** A job names the message it expects at a place in a file; anything else there is damage, not that message. */
function expectMessage(msg: SpooledMessage, at: number, messageId: string): SpooledMessage {
  if (msg.record.envelope.messageId !== messageId) throw new SpoolFormatError(`spool file ${msg.path} holds message ${msg.record.envelope.messageId} at byte ${at}, not ${messageId}`);
  return msg;
}

/**
 * The delivering side of the spool: spool files opened by their id, their messages' records and DATA read back,
 * each batch entry checked against its checksum (writer.ts writes a batch file where it is visible before it is
 * durable, so a crash mid-write leaves a torn file).
 */
export class SpoolReader {
  constructor(
    readonly directory: SpoolDirectory,
    /** Opens sealed files (spool encryption); absent: a sealed file cannot be read, and says which key it needs. */
    private readonly seal?: SpoolSeal,
  ) {}

  private async openHandle(fileId: string): Promise<{ fh: FileHandle; path: string }> {
    const path = this.directory.path(fileId);
    try {
      return { fh: await open(path, 'r'), path };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new SpoolMissingError(`spool file ${path} does not exist`);
      throw err;
    }
  }

  /**
   * Reads the entry at byte `at` of a file: its record and, for a small entry, its DATA (a typical message comes with
   * its record in the first read).
   */
  private async readEntry(fh: FileHandle | ReadAt, path: string, size: number, at: number, length?: number): Promise<SpooledMessage> {
    if (at >= size) throw new SpoolFormatError(`spool file ${path} has no entry at byte ${at}`);
    let head: Buffer = Buffer.alloc(0);
    let lf = -1;
    while (lf < 0 && head.length < Math.min(size - at, MAX_RECORD_BYTES)) {
      // A small entry whose length is known comes in exactly one read; otherwise a head, then what is missing.
      const want = head.length === 0 && length !== undefined && length <= SMALL_MESSAGE_BYTES + MAX_RECORD_BYTES ? length : HEAD_READ_BYTES;
      if (head.length === 0 && 'view' in fh && fh.view) {
        head = fh.view(at, size - at);
        lf = head.indexOf(0x0a);
        break;
      }
      const buf = Buffer.allocUnsafe(Math.min(want, size - at - head.length));
      const { bytesRead } = await fh.read(buf, 0, buf.length, at + head.length);
      if (bytesRead === 0) break;
      const from = head.length;
      head = head.length === 0 ? buf.subarray(0, bytesRead) : Buffer.concat([head, buf.subarray(0, bytesRead)]);
      lf = head.indexOf(0x0a, from);
    }
    if (lf < 0) throw new SpoolFormatError(`spool file ${path} has no record line at byte ${at}`);
    const record = parseRecordLine(head.subarray(0, lf));
    const dataOffset = at + lf + 1;
    const dataLength = record.dataLength ?? size - dataOffset;
    if (dataOffset + dataLength > size) throw new SpoolFormatError(`spool file ${path} is truncated: message ${record.envelope.messageId} needs ${dataLength} bytes at ${dataOffset}, the file has ${size}`);
    const msg: SpooledMessage = { record, path, dataOffset, dataLength };
    if (head.length >= lf + 1 + dataLength) msg.data = head.subarray(lf + 1, lf + 1 + dataLength);
    else if (dataLength <= SMALL_MESSAGE_BYTES) {
      const data = Buffer.allocUnsafe(dataLength);
      const got = head.length - lf - 1;
      head.copy(data, 0, lf + 1);
      for (let off = got; off < dataLength; ) {
        const { bytesRead } = await fh.read(data, off, dataLength - off, dataOffset + off);
        if (bytesRead === 0) throw new SpoolFormatError(`spool file ${path} ended early`);
        off += bytesRead;
      }
      msg.data = data;
    }
    if (record.dataCrc32 !== undefined && (!msg.data || crc32(msg.data) !== record.dataCrc32)) {
      throw new SpoolFormatError(
        `spool file ${path} is torn or damaged: message ${record.envelope.messageId}'s DATA does not match its checksum (a machine crash before its flush completed — its client was never answered 250 — or damage by the disk)`,
      );
    }
    return msg;
  }

  /**
   * What a file holds, ready for readEntry: a plaintext file up to WHOLE_READ_BYTES read whole (a batch of small
   * messages: one read instead of one per message), a bigger one through its handle; a sealed batch file decrypted
   * whole; a sealed streamed message's record, its DATA left to stream. `fh` is closed here unless it is the source.
   */
  private async contents(fileId: string, fh: FileHandle, path: string, whole: boolean): Promise<Contents> {
    const size = (await fh.stat()).size;
    if (size <= WHOLE_READ_BYTES && whole) {
      const all = await readAt(fh, size, 0);
      if (!isSealedStart(all)) return { path, size: all.length, source: inMemory(all), sealed: false };
      return this.sealedContents(fileId, fh, path, size, all);
    }
    const head = await readAt(fh, Math.min(size, SEALED_LINE_BYTES), 0);
    if (!isSealedStart(head)) return { path, size, source: fh, sealed: false };
    return this.sealedContents(fileId, fh, path, size, head);
  }

  private async sealedContents(fileId: string, fh: FileHandle, path: string, size: number, head: Buffer): Promise<Contents> {
    const lf = head.indexOf(0x0a);
    if (lf < 0) throw new SpoolFormatError(`spool file ${path} has no complete first line`);
    const first = parseFirstLine(head.subarray(0, lf));
    if (!first.sealed) throw new SpoolFormatError(`spool file ${path} has a bad first line`);
    const { header } = first;
    if (!this.seal) {
      throw new SpoolKeyError(
        `spool file ${path} is sealed under ${describeSealedKey(header)} and gateway.spool.encryption is not set: set it again with that key ("enabled": false keeps new mail in plaintext) until the sealed mail is delivered`,
      );
    }
    const cipherAt = lf + 1;
    if (header.length !== undefined) {
      // A batch file: sealed whole in its round, opened whole (at most one batch file's worth, MAX_FILE_BYTES).
      if (size !== cipherAt + header.length) throw new SpoolFormatError(`spool file ${path} is torn: ${size} bytes, its sealed line says ${cipherAt + header.length}`);
      const ciphertext = head.length >= size ? head.subarray(cipherAt) : await readAt(fh, header.length, cipherAt);
      const plaintext = await this.seal.open(fileId, header, ciphertext, path);
      return { path, size: plaintext.length, source: inMemory(plaintext), sealed: true };
    }
    // A streamed message: its record is at the start of the plaintext; DATA streams when it is delivered.
    const line = await firstLine(this.seal.openStream(fileId, header, createReadStream(path, { start: cipherAt }), path), MAX_RECORD_BYTES);
    if (!line) throw new SpoolFormatError(`spool file ${path} has no record line in its sealed plaintext`);
    const record = parseRecordLine(line.subarray(0, line.length - 1));
    const dataOffset = line.length;
    const dataLength = record.dataLength ?? header.plaintextLength - dataOffset;
    if (dataOffset + dataLength > header.plaintextLength) throw new SpoolFormatError(`spool file ${path} is truncated: message ${record.envelope.messageId} needs ${dataLength} bytes at ${dataOffset}, the plaintext has ${header.plaintextLength}`);
    return { path, size: header.plaintextLength, source: inMemory(line), sealed: true, streamed: { record, path, dataOffset, dataLength, sealed: { fileId, header, cipherAt } } };
  }

  /** Opens a file to read its messages one by one; SpoolMissingError when there is no such file. */
  async open(fileId: string): Promise<OpenSpoolFile> {
    const { fh, path } = await this.openHandle(fileId);
    let c: Contents;
    try {
      c = await this.contents(fileId, fh, path, true);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    // Contents in memory need the handle no more.
    if (c.source !== fh) await fh.close().catch(() => undefined);
    const { source, size, streamed } = c;
    return {
      entry: async (at, messageId, length) => {
        if (streamed) {
          if (at !== 0) throw new SpoolFormatError(`spool file ${path} holds one streamed message, and no entry at byte ${at}`);
          return expectMessage(streamed, at, messageId);
        }
        return expectMessage(await this.readEntry(source, path, size, at, length), at, messageId);
      },
      close: () => (c.source === fh ? fh.close() : Promise.resolve()),
    };
  }

  /** Every message of a spool file, in order (for recovery). */
  async entries(fileId: string): Promise<SpoolFile> {
    const { fh, path } = await this.openHandle(fileId);
    try {
      const { source, size, sealed, streamed } = await this.contents(fileId, fh, path, false);
      const entries: SpoolEntry[] = [];
      if (streamed) entries.push({ record: streamed.record, at: 0, length: streamed.dataOffset + streamed.dataLength });
      for (let at = 0; !streamed && at < size; ) {
        const msg = await this.readEntry(source, path, size, at);
        entries.push({ record: msg.record, at, length: msg.dataOffset + msg.dataLength - at });
        if (msg.record.dataLength === undefined) break;
        at = msg.dataOffset + msg.dataLength;
      }
      if (entries.length === 0) throw new SpoolFormatError(`spool file ${path} is empty`);
      // A file of one streamed message is named after it; a batch file may carry its spare's own id (spares.ts).
      if (entries[0]!.record.dataLength === undefined && entries[0]!.record.envelope.messageId !== fileId) throw new SpoolFormatError(`spool file ${path} starts with message ${entries[0]!.record.envelope.messageId}`);
      return { id: fileId, entries, ...(sealed ? { sealed: true } : {}) };
    } finally {
      await fh.close();
    }
  }

  /** The DATA bytes of a spooled message (optionally only the first `limit` bytes). */
  dataStream(msg: SpooledMessage, limit?: number): Readable {
    const length = limit === undefined ? msg.dataLength : Math.min(limit, msg.dataLength);
    // createReadStream cannot express an empty range (end < start reads to the end of the file).
    if (length === 0) return Readable.from([]);
    if (msg.data) return Readable.from([msg.data.subarray(0, length)]);
    if (msg.sealed) {
      if (!this.seal) throw new SpoolKeyError(`spool file ${msg.path} is sealed and gateway.spool.encryption is not set`);
      const { fileId, header, cipherAt } = msg.sealed;
      return Readable.from(slice(this.seal.openStream(fileId, header, createReadStream(msg.path, { start: cipherAt }), msg.path), msg.dataOffset, length), { objectMode: false });
    }
    return createReadStream(msg.path, { start: msg.dataOffset, end: msg.dataOffset + length - 1 });
  }
}
