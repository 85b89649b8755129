import { closeSync, fdatasync, fstatSync, openSync, rmSync, statSync, writev, writeSync, writevSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { encodeRecordLine, spoolFileName, type SpoolFile, type SpoolRecord } from './format.js';
import type { Spare, SpareFiles } from './spares.js';
import type { SealedBytes } from './seal.js';

/** Seals a file's plaintext (its entries) for the file of that id (seal.ts): the spool's encryption step, when on. */
export type Sealer = (fileId: string, plaintext: Buffer[], bytes: number) => Promise<SealedBytes>;

/** Reported per batch file made in a round: written into a spare (one disk flush) or created there (two). */
export interface BatchEvents {
  batchFile?(file: 'spare' | 'created'): void;
}

/**
 * Durable writes of whole small messages, in batch files, one round at a time (group commit).
 *
 * Why batch files: the disk's cost is one flush per fdatasync'd file, whatever its size, and that capped the
 * accept rate (docs/performance.md#batch-spool-files). So every message whose
 * DATA ended while the previous round was on disk goes into one file (up to MAX_FILE_ENTRIES / MAX_FILE_BYTES; a
 * bigger backlog makes several files in the same round), written with one writev of the buffers smtp-server handed
 * over (no copy).
 *
 * One flush of the disk per round where possible: a batch file is written into a spare (spares.ts) — an empty file
 * already in `messages/` whose name is durable — so the round waits only for its fdatasync. When no spare is ready
 * the file is created straight in `messages/`, and its fdatasync and the fsync of `messages/` (its new name) run at
 * once. A message is reported durable only once its round's waits are done, so a `250` means what it always meant:
 * its bytes and its name are on disk. Until then the file is visible but may be torn by a crash, so each entry's
 * record carries its DATA's CRC-32 (and its length): a reader refuses a torn entry (SpoolFormatError), and recovery
 * sets a torn file that has no jobs aside.
 *
 * A write resolves as soon as the message's bytes are in its file (readable, not yet durable), with the file and a
 * promise of its durability: the intake adds the file's jobs to Redis while the disk flushes, instead of after (the
 * 250 still waits for both). From then on the file is the caller's: should the flush fail, `durable` rejects but the
 * file stays, because its jobs may already be in Redis (intake/intake.ts decides).
 *
 * Only the two waits for the disk go to libuv's thread pool. Create, write (a copy into the page cache, up to
 * SYNC_WRITE_MAX_BYTES) and close are made from the event loop: each trip to the pool and back costs two thread
 * wake-ups, and on a busy two-core machine those waits for a core were the tail of the time to 250. A worker thread
 * for the whole round was tried too: posting the bytes to it cost more than the calls it saved.
 *
 * With spool encryption on, each file of the round is sealed whole (seal.ts) once its id is known and before it is
 * written: one Encryption SDK message per file, not per message. Its entries keep their plaintext offsets (`at`,
 * `length`); what is on disk is the sealed line and the ciphertext, whose CRC-32 the line carries for torn files.
 *
 * A file whose own step fails before its bytes are in fails all its messages' writes, and is removed here (best
 * effort — one that survives a crash whole is delivered by recovery: at-least-once, as when a Redis add times out);
 * a failed flush or directory fsync afterwards rejects their `durable`, and the file is left to the caller.
 */

/** Messages per batch file at most: bounds what one failed delivery keeps on disk and what recovery re-reads. */
const MAX_FILE_ENTRIES = 128;
const MAX_FILE_BYTES = 8 * 1024 * 1024;
/** A batch file up to this size is written from the event loop; a bigger one (a backlog) from the thread pool. */
const SYNC_WRITE_MAX_BYTES = 1024 * 1024;

const fdatasyncAsync = promisify(fdatasync);
const writevAsync = (fd: number, buffers: Buffer[]) => new Promise<number>((resolve, reject) => writev(fd, buffers, 0, (err, n) => (err ? reject(err) : resolve(n))));

interface Pending {
  record: SpoolRecord;
  /** DATA as received, in the chunks the caller handed over. */
  data: Buffer[];
  dataLength: number;
  written: (w: WrittenFile) => void;
  failed: (err: Error) => void;
}

/** A message's bytes are in `file`; `durable` settles once the disk has them and their name (never rejects unhandled). */
export interface WrittenFile {
  file: SpoolFile;
  durable: Promise<void>;
}

interface FileJob {
  file: SpoolFile;
  members: Pending[];
  path: string;
  buffers: Buffer[];
  bytes: number;
  /** Each member's durability, settled when the round's waits are done; set when the file is handed out. */
  durable: Array<{ resolve: () => void; reject: (err: Error) => void }> | undefined;
  /** Written into a spare (open, its name durable already); undefined once it turned out to be gone. */
  spare: Spare | undefined;
  /** The file id `buffers` are sealed for, when sealed; and its plaintext, should the file change its id. */
  sealedFor?: string;
  plaintext?: { buffers: Buffer[]; bytes: number };
}

async function writevAll(fd: number, buffers: Buffer[], bytes: number): Promise<void> {
  let written = bytes <= SYNC_WRITE_MAX_BYTES ? writevSync(fd, buffers, 0) : await writevAsync(fd, buffers);
  if (written === bytes) return;
  // A short write is how a file system that fills up (or a quota that runs out) partway answers: writing the rest
  // brings back the error itself (ENOSPC, EDQUOT), which decides the client's reply (452 for a full disk).
  const all = Buffer.concat(buffers, bytes);
  while (written < bytes) {
    const n = writeSync(fd, all, written, bytes - written, written);
    if (n <= 0) throw new Error(`spool write stopped after ${written} of ${bytes} bytes`);
    written += n;
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Nothing to lose at this point: the file is durable and renamed, or about to be removed.
  }
}

/**
 * A spare's descriptor, if it can be used: still the file named `path` in `messages/` (bytes written into a removed
 * or moved file would be lost with a 250 said for them — an idle spare is an empty file, the kind a cleanup job
 * removes) and still empty (one that is not was written by someone else: left alone). Otherwise it is closed and the
 * round creates a file instead.
 */
function usableSpare(spare: Spare, path: string): number | undefined {
  try {
    const open = fstatSync(spare.fd);
    const named = statSync(path, { throwIfNoEntry: false });
    if (open.nlink > 0 && open.size === 0 && named && named.ino === open.ino && named.dev === open.dev) return spare.fd;
  } catch {
    // A descriptor that cannot even be stat'ed is no place for mail.
  }
  closeQuietly(spare.fd);
  return undefined;
}

export class BatchWriter {
  private queue: Pending[] = [];
  private busy = false;
  /** Ids of the files of the round on its way to disk: visible in `messages/`, without jobs yet (recovery keeps off). */
  private readonly writing = new Set<string>();

  constructor(
    private readonly messagesDir: string,
    /** fsync of `messages/`, shared with the other renames and unlinks there (spool.ts GroupSync). */
    private readonly syncMessagesDir: () => Promise<void>,
    private readonly spares?: SpareFiles,
    private readonly events: BatchEvents = {},
    /** Seals each file before it is written (spool encryption); absent: files hold their entries in plaintext. */
    private readonly seal?: Sealer,
  ) {}

  /** True while `id` is a file this writer is writing, or one of its spares. */
  owns(id: string): boolean {
    return this.writing.has(id) || (this.spares?.has(id) ?? false);
  }

  /**
   * Resolves as soon as the message's bytes are in a batch file (before the disk is waited for), with that file and
   * its durability; rejects when they never got there.
   */
  write(record: SpoolRecord, data: Buffer[], dataLength: number): Promise<WrittenFile> {
    return new Promise<WrittenFile>((written, failed) => {
      this.queue.push({ record, data, dataLength, written, failed });
      if (!this.busy) void this.rounds();
    });
  }

  /** Runs rounds while messages wait: everything queued during a round goes out in the next. */
  private async rounds(): Promise<void> {
    this.busy = true;
    try {
      while (this.queue.length > 0) {
        const pending = this.queue;
        this.queue = [];
        await this.round(pending);
      }
    } finally {
      this.busy = false;
    }
  }

  /** Cuts the queue into batch files; each entry is its record line (with its DATA length), then its DATA. */
  private files(pending: Pending[]): FileJob[] {
    const out: FileJob[] = [];
    let cur: FileJob | undefined;
    for (const p of pending) {
      let crc = 0;
      for (const chunk of p.data) crc = crc32(chunk, crc);
      const line = encodeRecordLine({ ...p.record, dataLength: p.dataLength, dataCrc32: crc });
      const size = line.length + p.dataLength;
      if (!cur || cur.members.length >= MAX_FILE_ENTRIES || cur.bytes + size > MAX_FILE_BYTES) {
        const id = p.record.envelope.messageId;
        cur = { file: { id, entries: [] }, members: [], path: join(this.messagesDir, spoolFileName(id)), buffers: [], bytes: 0, durable: undefined, spare: undefined };
        out.push(cur);
      }
      cur.file.entries.push({ record: p.record, at: cur.bytes, length: size });
      cur.members.push(p);
      cur.buffers.push(line, ...p.data);
      cur.bytes += size;
    }
    return out;
  }

  /** The file's bytes are in it: each member's write resolves, with the durability the round will settle. */
  private handOut(f: FileJob): void {
    f.durable = f.members.map((p) => {
      let settle!: { resolve: () => void; reject: (err: Error) => void };
      const durable = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
      durable.catch(() => undefined); // the caller awaits it; a caller that gave up must not crash the process
      p.written({ file: f.file, durable });
      return settle;
    });
  }

  private async round(pending: Pending[]): Promise<void> {
    let files: FileJob[];
    try {
      files = this.files(pending);
    } catch (err) {
      for (const p of pending) p.failed(err as Error);
      return;
    }
    // A spare where one is ready (from here on nothing throws before the round owns it); else the file is created
    // under its first message's id.
    for (const f of files) {
      const spare = this.spares?.take();
      if (spare) {
        f.spare = spare;
        f.file.id = spare.id;
        f.path = join(this.messagesDir, spoolFileName(spare.id));
      }
      this.writing.add(f.file.id);
    }
    try {
      await this.roundOf(this.seal ? await this.sealed(files) : files);
    } finally {
      for (const f of files) this.writing.delete(f.file.id);
    }
  }

  /**
   * Each file sealed for its id (the spare's, or its first message's), all at once. A file whose sealing fails (no
   * data key: KMS unreachable) fails its messages' writes, and its spare goes — closed and removed, still empty.
   */
  private async sealed(files: FileJob[]): Promise<FileJob[]> {
    const done = await Promise.all(files.map((f) => this.sealFile(f).then(() => undefined, (err: Error) => err)));
    return files.filter((f, i) => {
      const err = done[i];
      if (!err) return true;
      if (f.spare) {
        closeQuietly(f.spare.fd);
        try {
          rmSync(f.path, { force: true });
        } catch {
          // An empty file holds no message: removed at the next start at the latest.
        }
      }
      for (const p of f.members) p.failed(err);
      return false;
    });
  }

  private async sealFile(f: FileJob): Promise<void> {
    const plaintext = f.plaintext ?? { buffers: f.buffers, bytes: f.bytes };
    const sealed = await this.seal!(f.file.id, plaintext.buffers, plaintext.bytes);
    f.plaintext = plaintext;
    f.sealedFor = f.file.id;
    f.buffers = [sealed.line, ...sealed.ciphertext];
    f.bytes = sealed.bytes;
    f.file.sealed = true;
  }

  private async roundOf(files: FileJob[]): Promise<void> {
    // Each file: open its spare, or create it in messages/; write; then every file's fdatasync, alongside one fsync
    // of messages/ if any file was created here (it starts after the creates, so that it carries their names).
    const created = files.map((f): number | Error => {
      try {
        if (f.spare) {
          const fd = usableSpare(f.spare, f.path);
          if (fd !== undefined) return fd;
          // Removed or written behind our back: the other spares are suspect too. The file is created under its
          // first message's id instead (the spare's name is left to whoever took it).
          f.spare = undefined;
          this.spares?.lost(f.path);
          this.writing.delete(f.file.id);
          f.file.id = f.members[0]!.record.envelope.messageId;
          f.path = join(this.messagesDir, spoolFileName(f.file.id));
          this.writing.add(f.file.id);
        }
        return openSync(f.path, 'wx');
      } catch (err) {
        return err as Error;
      }
    });
    const dirSync = created.some((c, i) => typeof c === 'number' && !files[i]!.spare)
      ? this.syncMessagesDir().then(
          () => undefined,
          // The errno stays on it: a full disk is answered 452, not 451.
          (err: NodeJS.ErrnoException) => Object.assign(new Error(`fsync of the messages directory failed: ${err.message}`), { code: err.code }),
        )
      : Promise.resolve(undefined);
    const results = await Promise.all(
      files.map(async (f, i): Promise<Error | undefined> => {
        const fd = created[i]!;
        if (typeof fd !== 'number') return fd;
        try {
          // A spare that turned out gone left the file its first message's id: sealed again, for that id.
          if (f.sealedFor !== undefined && f.sealedFor !== f.file.id) await this.sealFile(f);
          await writevAll(fd, f.buffers, f.bytes);
          const flushed = fdatasyncAsync(fd);
          this.handOut(f);
          await flushed;
          // No check that the name is still this file's: from handOut on its jobs are in Redis, and a fast delivery
          // may already have stored the messages and released (unlinked) the file while the disk flushed — the 250
          // is true. A spare removed while idle is caught before it is written (usableSpare); once it holds mail
          // only its own delivery removes it.
          closeQuietly(fd);
          return undefined;
        } catch (err) {
          closeQuietly(fd);
          if (!f.durable) await rm(f.path, { force: true }).catch(() => undefined);
          return err as Error;
        }
      }),
    );
    const dirErr = await dirSync;
    if (dirErr) {
      // The files created in this round are not durable by name: their clients hear 451 and resend. A spare's name
      // was durable before the round: its messages stand. Every file that failed here was handed out already (its
      // jobs may be in Redis), so removing it is the caller's decision.
      files.forEach((f, i) => {
        if (results[i] === undefined && !f.spare) results[i] = dirErr;
      });
    }
    files.forEach((f, i) => {
      const err = results[i];
      if (!err) this.events.batchFile?.(f.spare ? 'spare' : 'created');
      if (f.durable) for (const d of f.durable) err ? d.reject(err) : d.resolve();
      else for (const p of f.members) p.failed(err ?? new Error('spool batch file was never written'));
    });
  }
}
