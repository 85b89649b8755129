import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import type { SpoolDirectory } from './directory.js';
import { parseRecordLine, SpoolFormatError, type SpoolEntry, type SpoolFile, type SpoolRecord } from './format.js';
import { SMALL_MESSAGE_BYTES } from './writer.js';

/** The record line is small (envelope + rule snapshots); this bounds what is read to find it. */
const MAX_RECORD_BYTES = 4 * 1024 * 1024;
/** First read of an entry when delivering or recovering. */
const HEAD_READ_BYTES = 64 * 1024;
/** Spool files up to this size are read whole when a delivery job opens them. */
const WHOLE_READ_BYTES = 1024 * 1024;

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
  constructor(readonly directory: SpoolDirectory) {}

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

  /** Opens a file to read its messages one by one; SpoolMissingError when there is no such file. */
  async open(fileId: string): Promise<OpenSpoolFile> {
    const { fh, path } = await this.openHandle(fileId);
    let size: number;
    let source: FileHandle | ReadAt = fh;
    try {
      size = (await fh.stat()).size;
      // A batch file of small messages is read whole, once per job: one read instead of one per message.
      if (size <= WHOLE_READ_BYTES) {
        const whole = Buffer.allocUnsafe(size);
        let got = 0;
        while (got < size) {
          const { bytesRead } = await fh.read(whole, got, size - got, got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        const end = got;
        source = {
          read: async (buf: Buffer, offset: number, len: number, position: number) => ({ bytesRead: position >= end ? 0 : whole.copy(buf, offset, position, Math.min(position + len, end)) }),
          view: (position: number, len: number) => whole.subarray(position, Math.min(position + len, end)),
        };
      }
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    const from = source;
    return {
      entry: async (at, messageId, length) => expectMessage(await this.readEntry(from, path, size, at, length), at, messageId),
      close: () => fh.close(),
    };
  }

  /** Every message of a spool file, in order (for recovery). */
  async entries(fileId: string): Promise<SpoolFile> {
    const { fh, path } = await this.openHandle(fileId);
    try {
      const size = (await fh.stat()).size;
      const entries: SpoolEntry[] = [];
      for (let at = 0; at < size; ) {
        const msg = await this.readEntry(fh, path, size, at);
        entries.push({ record: msg.record, at, length: msg.dataOffset + msg.dataLength - at });
        if (msg.record.dataLength === undefined) break;
        at = msg.dataOffset + msg.dataLength;
      }
      if (entries.length === 0) throw new SpoolFormatError(`spool file ${path} is empty`);
      // A file of one streamed message is named after it; a batch file may carry its spare's own id (spares.ts).
      if (entries[0]!.record.dataLength === undefined && entries[0]!.record.envelope.messageId !== fileId) throw new SpoolFormatError(`spool file ${path} starts with message ${entries[0]!.record.envelope.messageId}`);
      return { id: fileId, entries };
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
    return createReadStream(msg.path, { start: msg.dataOffset, end: msg.dataOffset + length - 1 });
  }
}
