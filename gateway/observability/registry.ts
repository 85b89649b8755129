/**
 * A minimal Prometheus registry (text exposition format 0.0.4): counters, gauges and histograms with labels, and
 * gauges sampled by a collector at scrape time. Small enough to own; no dependency for ~100 lines of formatting.
 */

type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(labels: Labels, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** Series keyed by their label values in the metric's label order. */
abstract class Metric<L extends string> {
  protected readonly series = new Map<string, { labels: Labels; value: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly L[],
  ) {}

  protected entry(labels: Partial<Record<L, string>>): { labels: Labels; value: number } {
    const ordered: Labels = {};
    for (const n of this.labelNames) ordered[n] = labels[n] ?? '';
    const key = JSON.stringify(Object.values(ordered));
    let e = this.series.get(key);
    if (!e) this.series.set(key, (e = { labels: ordered, value: 0 }));
    return e;
  }

  abstract readonly type: string;

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    for (const { labels, value } of this.series.values()) lines.push(`${this.name}${labelText(labels)} ${num(value)}`);
    return lines.join('\n');
  }
}

export class Counter<L extends string = never> extends Metric<L> {
  readonly type = 'counter';

  inc(labels: Partial<Record<L, string>> = {}, by = 1): void {
    this.entry(labels).value += by;
  }

  /** Shows the series at 0 before its first event, so rate() has a starting point. */
  init(labels: Partial<Record<L, string>> = {}): void {
    this.entry(labels);
  }

  get(labels: Partial<Record<L, string>> = {}): number {
    return this.entry(labels).value;
  }
}

export class Gauge<L extends string = never> extends Metric<L> {
  readonly type = 'gauge';

  set(labels: Partial<Record<L, string>>, value: number): void {
    this.entry(labels).value = value;
  }

  inc(labels: Partial<Record<L, string>> = {}, by = 1): void {
    this.entry(labels).value += by;
  }

  dec(labels: Partial<Record<L, string>> = {}, by = 1): void {
    this.entry(labels).value -= by;
  }

  get(labels: Partial<Record<L, string>> = {}): number {
    return this.entry(labels).value;
  }

  /** For scrape-time samples whose label set can shrink (e.g. a bucket no longer configured). */
  reset(): void {
    this.series.clear();
  }
}

export class Histogram {
  readonly type = 'histogram';
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {
    this.counts = buckets.map(() => 0);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) this.counts[i]!++;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{le="${num(b)}"} ${this.counts[i]}`));
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${num(this.sum)}`, `${this.name}_count ${this.count}`);
    return lines.join('\n');
  }
}

export class Registry {
  private readonly metrics: Array<{ render(): string }> = [];
  private readonly collectors: Array<() => Promise<void>> = [];

  add<M extends { render(): string }>(m: M): M {
    this.metrics.push(m);
    return m;
  }

  /** Runs before each scrape (e.g. sets gauges from Redis or the disk). A failing collector fails only itself. */
  collect(f: () => Promise<void>): void {
    this.collectors.push(f);
  }

  async render(): Promise<string> {
    await Promise.allSettled(this.collectors.map((f) => f()));
    return `${this.metrics.map((m) => m.render()).join('\n')}\n`;
  }
}

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
