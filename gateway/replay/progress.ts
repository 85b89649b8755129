import type { ReplayCounters } from './driver.js';

/**
 * The replay's progress on standard error: on a terminal one line redrawn in place (a bar when the total is known,
 * messages, MB, rates over the last seconds, ETA), problems printed above it; elsewhere (a log file, CI) a plain
 * line every few seconds.
 */

export interface ProgressOutput {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface Totals {
  /** Source bytes of everything to replay, once known (an estimate: DATA differs a little from the source's bytes). */
  bytes?: number;
  messages?: number;
}

const MB = 1024 * 1024;
/** Rates are taken over this window, so the ETA follows the current speed, not the start's. */
const WINDOW_MS = 10_000;

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const mb = (n: number) => (n / MB).toFixed(1);

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export class ProgressDisplay {
  private timer: NodeJS.Timeout | undefined;
  private samples: Array<{ t: number; done: number; bytes: number }> = [];
  private drawn = false;
  private readonly tty: boolean;
  private readonly startedAt: number;

  constructor(
    private readonly out: ProgressOutput,
    private readonly counters: ReplayCounters,
    readonly totals: Totals,
    /** `extra`: more to show at the end of the line (deliveries, with --deliver). */
    private readonly options: { intervalMs?: number; now?: () => number; extra?: () => string | undefined } = {},
  ) {
    this.tty = out.isTTY === true;
    this.startedAt = this.now();
  }

  start(): void {
    const every = this.options.intervalMs ?? (this.tty ? 200 : 5000);
    this.timer = setInterval(() => this.tick(), every);
    this.timer.unref();
    if (this.tty) this.tick();
  }

  /** A line of its own (a problem, a note), above the bar. */
  line(text: string): void {
    this.clear();
    this.out.write(`${text}\n`);
    if (this.tty && this.timer) this.draw();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
  }

  private now(): number {
    return this.options.now?.() ?? performance.now();
  }

  private done(): number {
    const c = this.counters;
    return c.stored + c.alreadyStored + c.unmatched + c.malformed + c.failed;
  }

  private tick(): void {
    const t = this.now();
    this.samples.push({ t, done: this.done(), bytes: this.counters.bytes });
    while (this.samples.length > 2 && this.samples[1]!.t <= t - WINDOW_MS) this.samples.shift();
    if (this.tty) this.draw();
    else this.out.write(`${this.text(false)}\n`);
  }

  /** Messages and bytes a second over the window (from the start until the window has filled). */
  private rates(): { msgs: number; bytes: number } {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last || last.t - first.t < 500) {
      const secs = (this.now() - this.startedAt) / 1000;
      return secs > 0.5 ? { msgs: this.done() / secs, bytes: this.counters.bytes / secs } : { msgs: 0, bytes: 0 };
    }
    const secs = (last.t - first.t) / 1000;
    return { msgs: (last.done - first.done) / secs, bytes: (last.bytes - first.bytes) / secs };
  }

  /** The progress as one line: `tty` adds the bar. */
  text(tty: boolean): string {
    const c = this.counters;
    const { msgs, bytes } = this.rates();
    const total = this.totals.bytes;
    const parts: string[] = [];
    if (total && total > 0) {
      const frac = Math.min(c.bytes / total, 0.999);
      if (tty) {
        const width = 20;
        const full = Math.floor(frac * width);
        parts.push(`[${'='.repeat(full)}${full < width ? '>' : ''}${' '.repeat(Math.max(0, width - full - 1))}] ${Math.floor(frac * 100)}%`);
      } else parts.push(`${Math.floor(frac * 100)}%`);
    }
    parts.push(`${int(this.done())}${this.totals.messages ? `/${int(this.totals.messages)}` : ''} messages`);
    parts.push(total ? `${mb(c.bytes)}/${mb(total)} MB` : `${mb(c.bytes)} MB`);
    parts.push(`${msgs.toFixed(msgs < 10 ? 1 : 0)} msg/s`, `${mb(bytes)} MB/s`);
    // The total counts the sources' bytes and progress the DATA's (CRLF adds a little): never a negative ETA.
    if (total && bytes > 0) parts.push(`ETA ${formatDuration(Math.max(0, total - c.bytes) / bytes)}`);
    const bad = c.unmatched + c.malformed + c.failed;
    if (bad > 0) parts.push(`${int(bad)} not stored`);
    const extra = this.options.extra?.();
    if (extra) parts.push(extra);
    return `replay: ${parts.join('  ')}`;
  }

  private draw(): void {
    // A terminal that reports no width (0, as some ptys do) is taken as 100 columns.
    const width = Math.max(20, (this.out.columns || 100) - 1);
    this.out.write(`\r\x1b[2K${this.text(true).slice(0, width)}`);
    this.drawn = true;
  }

  private clear(): void {
    if (this.tty && this.drawn) this.out.write('\r\x1b[2K');
    this.drawn = false;
  }
}
