import { createHash } from 'node:crypto';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDir } from '../spool/directory.js';

/**
 * The replay checkpoint: a file in the replay's spool directory with one line per object (rule, bucket, key) of every
 * message handed to the accept path — `accepting` before the accept, `accepted` once the accept path took it — so
 * that a second run, or a run after a crash, knows what this spool already has without asking S3.
 *
 * Lines go out in rounds (every line recorded while the previous write and fdatasync ran goes out in the next one):
 * one disk flush per round, not per message. An `accepting` line is on disk before its accept begins (the accept
 * waits for it); an `accepted` line is not waited for. So after a crash an object is in one of three states here:
 * accepted (an earlier run's accept took it), begun (`accepting` without `accepted`: a crash or a refusal came between,
 * and it may have been stored — intake-target.ts asks the spool and the bucket), or unknown to this spool.
 *
 * A file cut short by a crash ends in a partial line: it is cut back to the last whole line before anything is
 * appended, and a line that does not read is ignored — the object it named counts as unknown, which costs a HEAD.
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
  /** Objects earlier runs' accepts took. */
  known: number;
  /** Objects whose accept was begun and not recorded. */
  begun: number;
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
    /** Tags of the objects earlier runs' accepts took (read at open; this run's own lines are not added). */
    private readonly known: Set<string>,
    /** Tags of the objects whose accept an earlier run began and did not record. */
    private readonly begun: Set<string>,
  ) {}

  /** Opens (or creates) the checkpoint file and reads the objects it names. */
  static async open(path: string): Promise<CheckpointOpened> {
    const existed = await stat(path).then(() => true, () => false);
    const fh = await open(path, 'a+');
    try {
      const known = new Set<string>();
      const begun = new Set<string>();
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
            const e = JSON.parse(line) as Partial<CheckpointEntry> & { state?: string };
            if (typeof e.bucket !== 'string' || typeof e.key !== 'string') throw new Error('no bucket or key');
            const tag = objectTag(e.bucket, e.key);
            if (e.state === 'accepting') {
              if (!known.has(tag)) begun.add(tag);
            } else {
              known.add(tag);
              begun.delete(tag);
            }
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
      return { checkpoint: new Checkpoint(path, fh, known, begun), known: known.size, begun: begun.size, unreadable };
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
  }

  /** Whether an earlier run's accept took this object (`objectTag`). */
  has(tag: string): boolean {
    return this.known.has(tag);
  }

  /** Whether an earlier run began an accept for this object and did not record its end (a crash, a refusal). */
  wasBegun(tag: string): boolean {
    return this.begun.has(tag);
  }

  /** Before an accept: the objects it is for; resolves once their lines are on disk (the accept must wait for it). */
  begin(entries: CheckpointEntry[]): Promise<void> {
    return this.append(entries, 'accepting');
  }

  /**
   * After an accept: the objects the accept path took; resolves once on disk. Callers need not wait: the lines go
   * out in the next round either way, and `close` waits for them.
   */
  record(entries: CheckpointEntry[]): Promise<void> {
    return this.append(entries, 'accepted');
  }

  private append(entries: CheckpointEntry[], state: 'accepting' | 'accepted'): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    for (const e of entries) this.pending.push(Buffer.from(`${JSON.stringify({ state, messageId: e.messageId, rule: e.rule, bucket: e.bucket, key: e.key })}\n`));
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
        // Nothing more is begun without its line (the accepts that wait for one are refused): stop writing.
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
