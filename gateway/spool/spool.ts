import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { isMessageId } from '../../shared/ses/message-id.js';
import { encodeRecordLine, parseRecordLine, SpoolFormatError, type SpoolRecord } from './format.js';

/**
 * The durable half of "accepted": a message is on disk, fsync'd, before its jobs exist, and its jobs exist before
 * the client hears 250. Files are written in `incoming/` and renamed into `messages/` once complete and synced, so
 * `messages/` only ever holds whole messages; whatever is left in `incoming/` after a crash was never acknowledged
 * and is dropped on start.
 */

/** The record line is small (envelope + rule snapshots); this bounds what is read to find it. */
const MAX_RECORD_BYTES = 4 * 1024 * 1024;
const SUFFIX = '.msg';

export interface SpooledMessage {
  record: SpoolRecord;
  path: string;
  /** Byte offset of DATA in the file. */
  dataOffset: number;
  dataLength: number;
}

export type ReceiveResult = { ok: true; dataLength: number } | { ok: false; reason: 'oversized'; dataLength: number };

export class SpoolMissingError extends Error {
  override name = 'SpoolMissingError';
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class Spool {
  readonly messagesDir: string;
  readonly incomingDir: string;

  constructor(readonly dir: string) {
    this.messagesDir = join(dir, 'messages');
    this.incomingDir = join(dir, 'incoming');
  }

  /** Creates the directories and drops unacknowledged partial files. Only the accepting process may call it. */
  async init(opts: { clearIncoming: boolean }): Promise<void> {
    await mkdir(this.messagesDir, { recursive: true });
    await mkdir(this.incomingDir, { recursive: true });
    if (opts.clearIncoming) {
      for (const f of await readdir(this.incomingDir)) await rm(join(this.incomingDir, f), { force: true });
    }
  }

  /** Spool file of a message (the job's spool reference is this name relative to the spool directory). */
  fileName(messageId: string): string {
    return `${messageId}${SUFFIX}`;
  }

  path(messageId: string): string {
    return join(this.messagesDir, this.fileName(messageId));
  }

  /**
   * Streams DATA to disk behind the record line, fsyncs file and directory, and only then makes it visible in
   * `messages/`. `sizeExceeded` is polled per chunk: once true, writing stops and the rest of DATA is drained and
   * dropped, so an oversized message never costs more than the limit in disk and nothing in memory.
   */
  async receive(record: SpoolRecord, data: Readable & { sizeExceeded?: boolean }): Promise<ReceiveResult> {
    const id = record.envelope.messageId;
    const tmp = join(this.incomingDir, this.fileName(id));
    const fh = await open(tmp, 'wx');
    let open_ = true;
    let dataLength = 0;
    let oversized = false;
    const drop = async () => {
      open_ = false;
      await fh.close();
      await unlink(tmp);
    };
    try {
      const line = encodeRecordLine(record);
      await fh.write(line, 0, line.length, null);
      for await (const chunk of data as AsyncIterable<Buffer>) {
        dataLength += chunk.length;
        if (oversized) continue;
        if (data.sizeExceeded) {
          oversized = true;
          await drop();
          continue;
        }
        await fh.write(chunk, 0, chunk.length, null);
      }
      // A client that vanished mid-DATA can end the stream without an error; never spool a truncated message.
      if (!data.readableEnded) throw new Error('DATA ended before its terminating dot');
      // The flag is final only once the stream ended: the last chunk may be the one that crossed the limit.
      if (!oversized && data.sizeExceeded) {
        oversized = true;
        await drop();
      }
      if (oversized) return { ok: false, reason: 'oversized', dataLength };
      await fh.sync();
      open_ = false;
      await fh.close();
      await rename(tmp, this.path(id));
      await syncDir(this.messagesDir);
      return { ok: true, dataLength };
    } catch (err) {
      if (open_) await fh.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** Reads a spooled message's record and where its DATA lies; SpoolMissingError when there is no such file. */
  async open(messageId: string): Promise<SpooledMessage> {
    const path = this.path(messageId);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new SpoolMissingError(`spool file ${path} does not exist`);
      throw err;
    }
    try {
      const size = (await fh.stat()).size;
      let head = Buffer.alloc(0);
      let lf = -1;
      while (lf < 0 && head.length < Math.min(size, MAX_RECORD_BYTES)) {
        const buf = Buffer.alloc(Math.min(64 * 1024, size - head.length));
        const { bytesRead } = await fh.read(buf, 0, buf.length, head.length);
        if (bytesRead === 0) break;
        const from = head.length;
        head = Buffer.concat([head, buf.subarray(0, bytesRead)]);
        lf = head.indexOf(0x0a, from);
      }
      if (lf < 0) throw new SpoolFormatError(`spool file ${path} has no record line`);
      const record = parseRecordLine(head.subarray(0, lf));
      if (record.envelope.messageId !== messageId) throw new SpoolFormatError(`spool file ${path} holds message ${record.envelope.messageId}`);
      return { record, path, dataOffset: lf + 1, dataLength: size - lf - 1 };
    } finally {
      await fh.close();
    }
  }

  /** The DATA bytes of a spooled message (optionally only the first `limit` bytes). */
  dataStream(msg: SpooledMessage, limit?: number): Readable {
    const length = limit === undefined ? msg.dataLength : Math.min(limit, msg.dataLength);
    // createReadStream cannot express an empty range (end < start reads to the end of the file).
    if (length === 0) return Readable.from([]);
    return createReadStream(msg.path, { start: msg.dataOffset, end: msg.dataOffset + length - 1 });
  }

  /** Ids of the messages in `messages/` (in no particular order). */
  async list(): Promise<string[]> {
    const names = await readdir(this.messagesDir);
    return names.filter((n) => n.endsWith(SUFFIX)).map((n) => n.slice(0, -SUFFIX.length)).filter(isMessageId);
  }

  /** Deletes a delivered message; the directory is synced so a crash cannot bring it back for a second delivery. */
  async remove(messageId: string): Promise<boolean> {
    try {
      await unlink(this.path(messageId));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    await syncDir(this.messagesDir);
    return true;
  }
}
