import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { isMessageId } from '../../shared/ses/message-id.js';
import { SpoolWriter } from './writer.js';
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
/** Gathered in memory before the first write (per session in DATA): most mail is one write. */
const SMALL_MESSAGE_BYTES = 256 * 1024;

export interface SpooledMessage {
  record: SpoolRecord;
  path: string;
  /** Byte offset of DATA in the file. */
  dataOffset: number;
  dataLength: number;
  /** The DATA bytes, when the file is small enough to have been read whole by `open` (then no second read). */
  data?: Buffer;
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

/** Writes all of `buf` (a short write on a regular file is rare but allowed). */
async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  for (let off = 0; off < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, null);
    if (bytesWritten <= 0) throw new Error('spool write made no progress');
    off += bytesWritten;
  }
}

const noop = () => undefined;

/**
 * Group commit for an fsync whose effect covers everything done before it *started* (a directory's entries). A
 * caller arriving while none runs starts one; callers arriving while one runs all join the single next one, which
 * starts when the running one ends. So every caller's own change (rename/unlink, completed before it called) is
 * covered by the fsync it waits for, and N callers in a burst cost 2 fsyncs instead of N. A failed fsync rejects
 * exactly the callers that waited for it.
 */
export class GroupSync {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(private readonly doSync: () => Promise<void>) {}

  sync(): Promise<void> {
    if (this.next) return this.next;
    if (!this.running) return this.start();
    this.next = this.running.then(noop, noop).then(() => {
      this.next = undefined;
      return this.start();
    });
    return this.next;
  }

  private start(): Promise<void> {
    const p: Promise<void> = this.doSync().finally(() => {
      if (this.running === p) this.running = undefined;
    });
    this.running = p;
    return p;
  }
}

export class Spool {
  readonly messagesDir: string;
  readonly incomingDir: string;
  /** fsync of `messages/`, shared by the renames and unlinks that finished before it started. */
  private readonly messagesDirSync: GroupSync;
  /** Whole small messages go to disk through this thread, in batches (see writer.ts). */
  private readonly writer: SpoolWriter;

  constructor(readonly dir: string) {
    this.messagesDir = join(dir, 'messages');
    this.incomingDir = join(dir, 'incoming');
    this.messagesDirSync = new GroupSync(() => syncDir(this.messagesDir));
    this.writer = new SpoolWriter(this.messagesDir);
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
   * Streams DATA to disk behind the record line, fsyncs the file, renames it into `messages/` and fsyncs that
   * directory — and only then resolves. `sizeExceeded` is polled per chunk: once true, writing stops and the rest of
   * DATA is drained and dropped, so an oversized message never costs more than the limit in disk and nothing in
   * memory.
   *
   * Fewer trips to the disk, same durability: the first SMALL_MESSAGE_BYTES are gathered in memory, so a typical
   * message is written whole by the writer thread in a batch with the others that ended meanwhile (writer.ts); a
   * big one streams on from there, is fsync'd, renamed, and shares a directory fsync with the renames that
   * finished before it started (group commit, see GroupSync).
   */
  async receive(record: SpoolRecord, data: Readable & { sizeExceeded?: boolean }): Promise<ReceiveResult> {
    const id = record.envelope.messageId;
    const tmp = join(this.incomingDir, this.fileName(id));
    let fh: FileHandle | undefined;
    let created = false;
    let pending: Buffer[] = [encodeRecordLine(record)];
    let pendingBytes = pending[0]!.length;
    let dataLength = 0;
    let oversized = false;
    const flush = async () => {
      if (!fh) {
        fh = await open(tmp, 'wx');
        created = true;
      }
      const buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      await writeAll(fh, buf);
    };
    const drop = async () => {
      oversized = true;
      pending = [];
      pendingBytes = 0;
      const f = fh;
      fh = undefined;
      if (f) await f.close();
      if (created) await unlink(tmp);
      created = false;
    };
    try {
      for await (const chunk of data as AsyncIterable<Buffer>) {
        dataLength += chunk.length;
        if (oversized) continue;
        if (data.sizeExceeded) {
          await drop();
          continue;
        }
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= SMALL_MESSAGE_BYTES) await flush();
      }
      // A client that vanished mid-DATA can end the stream without an error; never spool a truncated message.
      if (!data.readableEnded) throw new Error('DATA ended before its terminating dot');
      // The flag is final only once the stream ended: the last chunk may be the one that crossed the limit.
      if (!oversized && data.sizeExceeded) await drop();
      if (oversized) return { ok: false, reason: 'oversized', dataLength };
      if (!fh) {
        // The whole message is in memory: the writer thread makes it durable in a batch with the others that ended
        // meanwhile (write, fdatasync, rename, one directory fsync; it removes its incoming file on failure).
        await this.writer.write(tmp, this.path(id), pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes));
        return { ok: true, dataLength };
      }
      await flush();
      await fh.sync();
      // Renamed while still open (the descriptor needs no name); the close runs alongside the directory fsync.
      await rename(tmp, this.path(id));
      created = false;
      const f = fh;
      fh = undefined;
      // Bytes are durable and the name is in place: a failing close can no longer lose or corrupt anything.
      await Promise.all([f.close().catch(() => undefined), this.messagesDirSync.sync()]);
      return { ok: true, dataLength };
    } catch (err) {
      if (fh) await fh.close().catch(() => undefined);
      if (created) await rm(tmp, { force: true });
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
      // A small file is read whole in one go, so the delivery and its notification need no further reads.
      const first = size <= SMALL_MESSAGE_BYTES ? size : Math.min(64 * 1024, size);
      let head = Buffer.alloc(0);
      let lf = -1;
      while (lf < 0 && head.length < Math.min(size, MAX_RECORD_BYTES)) {
        const buf = Buffer.allocUnsafe(head.length === 0 ? first : Math.min(64 * 1024, size - head.length));
        const { bytesRead } = await fh.read(buf, 0, buf.length, head.length);
        if (bytesRead === 0) break;
        const from = head.length;
        head = head.length === 0 ? buf.subarray(0, bytesRead) : Buffer.concat([head, buf.subarray(0, bytesRead)]);
        lf = head.indexOf(0x0a, from);
      }
      if (lf < 0) throw new SpoolFormatError(`spool file ${path} has no record line`);
      const record = parseRecordLine(head.subarray(0, lf));
      if (record.envelope.messageId !== messageId) throw new SpoolFormatError(`spool file ${path} holds message ${record.envelope.messageId}`);
      const msg: SpooledMessage = { record, path, dataOffset: lf + 1, dataLength: size - lf - 1 };
      if (head.length === size) msg.data = head.subarray(lf + 1);
      return msg;
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
    await this.messagesDirSync.sync();
    return true;
  }
}
