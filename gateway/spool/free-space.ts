import { statfs } from 'node:fs/promises';

export interface SpaceShortage {
  /** Bytes free for an unprivileged writer on the spool's file system (statfs f_bavail × f_bsize). */
  free: number;
  /** What this message needs left free: the spool's reserve plus its declared SIZE. */
  need: number;
}

/**
 * Free space on the spool's file system, for refusing mail at MAIL FROM (452 4.3.1) before its DATA is sent, rather
 * than failing its write after the client sent it all: Postfix's rule (queue_minfree, and 1.5 × its message size
 * limit). Read with statfs at most every `refreshMs`, in the background: MAIL FROM uses the last reading, so a
 * slow file system never delays a reply. An unreadable file system refuses nothing here (the spool's writes report
 * their own errors); a reading older than a write is no promise either way — a write that still finds the disk full
 * is answered 452 too (server.ts).
 */
export class SpoolFreeSpace {
  private free = Number.POSITIVE_INFINITY;
  private readAt = 0;
  private reading: Promise<void> | undefined;

  constructor(
    private readonly dir: string,
    /** 0 turns the check off. */
    private readonly reserveBytes: number,
    private readonly refreshMs = 1_000,
    private readonly read: (dir: string) => Promise<{ bavail: number; bsize: number }> = statfs,
    private readonly now: () => number = Date.now,
  ) {}

  /** The first reading, before the listener opens. */
  start(): Promise<void> {
    return this.refresh();
  }

  /** A shortage if the spool cannot take a message of `declaredBytes` (SIZE=, else 0) and keep its reserve. */
  shortage(declaredBytes: number): SpaceShortage | undefined {
    if (this.reserveBytes === 0) return undefined;
    if (this.now() - this.readAt >= this.refreshMs) void this.refresh();
    const need = this.reserveBytes + declaredBytes;
    return this.free < need ? { free: this.free, need } : undefined;
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
      });
    return this.reading;
  }
}

/** The write errors of a full file system or quota: the sender should hear 452 4.3.1, not a generic 451. */
export function isOutOfSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
