/**
 * What a load run measures, as it happens: counters and error classes per second, latencies in HdrHistograms (one
 * for the whole run, one per second for the timeline). Latencies are recorded in microseconds with 3 significant
 * digits and reported in milliseconds.
 */
import { performance } from 'node:perf_hooks';
import { build, type Histogram } from 'hdr-histogram-js';
import type { ClassifiedError, ErrorClass } from './errors.js';

export interface LatencySummary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** Per second: the latency percentiles of what finished in that second (null: nothing did). */
export interface LatencyTimeline {
  p50: Array<number | null>;
  p90: Array<number | null>;
  p99: Array<number | null>;
  max: Array<number | null>;
}

const histogram = (): Histogram => build({ lowestDiscernibleValue: 1, highestTrackableValue: 2 * 3600 * 1e6, numberOfSignificantValueDigits: 3, autoResize: true });
const ms = (us: number) => Math.round(us) / 1000;
/**
 * A percentile as HdrHistogram gives it (the top of the value's bucket, 3 significant digits), but never above the
 * largest value recorded: p99 ≤ max holds in every report.
 */
const at = (h: Histogram, p: number) => Math.min(h.getValueAtPercentile(p), h.maxValue);

/** Percentiles for the distribution chart: denser towards the tail, as HdrHistogram's own output. */
const DISTRIBUTION = (() => {
  const out: number[] = [];
  for (let k = 0; k <= 60; k++) {
    const p = 100 * (1 - 2 ** (-k / 4));
    if (p > 99.999) break;
    out.push(Math.round(p * 10000) / 10000);
  }
  return [...out, 99.999, 100];
})();

export class LatencyRecorder {
  private readonly total = histogram();
  private readonly perSecond = new Map<number, Histogram>();
  private readonly timeline: LatencyTimeline = { p50: [], p90: [], p99: [], max: [] };

  /** `us` (microseconds) finished in second `second` of the run. */
  record(us: number, second: number): void {
    const v = Math.max(1, Math.round(us));
    this.total.recordValue(v);
    let h = this.perSecond.get(second);
    if (!h) this.perSecond.set(second, (h = histogram()));
    h.recordValue(v);
  }

  get count(): number {
    return this.total.totalCount;
  }

  /** Summarises and frees every second before `second`. */
  close(second: number): void {
    for (const [s, h] of [...this.perSecond].sort((a, b) => a[0] - b[0])) {
      if (s >= second) continue;
      this.set(s, h);
      h.destroy();
      this.perSecond.delete(s);
    }
  }

  private set(s: number, h: Histogram): void {
    for (const k of ['p50', 'p90', 'p99', 'max'] as const) {
      while (this.timeline[k].length < s) this.timeline[k].push(null);
      this.timeline[k][s] = ms(k === 'max' ? h.maxValue : at(h, Number(k.slice(1))));
    }
  }

  /** The newest closed second's p50/p99, for the progress line. */
  latest(): { p50: number; p99: number } | undefined {
    const i = this.timeline.p50.length - 1;
    const p50 = this.timeline.p50[i];
    const p99 = this.timeline.p99[i];
    return p50 != null && p99 != null ? { p50, p99 } : undefined;
  }

  summary(): LatencySummary | undefined {
    const h = this.total;
    if (h.totalCount === 0) return undefined;
    return { count: h.totalCount, min: ms(h.minNonZeroValue), mean: ms(h.mean), p50: ms(at(h, 50)), p90: ms(at(h, 90)), p99: ms(at(h, 99)), p999: ms(at(h, 99.9)), max: ms(h.maxValue) };
  }

  /** [percentile, ms] points over the whole run. */
  distribution(): Array<[number, number]> {
    if (this.total.totalCount === 0) return [];
    return DISTRIBUTION.map((p) => [p, ms(p === 100 ? this.total.maxValue : at(this.total, p))]);
  }

  series(seconds: number): LatencyTimeline {
    const pad = (a: Array<number | null>) => Array.from({ length: seconds }, (_, i) => a[i] ?? null);
    return { p50: pad(this.timeline.p50), p90: pad(this.timeline.p90), p99: pad(this.timeline.p99), max: pad(this.timeline.max) };
  }
}

export type Counter = 'sent' | 'accepted' | 'failed' | 'delivered' | 'interrupted';

export interface ErrorTally extends ClassifiedError {
  count: number;
}

export type LatencyName = 'accept' | 'response' | 'delivery' | 'store';

/** Every figure of a run, keyed by the second of the run it happened in. */
export class Recorder {
  t0 = performance.now();
  startedAt = new Date();
  private readonly counts: Record<Counter, number[]> = { sent: [], accepted: [], failed: [], delivered: [], interrupted: [] };
  private readonly totals: Record<Counter, number> = { sent: 0, accepted: 0, failed: 0, delivered: 0, interrupted: 0 };
  private readonly errorsBySecond = new Map<ErrorClass, number[]>();
  private readonly errors = new Map<string, ErrorTally>();
  readonly latency: Record<LatencyName, LatencyRecorder> = { accept: new LatencyRecorder(), response: new LatencyRecorder(), delivery: new LatencyRecorder(), store: new LatencyRecorder() };
  bytesSent = 0;
  /** performance.now() of the first send and of the last reply: the sending phase, for throughput. */
  firstSend: number | undefined;
  lastReply: number | undefined;

  /** The clock starts (second 0 of the timeline) when the load does: after the lanes connected. */
  start(at = performance.now()): void {
    this.startedAt = new Date(this.startedAt.getTime() + (at - this.t0));
    this.t0 = at;
  }

  second(at = performance.now()): number {
    return Math.max(0, Math.floor((at - this.t0) / 1000));
  }

  count(what: Counter, at = performance.now()): void {
    const s = this.second(at);
    const a = this.counts[what];
    while (a.length <= s) a.push(0);
    a[s]!++;
    this.totals[what]++;
    if (what === 'sent') this.firstSend ??= at;
    if (what === 'accepted' || what === 'failed') this.lastReply = Math.max(this.lastReply ?? at, at);
  }

  total(what: Counter): number {
    return this.totals[what];
  }

  /** In the second that ended before `at`: how many of `what`. */
  lastSecond(what: Counter, at = performance.now()): number {
    return this.counts[what][this.second(at) - 1] ?? 0;
  }

  latencyUs(name: LatencyName, us: number, at = performance.now()): void {
    this.latency[name].record(us, this.second(at));
  }

  error(e: ClassifiedError, at = performance.now()): void {
    const key = `${e.class}\u0000${e.code}\u0000${e.stage}`;
    const t = this.errors.get(key);
    if (t) t.count++;
    else this.errors.set(key, { ...e, count: 1 });
    let a = this.errorsBySecond.get(e.class);
    if (!a) this.errorsBySecond.set(e.class, (a = []));
    const s = this.second(at);
    while (a.length <= s) a.push(0);
    a[s]!++;
  }

  errorTallies(): ErrorTally[] {
    return [...this.errors.values()].sort((a, b) => b.count - a.count);
  }

  errorTotal(): number {
    let n = 0;
    for (const t of this.errors.values()) n += t.count;
    return n;
  }

  /** Closes every second before now's (their latency percentiles are final). */
  tick(at = performance.now()): void {
    const s = this.second(at);
    for (const l of Object.values(this.latency)) l.close(s);
  }

  /** The per-second series, `seconds` long. */
  timeline(seconds: number): { counts: Record<Exclude<Counter, 'interrupted'>, number[]>; errors: Partial<Record<ErrorClass, number[]>> } {
    const pad = (a: number[]) => Array.from({ length: seconds }, (_, i) => a[i] ?? 0);
    const errors: Partial<Record<ErrorClass, number[]>> = {};
    for (const [c, a] of this.errorsBySecond) errors[c] = pad(a);
    return { counts: { sent: pad(this.counts.sent), accepted: pad(this.counts.accepted), failed: pad(this.counts.failed), delivered: pad(this.counts.delivered) }, errors };
  }
}
