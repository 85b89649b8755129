import { statfs } from 'node:fs/promises';

export interface SpaceShortage {
  /** Bytes free for an unprivileged writer on the spool's file system (statfs f_bavail × f_bsize). */
  free: number;
  /** What is needed left free: the spool's reserve, plus a message's declared SIZE and those of messages on their way. */
  need: number;
}

export interface FreeSpaceOptions {
  /** How often statfs is read (in the background, never on a reply's path). */
  refreshMs?: number;
  /** Called when the reserve itself runs short (with the shortage) and when it is back (undefined). */
  onReserve?: (short: SpaceShortage | undefined) => void;
  read?: (dir: string) => Promise<{ bavail: number; bsize: number }>;
  now?: () => number;
}

/**
 * Free space on the spool's file system, for refusing mail at MAIL FROM (452 4.3.1) before its DATA is sent rather
 * than failing its write after the client sent it all: Postfix's rule (queue_minfree, and 1.5 × its message size
 * limit). statfs is read every `refreshMs` by a timer (and again by a check that finds the reading older, should the
 * timer lag), so MAIL FROM uses a reading at most about a second old and never waits for one. Sessions sending at
 * once are added up: a declared SIZE is held from MAIL FROM until that transaction ends, so twenty senders of 40 MB
 * are not all told yes for the room of two (a held message is counted whole until its DATA ends, even as its bytes
 * already show in the reading: the error is on the safe side). An unreadable file system
 * refuses nothing here (the spool's writes report their own errors); a write that still finds the disk full is
 * answered 452 too (server.ts).
 */
export class SpoolFreeSpace {
  private free = Number.POSITIVE_INFINITY;
  private readAt = 0;
  private reading: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reserveShort = false;
  private readonly holds = new Map<string, { bytes: number; live?: () => boolean }>();
  private readonly refreshMs: number;
  private readonly read: (dir: string) => Promise<{ bavail: number; bsize: number }>;
  private readonly now: () => number;

  constructor(
    private readonly dir: string,
    /** 0 turns the check off. */
    private readonly reserveBytes: number,
    private readonly opts: FreeSpaceOptions = {},
  ) {
    this.refreshMs = opts.refreshMs ?? 1_000;
    this.read = opts.read ?? statfs;
    this.now = opts.now ?? Date.now;
  }

  /** The first reading, before the listener opens; then one every refreshMs until stop(). */
  async start(): Promise<void> {
    if (this.reserveBytes === 0) return;
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * A shortage if the spool cannot take a message of `declaredBytes` (SIZE=, else 0) on top of those held and keep its
   * reserve. Otherwise the message is held for `key` (its session) until release(key), or until `live` says its
   * transaction is over (RSET, a new EHLO: the SMTP server has no hook for those). A key's earlier hold is released
   * first (a new MAIL FROM ends the session's last transaction).
   */
  claim(key: string, declaredBytes: number, live?: () => boolean): SpaceShortage | undefined {
    if (this.reserveBytes === 0) return undefined;
    this.release(key);
    if (this.now() - this.readAt >= this.refreshMs) void this.refresh();
    const need = this.reserveBytes + this.heldBytes + declaredBytes;
    if (this.free < need) return { free: this.free, need };
    if (declaredBytes > 0) this.holds.set(key, live ? { bytes: declaredBytes, live } : { bytes: declaredBytes });
    return undefined;
  }

  /** Ends `key`'s hold (its DATA ended, or its session closed). */
  release(key: string): void {
    this.holds.delete(key);
  }

  /** Bytes declared by transactions between MAIL FROM and the end of their DATA. */
  get heldBytes(): number {
    // At most one hold per session: a walk bounded by the connection limit, and only while something is held.
    let held = 0;
    for (const [key, hold] of this.holds) {
      if (hold.live && !hold.live()) this.holds.delete(key);
      else held += hold.bytes;
    }
    return held;
  }

  private refresh(): Promise<void> {
    this.reading ??= this.read(this.dir)
      .then(
        (s) => {
          this.free = s.bavail * s.bsize;
        },
        () => {
          this.free = Number.POSITIVE_INFINITY;
        },
      )
      .finally(() => {
        this.readAt = this.now();
        this.reading = undefined;
        const short = this.free < this.reserveBytes;
        if (short !== this.reserveShort) {
          this.reserveShort = short;
          this.opts.onReserve?.(short ? { free: this.free, need: this.reserveBytes } : undefined);
        }
      });
    return this.reading;
  }
}

/** The write errors of a full file system or quota: the sender should hear 452 4.3.1, not a generic 451. */
export function isOutOfSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
