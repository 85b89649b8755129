/** The spool's free-space reserve: the sizes sessions declared, held until released, against statfs read in the background. */
import { describe, expect, it } from 'vitest';
import { isOutOfSpace, SpoolFreeSpace } from '../../gateway/spool/free-space.js';

describe('spool free space', () => {
  it("adds up the sizes sessions declared until each one's hold is released; a new MAIL FROM of a session replaces its hold", async () => {
    const space = new SpoolFreeSpace('/spool', 30, { read: async () => ({ bavail: 100, bsize: 1 }) });
    await space.start();
    space.stop();
    expect(space.claim('a', 40)).toBeUndefined();
    expect(space.claim('b', 31), 'a and b together would eat into the reserve').toEqual({ free: 100, need: 101 });
    expect(space.heldBytes, 'a refused claim holds nothing').toBe(40);
    expect(space.claim('b', 30)).toBeUndefined();
    expect(space.claim('c', 0), 'nothing declared: only the reserve counts').toBeUndefined();
    expect(space.claim('c', 1)).toEqual({ free: 100, need: 101 });
    space.release('a');
    space.release('a');
    expect(space.heldBytes, 'released once').toBe(30);
    expect(space.claim('c', 40)).toBeUndefined();
    expect(space.claim('b', 0), "b's next transaction gives back its last hold").toBeUndefined();
    expect(space.heldBytes).toBe(40);
    space.release('unknown');
    expect(space.heldBytes).toBe(40);
    // A hold whose transaction ended without a release (RSET: no hook) stops counting once its `live` says so.
    let live = true;
    expect(space.claim('d', 20, () => live)).toBeUndefined();
    expect(space.claim('e', 11), '40 + 20 held').toEqual({ free: 100, need: 101 });
    live = false;
    expect(space.heldBytes).toBe(40);
    expect(space.claim('e', 11)).toBeUndefined();
  });

  it('refuses when free < reserve + declared SIZE, reads statfs every refreshMs in the background, reports the reserve running short and coming back, refuses nothing unread or off', async () => {
    let free = 100;
    let reads = 0;
    let t = 0;
    const reserve: Array<string> = [];
    const read = async () => {
      reads++;
      return { bavail: free, bsize: 1 };
    };
    const space = new SpoolFreeSpace('/spool', 30, { refreshMs: 1_000, read, now: () => t, onReserve: (s) => reserve.push(s ? `short ${s.free}/${s.need}` : 'back') });
    await space.start();
    space.stop(); // this test drives the clock itself; the timer is checked below
    expect(reads).toBe(1);
    expect(space.claim('s', 0)).toBeUndefined();
    expect(space.claim('s', 70)).toBeUndefined();
    expect(space.claim('s', 71), 'a message whose SIZE would eat into the reserve').toEqual({ free: 100, need: 101 });
    expect(reserve).toEqual([]);
    // The disk fills: seen after the next reading, which a check starts once the last one is refreshMs old.
    free = 20;
    t = 999;
    expect(space.claim('s', 0)).toBeUndefined();
    expect(reads).toBe(1);
    t = 1_000;
    expect(space.claim('s', 0), 'the check uses the last reading while a new one runs').toBeUndefined();
    await new Promise((r) => setImmediate(r));
    expect(reads).toBe(2);
    expect(space.claim('s', 0)).toEqual({ free: 20, need: 30 });
    expect(reserve).toEqual(['short 20/30']);
    free = 40;
    t = 2_000;
    space.claim('s', 0);
    await new Promise((r) => setImmediate(r));
    expect(space.claim('s', 0)).toBeUndefined();
    expect(reserve).toEqual(['short 20/30', 'back']);

    // The timer reads on its own during a quiet spell (no MAIL FROM needed to notice the disk filling).
    let timedReads = 0;
    const timed = new SpoolFreeSpace('/spool', 30, { refreshMs: 20, read: async () => ((timedReads++), { bavail: 10, bsize: 1 }), onReserve: (s) => reserve.push(s ? 'timed short' : 'timed back') });
    await timed.start();
    await new Promise((r) => setTimeout(r, 120));
    timed.stop();
    expect(timedReads).toBeGreaterThanOrEqual(3);
    expect(reserve.at(-1)).toBe('timed short');

    // A file system that cannot be read refuses nothing (the spool's writes report their own errors).
    const broken = new SpoolFreeSpace('/spool', 30, { read: () => Promise.reject(new Error('EIO')) });
    await broken.start();
    broken.stop();
    expect(broken.claim('s', 1e12)).toBeUndefined();
    // Reserve 0: no check, no reading.
    let offReads = 0;
    const off = new SpoolFreeSpace('/spool', 0, { read: async () => ((offReads++), { bavail: 0, bsize: 4096 }) });
    await off.start();
    expect(off.claim('s', 1e12)).toBeUndefined();
    expect(offReads).toBe(0);
    expect(isOutOfSpace(Object.assign(new Error('x'), { code: 'ENOSPC' }))).toBe(true);
    expect(isOutOfSpace(Object.assign(new Error('x'), { code: 'EDQUOT' }))).toBe(true);
    expect(isOutOfSpace(Object.assign(new Error('x'), { code: 'EIO' }))).toBe(false);
  });
});
