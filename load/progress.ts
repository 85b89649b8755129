/**
 * The live view of a run on stderr: one line rewritten every second on a terminal, a plain line every 5 s
 * otherwise (CI logs). Also closes each second of the recorder, so its per-second percentiles are final.
 */
import { performance } from 'node:perf_hooks';
import type { Recorder } from './recorder.js';

export interface ProgressSource {
  recorder: Recorder;
  /** What the progress line calls the 2xx / stored figure. */
  acceptedLabel: string;
  deliveries(): { delivered: number; expected: number } | undefined;
}

const PLAIN_EVERY = 5;

export class Progress {
  private timer: NodeJS.Timeout | undefined;
  private ticks = 0;
  private shown = false;
  phase = 'sending';

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
    private readonly src: ProgressSource,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), 1000);
  }

  line(): string {
    const r = this.src.recorder;
    const now = performance.now();
    const t = ((now - r.t0) / 1000).toFixed(0).padStart(4);
    const lat = r.latency.accept.latest();
    const d = this.src.deliveries();
    const errors = r.errorTotal();
    const parts = [
      `${t}s ${this.phase}`,
      `sent ${r.total('sent')}`,
      `${this.src.acceptedLabel} ${r.total('accepted')}`,
      ...(d ? [`delivered ${d.delivered}/${d.expected}`] : []),
      `${r.lastSecond('accepted', now)}/s`,
      lat ? `p50 ${lat.p50.toFixed(2)} ms p99 ${lat.p99.toFixed(2)} ms` : 'p50 – p99 –',
      `errors ${errors}`,
    ];
    return parts.join('  ');
  }

  private tick(): void {
    this.src.recorder.tick();
    this.ticks++;
    if (this.out.isTTY) {
      const width = (this.out.columns ?? 120) - 1;
      this.out.write(`\r\x1b[2K${this.line().slice(0, width)}`);
      this.shown = true;
    } else if (this.ticks % PLAIN_EVERY === 0) this.out.write(`${this.line()}\n`);
  }

  /** Stops, leaving the terminal on a clean line. */
  stop(): void {
    clearInterval(this.timer);
    if (this.shown) this.out.write(`\r\x1b[2K`);
  }

  /** A message between progress lines. */
  say(text: string): void {
    if (this.shown) this.out.write(`\r\x1b[2K`);
    this.out.write(`${text}\n`);
  }
}
