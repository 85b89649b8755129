import { createHash } from 'node:crypto';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDir } from '../spool/directory.js';

/**
 * The replay checkpoint: one line per object a message was accepted for (its rule, bucket and key), appended to a
 * file in the replay's spool directory once the accept path took the message, so that a second run — or a run after
 * a crash — skips it without asking S3.
 *
 * Lines are written in rounds (every line recorded while the previous write and fdatasync ran goes out in the next
 * one): one disk flush per round, not per message, and never in an accept's way — the accept path does not wait for
 * its line. That leaves a window: a message accepted just before a crash may have no line. The checkpoint is not
 * what guards it (intake-target.ts: the replay spool and a HEAD of each key do); it saves a second run the requests.
 *
 * A file cut short by a crash ends in a partial line: it is cut back to the last whole line before anything is
 * appended, and a line that does not read is ignored — what it named is found again by the other two checks.
 */

/** A compact, exact-enough name for an object: 128 bits of SHA-256 over bucket and key, as a 16-character string. */
export function objectTag(bucket: string, key: string): string {
  // A bucket name never holds a newline, so bucket + "\n" + key names one object.
  return createHash('sha256').update(bucket).update('\n').update(key).digest().toString('latin1', 0, 16);
}

export interface CheckpointEntry {
  messageId: string;
  rule: string;
  bucket: string;
  key: string;
}

export interface CheckpointOpened {
  checkpoint: Checkpoint;
  /** Objects read from earlier runs' lines. */
  known: number;
  /** Lines that did not read (a crash mid-line, damage): ignored. */
  unreadable: number;
}

export class Checkpoint {
  private pending: Buffer[] = [];
  private pendingWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private writing: Promise<void> | undefined;
  private failure: Error | undefined;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    /** Tags of the objects earlier runs recorded (read at open; this run's own lines are not added). */
    private readonly known: Set<string>,
  ) {}

  /** Opens (or creates) the checkpoint file and reads the objects it names. */
  static async open(path: string): Promise<CheckpointOpened> {
    const existed = await stat(path).then(() => true, () => false);
    const fh = await open(path, 'a+');
    try {
      const known = new Set<string>();
      let unreadable = 0;
      let wholeBytes = 0;
      let position = 0;
      let rest = Buffer.alloc(0);
      const chunk = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        const buf = rest.length ? Buffer.concat([rest, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
        let start = 0;
        for (let lf = buf.indexOf(0x0a); lf >= 0; lf = buf.indexOf(0x0a, start)) {
          const line = buf.toString('utf8', start, lf);
          wholeBytes += lf + 1 - start;
          start = lf + 1;
          if (line === '') continue;
          try {
            const e = JSON.parse(line) as Partial<CheckpointEntry>;
            if (typeof e.bucket !== 'string' || typeof e.key !== 'string') throw new Error('no bucket or key');
            known.add(objectTag(e.bucket, e.key));
          } catch {
            unreadable++;
          }
        }
        rest = Buffer.from(buf.subarray(start));
      }
      if (rest.length > 0) {
        // Cut short mid-line: appending after it would glue the next line to it.
        unreadable++;
        await fh.truncate(wholeBytes);
        await fh.datasync();
      }
      if (!existed) await fsyncDir(dirname(path));
      return { checkpoint: new Checkpoint(path, fh, known), known: known.size, unreadable };
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  /** Whether an earlier run recorded this object (`objectTag`). */
  has(tag: string): boolean {
    return this.known.has(tag);
  }

  /**
   * Appends the objects a message was accepted for; resolves once they are on disk. Callers need not wait: the lines
   * go out in the next round either way, and `close` waits for them.
   */
  record(entries: CheckpointEntry[]): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    for (const e of entries) this.pending.push(Buffer.from(`${JSON.stringify({ messageId: e.messageId, rule: e.rule, bucket: e.bucket, key: e.key })}\n`));
    const done = new Promise<void>((resolve, reject) => this.pendingWaiters.push({ resolve, reject }));
    done.catch(() => undefined);
    this.writing ??= this.rounds();
    return done;
  }

  /** Writes rounds until nothing is pending. */
  private async rounds(): Promise<void> {
    // Lets the other accepts of this event-loop turn join the first round.
    await new Promise((r) => setImmediate(r));
    while (this.pending.length > 0) {
      const lines = this.pending;
      const waiters = this.pendingWaiters;
      this.pending = [];
      this.pendingWaiters = [];
      try {
        const all = Buffer.concat(lines);
        for (let off = 0; off < all.length; ) {
          const { bytesWritten } = await this.fh.write(all, off, all.length - off);
          if (bytesWritten <= 0) throw new Error(`could not append to ${this.path}`);
          off += bytesWritten;
        }
        await this.fh.datasync();
        for (const w of waiters) w.resolve();
      } catch (err) {
        // A checkpoint that cannot be written costs later runs their HEAD requests, nothing else: stop writing it.
        this.failure = err as Error;
        for (const w of [...waiters, ...this.pendingWaiters]) w.reject(this.failure);
        this.pending = [];
        this.pendingWaiters = [];
      }
    }
    this.writing = undefined;
  }

  /** Why the checkpoint stopped being written, if it did. */
  get error(): Error | undefined {
    return this.failure;
  }

  /** Waits for every recorded line to be on disk, then closes the file. */
  async close(): Promise<void> {
    while (this.writing) await this.writing;
    await this.fh.close();
  }
}
