import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { isMessageId } from '../../shared/ses/message-id.js';
import { SpareFiles, type SpareEvents, type SpareOptions } from './spares.js';
import { spoolFileId, spoolFileName, SpoolFormatError } from './format.js';

/**
 * The spool directory and its upkeep, shared by the writer (accepting side) and the reader (delivering side):
 *
 *   messages/   spool files holding accepted mail (one message, or a batch of small ones), and spares (spares.ts)
 *   incoming/   streamed messages being written; renamed into messages/ once complete and fsync'd
 *   damaged/    files recovery could not read, kept for an operator
 *
 * A file in `messages/` is the unit of durability, of jobs (queue/jobs.ts) and of release: deleted once every rule of
 * every message in it is done.
 */

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

export interface SpoolDirectoryOptions {
  /**
   * Keep empty batch files ready in `messages/` (spares.ts), for the spool's one accepting process (owner.ts); made
   * from `init` on, removed by `close`.
   */
  spareFiles?: boolean | SpareOptions;
  events?: SpareEvents;
}

export class SpoolDirectory {
  readonly messagesDir: string;
  readonly incomingDir: string;
  readonly damagedDir: string;
  /** fsync of `messages/`, shared by the creates, renames and unlinks that finished before it started. */
  readonly messagesDirSync: GroupSync;
  /** Empty batch files ready for the writer; only in the accepting process. */
  readonly spares: SpareFiles | undefined;
  /** `messages/` held open for its fsyncs: one call per group commit instead of open, fsync, close. */
  private messagesDirHandle: Promise<FileHandle> | undefined;
  private closed = false;

  constructor(
    readonly dir: string,
    opts: SpoolDirectoryOptions = {},
  ) {
    this.messagesDir = join(dir, 'messages');
    this.incomingDir = join(dir, 'incoming');
    this.damagedDir = join(dir, 'damaged');
    this.messagesDirSync = new GroupSync(() => this.syncMessagesDir());
    if (opts.spareFiles) this.spares = new SpareFiles(this.messagesDir, () => this.messagesDirSync.sync(), opts.spareFiles === true ? undefined : opts.spareFiles, opts.events ?? {});
  }

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

  /**
   * Creates the directories; for the accepting process (`clearIncoming`, see owner.ts) also drops what a stop left
   * that holds no acknowledged message: partial files in `incoming/`, and empty files in `messages/` — spares, or a
   * batch file whose bytes never reached the disk (its clients were not answered 250; a job added for it early
   * fails on the missing file, see worker/deliver.ts).
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

  /** Removes unused spares and closes what the directory holds open (the `messages/` descriptor). */
  async close(): Promise<void> {
    await this.spares?.close();
    this.closed = true;
    const h = this.messagesDirHandle;
    this.messagesDirHandle = undefined;
    if (h) await h.then((fh) => fh.close()).catch(() => undefined);
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
