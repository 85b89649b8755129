import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Readable } from 'node:stream';
import { isMessageId } from '../../shared/ses/message-id.js';
import { SpareFiles, type SpareEvents, type SpareOptions } from './spares.js';
import { SpoolWriter } from './writer.js';
import { encodeRecordLine, parseRecordLine, spoolFileId, spoolFileName, SpoolFormatError, type SpoolEntry, type SpoolFile, type SpoolRecord } from './format.js';

/**
 * The durable half of "accepted": a message is on disk, fsync'd, and its jobs exist before the client hears 250. A
 * streamed message is written in `incoming/` and renamed into `messages/` once complete and synced (whatever is
 * left in `incoming/` after a crash was never acknowledged and is dropped on start); a batch file is created in
 * `messages/` and its entries carry checksums, because it is visible there before it is durable (writer.ts). A file
 * holds one message (streamed) or a batch of small ones; it is the unit of durability, of jobs (one job or flow per
 * file, queue/jobs.ts) and of release.
 */

/** The record line is small (envelope + rule snapshots); this bounds what is read to find it. */
const MAX_RECORD_BYTES = 4 * 1024 * 1024;
/** Gathered in memory before the first write (per session in DATA): most mail is one write. */
const SMALL_MESSAGE_BYTES = 256 * 1024;
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

export interface SpoolReader {
  /** The message whose entry starts at byte `at` (`length` bytes long, when known); SpoolFormatError when that is not `messageId`'s. */
  entry(at: number, messageId: string, length?: number): Promise<SpooledMessage>;
  close(): Promise<void>;
}

/** `file`: the spool file now holding the message (shared with the other messages of its batch). */
export type ReceiveResult =
  | { ok: true; dataLength: number; file: SpoolFile }
  | { ok: false; reason: 'oversized'; dataLength: number }
  | { ok: false; reason: 'refused'; refusal: Error; dataLength: number };

export class SpoolMissingError extends Error {
  override name = 'SpoolMissingError';
}

/** A job names the message it expects at a place in a file; anything else there is damage, not that message. */
function expectMessage(msg: SpooledMessage, at: number, messageId: string): SpooledMessage {
  if (msg.record.envelope.messageId !== messageId) throw new SpoolFormatError(`spool file ${msg.path} holds message ${msg.record.envelope.messageId} at byte ${at}, not ${messageId}`);
  return msg;
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

/** One fsync of a directory through a descriptor opened for it alone (makes a create, rename or unlink in it durable). */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** For logs and metrics; called synchronously from the spool's paths, so they must be cheap and must not throw. */
export interface SpoolEvents extends SpareEvents {
  /** A batch file was made in a round: written into a spare (one disk flush) or created there (two). */
  batchFile?(file: 'spare' | 'created'): void;
}

export class Spool {
  readonly messagesDir: string;
  readonly incomingDir: string;
  /** fsync of `messages/`, shared by the renames and unlinks that finished before it started. */
  private readonly messagesDirSync: GroupSync;
  /** Whole small messages go to disk through this, in batch files (see writer.ts). */
  private readonly writer: SpoolWriter;
  private readonly spares: SpareFiles | undefined;

  /**
   * `spareFiles`: keep empty batch files ready in `messages/` (spares.ts), for the spool's one accepting process;
   * made from `init` on, removed by `close`. `events`: what the writer and the spares report (SpoolEvents).
   */
  constructor(readonly dir: string, opts: { spareFiles?: boolean | SpareOptions; events?: SpoolEvents } = {}) {
    this.messagesDir = join(dir, 'messages');
    this.incomingDir = join(dir, 'incoming');
    this.messagesDirSync = new GroupSync(() => this.syncMessagesDir());
    const events = opts.events ?? {};
    if (opts.spareFiles) this.spares = new SpareFiles(this.messagesDir, () => this.messagesDirSync.sync(), opts.spareFiles === true ? undefined : opts.spareFiles, events);
    this.writer = new SpoolWriter(this.messagesDir, () => this.messagesDirSync.sync(), this.spares, events);
  }

  /** True for a file of this process's writer that has no jobs yet by design: a spare, or one on its way to disk. */
  isBeingWritten(fileId: string): boolean {
    return this.writer.owns(fileId);
  }

  /** `messages/` held open for its fsyncs: one call per group commit instead of open, fsync, close. */
  private messagesDirHandle: Promise<FileHandle> | undefined;

  private closed = false;

  private async syncMessagesDir(): Promise<void> {
    // After close (a late release or abandon): a descriptor for this fsync only.
    if (this.closed) return fsyncDir(this.messagesDir);
    const opening = (this.messagesDirHandle ??= open(this.messagesDir, 'r'));
    try {
      await (await opening).sync();
    } catch (err) {
      // Next time from a fresh descriptor (e.g. the directory was replaced); this fsync's callers see the error.
      if (this.messagesDirHandle === opening) this.messagesDirHandle = undefined;
      void opening.then((fh) => fh.close()).catch(() => undefined);
      throw err;
    }
  }

  /** Removes unused spares and closes what the spool holds open (the `messages/` descriptor). */
  async close(): Promise<void> {
    await this.spares?.close();
    this.closed = true;
    const h = this.messagesDirHandle;
    this.messagesDirHandle = undefined;
    if (h) await h.then((fh) => fh.close()).catch(() => undefined);
  }

  /**
   * Creates the directories; for the accepting process (`clearIncoming`, see owner.ts) also drops what a stop left
   * that holds no acknowledged message: partial files in `incoming/`, and empty files in `messages/` — spares, or a
   * batch file whose bytes never reached the disk (its clients were not answered 250; a job added for it early
   * fails on the missing file, see deliver.ts).
   */
  async init(opts: { clearIncoming: boolean }): Promise<void> {
    await mkdir(this.messagesDir, { recursive: true });
    await mkdir(this.incomingDir, { recursive: true });
    if (opts.clearIncoming) {
      for (const f of await readdir(this.incomingDir)) await rm(join(this.incomingDir, f), { force: true });
      for (const { id, size } of await this.sizes()) if (size === 0) await rm(this.path(id), { force: true });
      void this.spares?.refill();
    }
  }

  /** The file id in a job's spool file name; SpoolFormatError when the name is not one of ours. */
  fileIdOf(name: string): string {
    const id = spoolFileId(name);
    if (!id || !isMessageId(id)) throw new SpoolFormatError(`"${name}" is not a spool file name`);
    return id;
  }

  path(fileId: string): string {
    return join(this.messagesDir, spoolFileName(fileId));
  }

  /**
   * Streams DATA to disk behind the record line, fsyncs the file, renames it into `messages/` and fsyncs that
   * directory — and only then resolves. `sizeExceeded` is polled per chunk: once true, writing stops and the rest of
   * DATA is drained and dropped, so an oversized message never costs more than the limit in disk and nothing in
   * memory.
   *
   * Fewer trips to the disk, same durability: the first SMALL_MESSAGE_BYTES are gathered in memory, so a typical
   * message is written whole by the writer into one batch file with the others that ended meanwhile
   * (writer.ts); a big one streams on from there into a file of its own, is fsync'd, renamed, and shares a directory
   * fsync with the renames that finished before it started (group commit, see GroupSync).
   *
   * `onWritten`: for a message written whole into a batch file, called with that file once its bytes are in it,
   * while the disk still flushes (see writer.ts); from then on, should the flush fail, the file stays and removing
   * it is the caller's decision. Not called for a streamed message (its file is named only once durable).
   *
   * `check`: judges DATA by its first bytes (the first chunk); an error it returns refuses the message like an
   * oversized one — nothing written, the rest drained — and comes back as the result's `refusal`.
   */
  async receive(
    record: SpoolRecord,
    data: Readable & { sizeExceeded?: boolean },
    onWritten?: (file: SpoolFile) => void,
    check?: (head: Buffer) => Error | undefined,
  ): Promise<ReceiveResult> {
    const id = record.envelope.messageId;
    const tmp = join(this.incomingDir, spoolFileName(id));
    let fh: FileHandle | undefined;
    let created = false;
    // DATA gathered in memory; the record line is written first only if the message turns out to need streaming.
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let dataLength = 0;
    let dropped = false;
    let refusal: Error | undefined;
    const flush = async () => {
      if (!fh) {
        fh = await open(tmp, 'wx');
        created = true;
        pending.unshift(encodeRecordLine(record));
        pendingBytes += pending[0]!.length;
      }
      const buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      await writeAll(fh, buf);
    };
    const drop = async () => {
      dropped = true;
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
        const first = dataLength === 0 && chunk.length > 0;
        dataLength += chunk.length;
        if (dropped) continue;
        if (first && check && (refusal = check(chunk))) {
          await drop();
          continue;
        }
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
      if (!dropped && data.sizeExceeded) await drop();
      if (refusal) return { ok: false, reason: 'refused', refusal, dataLength };
      if (dropped) return { ok: false, reason: 'oversized', dataLength };
      if (!fh) {
        // The whole message is in memory: the writer makes it durable in a batch file with the others that ended
        // meanwhile (written into a spare and fdatasync'd, or created and fdatasync'd alongside a directory fsync; on
        // failure removed, unless already handed to onWritten).
        const file = await this.writer.write(record, pending, pendingBytes, onWritten);
        return { ok: true, dataLength, file };
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
      return { ok: true, dataLength, file: { id, entries: [{ record, at: 0 }] } };
    } catch (err) {
      if (fh) await fh.close().catch(() => undefined);
      if (created) await rm(tmp, { force: true });
      throw err;
    }
  }

  private async openHandle(fileId: string): Promise<{ fh: FileHandle; path: string }> {
    const path = this.path(fileId);
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
   * A spool file held open for reading several of its messages (a delivery job): one open for the job, one read per
   * message. SpoolMissingError when there is no such file.
   */
  async reader(fileId: string): Promise<SpoolReader> {
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
      entry: async (at, messageId, length) => {
        return expectMessage(await this.readEntry(from, path, size, at, length), at, messageId);
      },
      close: () => fh.close(),
    };
  }

  /** Every message of a spool file, in order (for recovery). */
  async openFile(fileId: string): Promise<SpoolFile> {
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

  /** Where recovery puts spool files it cannot read (torn by a crash, or damaged): kept for an operator, never deleted. */
  get damagedDir(): string {
    return join(this.dir, 'damaged');
  }

  /**
   * Moves a file out of `messages/` into `damaged/` (and syncs both directories): recovery stops meeting it on every
   * pass, and nothing is thrown away. Returns the new path.
   */
  async setAside(fileId: string): Promise<string> {
    await mkdir(this.damagedDir, { recursive: true });
    const to = join(this.damagedDir, spoolFileName(fileId));
    await rename(this.path(fileId), to);
    await fsyncDir(this.damagedDir);
    await this.messagesDirSync.sync();
    return to;
  }

  /** Ids of the files in `messages/` (in no particular order), but for this process's unused spares. */
  async list(): Promise<string[]> {
    const ids = (await readdir(this.messagesDir)).map(spoolFileId);
    return ids.filter((id): id is string => id !== undefined && isMessageId(id) && !this.spares?.has(id));
  }

  /**
   * The files of `list()` with their sizes and last write, stat'ed eight at a time; one gone meanwhile counts 0
   * bytes.
   */
  async sizes(): Promise<Array<{ id: string; size: number; mtimeMs: number }>> {
    const ids = await this.list();
    const out: Array<{ id: string; size: number; mtimeMs: number }> = [];
    for (let i = 0; i < ids.length; i += 8) {
      const batch = ids.slice(i, i + 8);
      const stats = await Promise.all(batch.map((id) => stat(this.path(id)).then((s) => ({ size: s.size, mtimeMs: s.mtimeMs }), () => ({ size: 0, mtimeMs: 0 }))));
      batch.forEach((id, k) => out.push({ id, ...stats[k]! }));
    }
    return out;
  }

  /** How many files in `messages/` hold messages (empty ones hold none: spares, see spares.ts). */
  async countSpooled(): Promise<number> {
    return (await this.sizes()).filter((f) => f.size > 0).length;
  }

  /** Deletes a delivered file; the directory is synced so a crash cannot bring it back for a second delivery. */
  async remove(fileId: string): Promise<boolean> {
    let removed = true;
    try {
      await unlink(this.path(fileId));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Gone already — perhaps by an earlier attempt whose directory fsync failed: sync anyway.
      removed = false;
    }
    await this.messagesDirSync.sync();
    return removed;
  }

}
