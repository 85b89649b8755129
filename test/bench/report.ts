import { cpus, loadavg, totalmem } from 'node:os';

/** One line of a benchmark's closing table. */
export interface Row {
  what: string;
  figure: string;
  ratio?: string;
  target?: string;
  verdict?: 'met' | 'MISSED';
}

/** The closing table of a benchmark: a line naming the run and this machine, then one aligned line per row. */
export function printReport(name: string, started: Date, loadAtStart: number, conditions: string, rows: Row[]): void {
  const cpu = cpus();
  console.log(`${name} — ${started.toISOString()}, ${cpu.length} × ${cpu[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GB, node ${process.version}, ${conditions}; load average ${loadAtStart.toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} at end`);
  const w = [Math.max(...rows.map((r) => r.what.length)), Math.max(8, ...rows.map((r) => r.figure.length)), 8, 14];
  console.log(`${'measure'.padEnd(w[0]!)}  ${'figure'.padEnd(w[1]!)}  ${'ratio'.padEnd(w[2]!)}  ${'target'.padEnd(w[3]!)}  verdict`);
  for (const r of rows) console.log(`${r.what.padEnd(w[0]!)}  ${r.figure.padEnd(w[1]!)}  ${(r.ratio ?? '').padEnd(w[2]!)}  ${(r.target ?? '').padEnd(w[3]!)}  ${r.verdict ?? ''}`);
}
