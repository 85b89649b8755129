import { closeSync, fstatSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { newMessageId } from '../../shared/ses/message-id.js';
import { spoolFileName } from './format.js';
import { SpareMaker } from './spare-maker.js';

/**
 * Spare batch files: empty files created in `messages/` ahead of need, a group at a time, their names made durable by
 * one fsync of the directory per group. A round that writes into a spare waits for the disk once (its fdatasync);
 * a file created in the round needs the directory's fsync as well, a second flush of the disk per round (docs/performance.md#spare-files).
 *
 * Spares are created in a thread of their own, a group at a time (spare-maker.ts), and handed over open. Under load a
 * create waits for the disk (ext4 allocates the inode in blocks that the rounds' flushes are writing out;
 * docs/performance.md#spare-files), so creating them from the event loop stalled every session; and through the
 * thread pool each create cost two cross-thread wake-ups. A group's completion waits for a turn of a busy event loop,
 * so the reserve is sized for that: 48 ready before a group of 64 is made (a round with none ready creates its own
 * file, as without spares).
 *
 * A spare is named by an id of its own (minted like a message id, never a message's), which becomes the batch file's
 * id. Until used it is empty: an empty file in `messages/` holds no message and is never delivered; the accepting
 * process removes the ones a crash left behind when it starts (Spool.init) and its own unused ones when it stops.
 * Only the spool's one accepting process makes spares (see owner.ts), so nobody else writes into them.
 */

export interface Spare {
  id: string;
  /** Open for writing; the taker closes it. */
  fd: number;
}

/** `low`: a group is made when fewer are ready; `group`: spares made at a time. */
export interface SpareOptions {
  low: number;
  group: number;
  /** After a failed create or directory fsync, no spares are made for this long. */
  retryMs: number;
}

/**
 * What an operator needs to hear about spares (the gateway logs these and counts batch files by kind): making them
 * failed — none are made for `retryMs`, and rounds create their own files meanwhile (a second disk flush each) — or
 * one was found removed, moved or written by someone else.
 */
export interface SpareEvents {
  failed?(during: 'create' | 'directory fsync', err: Error): void;
  /** `path`: the spare found gone or foreign. */
  lost?(path: string): void;
}

/** Spares made at a time (one directory fsync each). */
export const SPARE_GROUP = 64;

export class SpareFiles {
  /** Spares whose names are durable, ready to be written. */
  private ready: Spare[] = [];
  private readonly maker = new SpareMaker();
  /** Every spare this process made and has not handed out: ready, or being made. */
  private readonly unused = new Set<string>();
  private making = false;
  private refillScheduled = false;
  private retryAt = 0;
  private closed = false;

  constructor(
    private readonly messagesDir: string,
    /** fsync of `messages/` (the spool's group commit, shared with its renames and unlinks). */
    private readonly syncMessagesDir: () => Promise<void>,
    private readonly opts: SpareOptions = { low: 48, group: SPARE_GROUP, retryMs: 1_000 },
    private readonly events: SpareEvents = {},
  ) {}

  /** True for a spare this process made and has not handed out (recovery leaves those alone). */
  has(id: string): boolean {
    return this.unused.has(id);
  }

  /** A spare whose name is durable, or undefined: the caller then creates its file and syncs the directory itself. */
  take(): Spare | undefined {
    const spare = this.ready.pop();
    if (spare) this.unused.delete(spare.id);
    if (this.ready.length < this.opts.low) this.refillSoon();
    return spare;
  }

  /** After the round that took a spare has issued its writes and flush. */
  private refillSoon(): void {
    if (this.refillScheduled || this.making) return;
    this.refillScheduled = true;
    setImmediate(() => {
      this.refillScheduled = false;
      void this.refill();
    });
  }

  /**
   * Makes a group when fewer than `low` are ready and none is being made. A failing create (disk full, too many
   * files) stops making spares for `retryMs`; rounds create their own files meanwhile, and their own errors reach
   * their clients.
   */
  async refill(): Promise<void> {
    if (this.making || this.closed || this.ready.length >= this.opts.low || Date.now() < this.retryAt) return;
    this.making = true;
    let made: Spare[] = [];
    try {
      const ids = Array.from({ length: this.opts.group }, () => newMessageId());
      for (const id of ids) this.unused.add(id);
      const { fds, error } = await this.maker.make(ids.map((id) => join(this.messagesDir, spoolFileName(id))));
      made = fds.map((fd, i) => ({ id: ids[i]!, fd }));
      for (const id of ids.slice(fds.length)) this.unused.delete(id);
      if (error) {
        this.retryAt = Date.now() + this.opts.retryMs;
        this.events.failed?.('create', error);
      }
      if (made.length === 0) return;
      try {
        await this.syncMessagesDir();
      } catch (err) {
        this.retryAt = Date.now() + this.opts.retryMs;
        this.events.failed?.('directory fsync', err as Error);
        await this.discard(made);
        return;
      }
      if (this.closed) await this.discard(made);
      else this.ready.push(...made);
    } finally {
      this.making = false;
    }
  }

  /**
   * A spare was found removed, moved or written by someone else (most likely the others were too): the ready ones
   * are given up — removed if still empty — and a new group is made.
   */
  lost(path: string): void {
    this.events.lost?.(path);
    const gone = this.ready;
    this.ready = [];
    void this.discard(gone).then(() => this.refillSoon());
  }

  /** Closes and removes the unused spares (a graceful stop). An empty file left by a crash is removed at the next start. */
  async close(): Promise<void> {
    this.closed = true;
    const gone = this.ready;
    this.ready = [];
    await this.discard(gone);
    // A group being made is discarded by refill itself once its creates and fsync are done.
    while (this.making) await new Promise((r) => setTimeout(r, 5));
    await this.maker.close();
  }

  /**
   * Closes and removes spares; they stay "ours" (kept off by recovery) until their files are gone. One that is no
   * longer empty was written by someone else: left in place (recovery sets it aside if it holds no known message).
   */
  private async discard(spares: Spare[]): Promise<void> {
    const empty = spares.map((s) => {
      let size = 0;
      try {
        size = fstatSync(s.fd).size;
        closeSync(s.fd);
      } catch {
        // Each spare's descriptor is closed once, here or by the round that took it; nothing else to do.
      }
      return size === 0;
    });
    await Promise.all(spares.map((s, i) => (empty[i] ? rm(join(this.messagesDir, spoolFileName(s.id)), { force: true }).catch(() => undefined) : undefined)));
    for (const s of spares) this.unused.delete(s.id);
  }
}

