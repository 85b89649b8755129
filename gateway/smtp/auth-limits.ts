import { plainAddress } from '../net/cidr.js';

/**
 * Limits on SMTP AUTH, so that guessing passwords is slow and bounded, and checking them cannot starve the disk:
 * failed attempts per client address in a sliding window (then AUTH is refused without a check), and the password
 * checks themselves (scrypt, ~32 MB and tens of milliseconds each on libuv's thread pool — the pool the spool's
 * fdatasync waits in) run a few at a time behind a bounded queue. Per-connection failures are the SMTP front's.
 */

/** Addresses whose failures have all left the window carry no information; dropping them bounds memory. */
const SWEEP_AT = 10_000;

export class AuthFailures {
  /** Per client address, the times of its latest failures (at most `max`), oldest first. */
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  private recent(key: string, t: number): number[] {
    const times = (this.failures.get(key) ?? []).filter((at) => at > t - this.windowMs);
    if (times.length > 0) this.failures.set(key, times);
    else this.failures.delete(key);
    return times;
  }

  /** How long `address` must wait before AUTH is checked again (0: not locked). */
  lockedFor(address: string): number {
    const t = this.now();
    const times = this.recent(plainAddress(address), t);
    return times.length >= this.max ? times[0]! + this.windowMs - t : 0;
  }

  /** Records a failure; true when it is the one that locks the address. */
  fail(address: string): boolean {
    const t = this.now();
    const key = plainAddress(address);
    if (this.failures.size >= SWEEP_AT) this.sweep(t);
    const times = this.recent(key, t);
    times.push(t);
    if (times.length > this.max) times.shift();
    this.failures.set(key, times);
    return times.length === this.max;
  }

  private sweep(t: number): void {
    for (const [k, times] of this.failures) if (times.at(-1)! <= t - this.windowMs) this.failures.delete(k);
  }
}

/** The check queue is full: AUTH is answered "try again later" without a check. */
export class ChecksBusyError extends Error {
  override name = 'ChecksBusyError';
}

/** At most `concurrency` checks at once, and at most `maxQueued` waiting; beyond that, `run` rejects at once. */
export class CheckQueue {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly concurrency: number,
    private readonly maxQueued: number,
  ) {}

  async run<T>(check: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.maxQueued) throw new ChecksBusyError('too many password checks waiting');
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.running++;
    try {
      return await check();
    } finally {
      // The slot passes straight to the next waiter, so a newcomer cannot take it in between.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
