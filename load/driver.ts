/**
 * The two load shapes, independent of what a message is (an SMTP transaction, an upload).
 *
 * Open loop (`--rate`): message i is due at start + i / rate, whether or not earlier ones were answered — so a slow
 * target shows up as latency instead of quietly lowering the rate (coordinated omission). A due message goes to a
 * free lane (for SMTP: a connection), opening one up to the limit; when all are busy it waits, and that wait counts
 * in its response time, which is measured from when it was due.
 *
 * Closed loop (`--concurrency N`): N lanes, each starting its next message when the previous one is answered.
 *
 * Either way no message starts after the duration or beyond the count, and the run ends at the latest one timeout
 * after the last message was due: what is still queued then is counted unsent, what is in flight is aborted with a
 * LoadTimeoutError('run end') — a timeout, as the lanes record it. The user's interrupt aborts with another reason:
 * those messages are counted interrupted, not failed.
 */
import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { LoadTimeoutError } from './errors.js';
import type { LoadShape } from './options.js';

export interface Job {
  seq: number;
  /** performance.now() when the schedule wanted it sent (open loop only). */
  due: number | undefined;
}

export interface Lane {
  /** Gets ready before the clock starts (an SMTP lane connects); never rejects — a failure shows at the first run. */
  prepare?(): Promise<void>;
  /** Sends one message and records its outcome; never rejects. Must give up by itself after the per-message timeout. */
  run(job: Job, signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export interface DriveOptions {
  shape: LoadShape;
  count: number | undefined;
  durationMs: number | undefined;
  /** Open loop: most lanes at once. Closed loop: ignored (the concurrency is the lane count). */
  maxLanes: number;
  /** Per-message timeout: how long after the last due message the run may still take. */
  timeoutMs: number;
  newLane(index: number): Lane;
  signal: AbortSignal;
  /** The clock starts: every lane is ready, the first message is due now. */
  onStart?(t0: number): void;
}

export interface DriveResult {
  /** Messages that came due (open loop) or were started (closed loop). */
  scheduled: number;
  /** Due but never started: every lane was busy until the run ended. */
  unsent: number;
  lanesOpened: number;
  endedBy: 'count' | 'duration' | 'interrupted';
  /** performance.now() when the last message was started and when the run's sending ended. */
  sendingEnded: number;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

export async function drive(opts: DriveOptions): Promise<DriveResult> {
  // Stops the lanes: on the user's interrupt, or when the run is over its time.
  const stop = new AbortController();
  setMaxListeners(0, stop.signal); // one listener per message in flight
  const onAbort = () => stop.abort(opts.signal.reason);
  if (opts.signal.aborted) onAbort(); // interrupted while getting ready: nothing starts
  else opts.signal.addEventListener('abort', onAbort, { once: true });
  const lanes: Lane[] = [];
  const newLane = () => {
    const l = opts.newLane(lanes.length);
    lanes.push(l);
    return l;
  };
  // Every lane is ready before the clock starts (for SMTP: connected), so the first second measures messages, not
  // connection set-up. Open loop: lanes beyond these are only opened again after one failed.
  const ready = opts.shape.kind === 'closed' ? opts.shape.concurrency : opts.maxLanes;
  const idle: Lane[] = [];
  for (let i = 0; i < ready; i++) idle.push(newLane());
  await Promise.all(idle.map((l) => l.prepare?.()));
  const t0 = performance.now();
  opts.onStart?.(t0);
  const count = opts.count ?? Number.POSITIVE_INFINITY;
  const deadline = opts.durationMs !== undefined ? t0 + opts.durationMs : Number.POSITIVE_INFINITY;
  try {
    if (opts.shape.kind === 'closed') return await closed(opts.shape.concurrency);
    return await open(opts.shape.rate);
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
    await Promise.all(lanes.map((l) => l.close().catch(() => undefined)));
  }

  async function closed(concurrency: number): Promise<DriveResult> {
    let next = 0;
    // A bug in a lane must not hold the run forever: every message has the timeout, and so has the end.
    let hardStop: NodeJS.Timeout | undefined;
    const armHardStop = () => (hardStop ??= setTimeout(() => stop.abort(new LoadTimeoutError('run end', opts.timeoutMs)), opts.timeoutMs + 5_000));
    const loop = async (lane: Lane) => {
      while (!stop.signal.aborted && next < count && performance.now() < deadline) {
        const seq = next++;
        await lane.run({ seq, due: undefined }, stop.signal);
      }
      armHardStop();
    };
    await Promise.all(idle.splice(0, concurrency).map(loop));
    clearTimeout(hardStop);
    return { scheduled: next, unsent: 0, lanesOpened: lanes.length, endedBy: opts.signal.aborted ? 'interrupted' : next >= count ? 'count' : 'duration', sendingEnded: performance.now() };
  }

  async function open(rate: number): Promise<DriveResult> {
    const interval = 1000 / rate;
    const queue: Job[] = [];
    let busy = 0;
    let scheduled = 0;
    let wake: (() => void) | undefined;
    const kick = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const dispatch = () => {
      while (queue.length > 0 && !stop.signal.aborted && (idle.length > 0 || lanes.length < opts.maxLanes)) {
        const lane = idle.pop() ?? newLane();
        const job = queue.shift()!;
        busy++;
        void lane.run(job, stop.signal).finally(() => {
          busy--;
          idle.push(lane);
          dispatch();
          kick();
        });
      }
    };
    // Arrivals: every message whose time has come, in one go (timers fire late under load; the schedule does not move).
    for (;;) {
      const now = performance.now();
      while (scheduled < count && t0 + scheduled * interval <= now && t0 + scheduled * interval < deadline) {
        queue.push({ seq: scheduled, due: t0 + scheduled * interval });
        scheduled++;
      }
      dispatch();
      const nextDue = t0 + scheduled * interval;
      if (stop.signal.aborted || scheduled >= count || nextDue >= deadline) break;
      await sleep(Math.max(0, nextDue - performance.now()), stop.signal);
    }
    const lastDue = t0 + Math.max(0, scheduled - 1) * interval;
    const endBy = lastDue + opts.timeoutMs;
    while ((queue.length > 0 || busy > 0) && !stop.signal.aborted) {
      const left = endBy - performance.now();
      if (left <= 0) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, Math.min(left, 250));
      });
    }
    const unsent = queue.length;
    queue.length = 0;
    if (busy > 0) {
      stop.abort(new LoadTimeoutError('run end', opts.timeoutMs));
      // Aborted lanes record their message and return promptly.
      const until = performance.now() + 5_000;
      while (busy > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
    }
    return { scheduled, unsent, lanesOpened: lanes.length, endedBy: opts.signal.aborted ? 'interrupted' : scheduled >= count ? 'count' : 'duration', sendingEnded: performance.now() };
  }
}
