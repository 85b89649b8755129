/** The load shapes with lanes that only take time: the schedule, the bounds, and an interrupt before the start. */
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { drive, type Job, type Lane } from '../../load/driver.js';

function lanes(ms: number, log: Array<{ job: Job; at: number }>, prepared: { n: number }) {
  return (): Lane => ({
    async prepare() {
      prepared.n++;
    },
    async run(job, signal) {
      log.push({ job, at: performance.now() });
      await new Promise<void>((r) => {
        const t = setTimeout(r, ms);
        signal.addEventListener('abort', () => (clearTimeout(t), r()), { once: true });
      });
    },
    async close() {},
  });
}

describe('drive', () => {
  it('open loop: each message starts when due, however long the others take; the lane limit leaves the rest unsent', async () => {
    const log: Array<{ job: Job; at: number }> = [];
    const r = await drive({ shape: { kind: 'open', rate: 50 }, count: 25, durationMs: undefined, maxLanes: 100, timeoutMs: 1000, newLane: lanes(300, log, { n: 0 }), signal: new AbortController().signal });
    expect(r).toMatchObject({ scheduled: 25, unsent: 0, endedBy: 'count' });
    // Waiting for the 300 ms replies would make them late by 300 ms and more; a loaded machine's stalls stay well under.
    const late = log.map((l) => l.at - l.job.due!);
    expect(Math.max(...late)).toBeLessThan(150);
    const limited: typeof log = [];
    const r2 = await drive({ shape: { kind: 'open', rate: 50 }, count: 50, durationMs: undefined, maxLanes: 2, timeoutMs: 300, newLane: lanes(1000, limited, { n: 0 }), signal: new AbortController().signal });
    // Two lanes held for 1 s each against 50 due in a second: after the timeout, what never started is unsent.
    expect(r2.scheduled).toBe(50);
    expect(limited.length + r2.unsent).toBe(50);
    expect(r2.unsent).toBeGreaterThan(40);
  });

  it('closed loop: N lanes back to back, bounded by count and by duration', async () => {
    const log: Array<{ job: Job; at: number }> = [];
    const prepared = { n: 0 };
    const byCount = await drive({ shape: { kind: 'closed', concurrency: 3 }, count: 10, durationMs: undefined, maxLanes: 0, timeoutMs: 1000, newLane: lanes(20, log, prepared), signal: new AbortController().signal });
    expect(byCount).toMatchObject({ scheduled: 10, endedBy: 'count', lanesOpened: 3 });
    expect(prepared.n).toBe(3);
    const t = performance.now();
    const byTime = await drive({ shape: { kind: 'closed', concurrency: 2 }, count: undefined, durationMs: 300, maxLanes: 0, timeoutMs: 1000, newLane: lanes(50, [], { n: 0 }), signal: new AbortController().signal });
    expect(byTime.endedBy).toBe('duration');
    expect(performance.now() - t).toBeLessThan(300 + 50 + 200);
  });

  it('interrupted while the lanes got ready: nothing starts', async () => {
    const ac = new AbortController();
    ac.abort(new Error('SIGINT'));
    const log: Array<{ job: Job; at: number }> = [];
    const open = await drive({ shape: { kind: 'open', rate: 100 }, count: 50, durationMs: undefined, maxLanes: 5, timeoutMs: 1000, newLane: lanes(10, log, { n: 0 }), signal: ac.signal });
    const closed = await drive({ shape: { kind: 'closed', concurrency: 2 }, count: 50, durationMs: undefined, maxLanes: 0, timeoutMs: 1000, newLane: lanes(10, log, { n: 0 }), signal: ac.signal });
    expect(log).toEqual([]);
    expect(open.endedBy).toBe('interrupted');
    expect(closed.endedBy).toBe('interrupted');
  });
});
