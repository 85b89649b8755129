/** The final table of a run, for people; the same figures as --json. */
import { LATENCY_LABELS, type LoadResult } from './result.js';

const pad = (s: string, n: number) => s + ' '.repeat(Math.max(0, n - s.length));
const lpad = (s: string, n: number) => ' '.repeat(Math.max(0, n - s.length)) + s;

/** One line naming what ran: the header of the table and of the report. */
export function describeRun(r: LoadResult): string {
  const p = r.parameters;
  const shape = p.rate !== null && p.rate !== undefined ? `open loop at ${p.rate} msg/s (up to ${p.connections ?? p.maxInFlight} at once)` : `closed loop, ${p.concurrency} at once`;
  const bound = [p.count !== null ? `${p.count} messages` : '', p.duration !== null ? String(p.duration) : ''].filter(Boolean).join(' or ');
  const where = r.command === 'smtp' ? String(p.target) : `rule ${p.rule} → s3://${p.bucket}/${p.objectKeyPrefix ?? ''}`;
  return `mailroom load ${r.command} — ${where}, ${shape}, ${bound}, ${p.size}`;
}

export function formatTable(r: LoadResult): string {
  const out: string[] = [describeRun(r), `${r.startedAt} → ${r.endedAt} (${r.seconds.run} s; ended by ${r.endedBy})`, ''];
  const c = r.counts;
  const rows: Array<[string, string, string]> = [
    ['sent', String(c.sent), `${r.throughput.sent}/s`],
    [r.command === 'smtp' ? 'accepted (2xx)' : 'uploaded', String(c.accepted), `${r.throughput.accepted}/s`],
    ['failed', String(c.failed), ''],
  ];
  if (c.interrupted) rows.push(['interrupted (Ctrl-C) before an answer', String(c.interrupted), '']);
  if (c.unsent) rows.push(['unsent (no free connection before the end)', String(c.unsent), '']);
  if (c.stored !== undefined) rows.push(['objects stored', String(c.stored), '']);
  if (c.announced !== undefined) rows.push(['notifications published', String(c.announced), '']);
  if (c.deliveriesExpected > 0) {
    rows.push(['delivered (copies seen)', `${c.delivered} of ${c.deliveriesExpected}`, `${r.throughput.delivered}/s`]);
    if (c.duplicateNotifications) rows.push(['duplicate notifications', String(c.duplicateNotifications), '']);
  }
  if (c.recipientsRefused) rows.push(['recipients refused', String(c.recipientsRefused), '']);
  if (c.connectionsOpened !== undefined) rows.push(['connections opened', String(c.connectionsOpened), '']);
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  for (const [a, b, d] of rows) out.push(`${pad(a, w0)}  ${lpad(b, w1)}  ${d}`.trimEnd());

  const names = (['store', 'accept', 'response', 'delivery'] as const).filter((n) => r.latency[n]);
  if (names.length) {
    out.push('');
    const labels = LATENCY_LABELS[r.command];
    const head = ['latency, ms', 'count', 'p50', 'p90', 'p99', 'p99.9', 'max', 'mean'];
    const lines = names.map((n) => {
      const s = r.latency[n]!;
      return [labels[n] ?? n, String(s.count), ...[s.p50, s.p90, s.p99, s.p999, s.max, s.mean].map((v) => v.toFixed(3))];
    });
    const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
    out.push(head.map((h, i) => (i === 0 ? pad(h, widths[i]!) : lpad(h, widths[i]!))).join('  '));
    for (const l of lines) out.push(l.map((v, i) => (i === 0 ? pad(v, widths[i]!) : lpad(v, widths[i]!))).join('  '));
  }
  if (r.errors.total > 0) {
    out.push('', `errors: ${r.errors.total} (${Object.entries(r.errors.byClass).map(([k, v]) => `${k} ${v}`).join(', ')})`);
    for (const e of r.errors.list.slice(0, 20)) out.push(`  ${lpad(String(e.count), 7)}  ${e.class}  ${e.code}  at ${e.stage}: ${e.message}`);
    if (r.errors.list.length > 20) out.push(`  … ${r.errors.list.length - 20} more kinds in --json`);
  }
  for (const n of r.delivery.notes) out.push('', `note: ${n}`);
  for (const l of r.delivery.leftovers) out.push('', `NOT REMOVED: ${l.what} (${l.error}); remove it with: ${l.fix}`);
  return out.join('\n');
}
