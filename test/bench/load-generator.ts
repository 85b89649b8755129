/**
 * Is `mailroom load smtp` fast enough to measure a gateway with? Postfix's smtp-source and `mailroom load smtp`
 * take turns against one Postfix smtp-sink (10 KB, 20 connections, connection reuse): the generator must reach at
 * least half of smtp-source's rate in the same run, or it would be what a load test measures.
 *
 * A step of `npm run bench:gateway` (BENCH_STEPS=5); also runs alone: `tsx test/bench/load-generator.ts`.
 * BENCH_LOAD_BIN=<path to a built cli/main.js> runs a compiled build instead of bin/mailroom.js.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { freePort } from '../support/ports.js';
import { startProcess, waitForPort } from '../support/process.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SIZE = 10 * 1024;
const SESSIONS = 20;
const FROM = 'bench@origin.example';
const RCPT = 'user@example.com';
const ROUNDS = 3;

export interface LoadGeneratorRow {
  what: string;
  figure: string;
  ratio?: string;
  target?: string;
  verdict?: 'met' | 'MISSED';
}

function runBounded(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, out, err });
    });
  });
}

async function smtpSource(port: number, count: number): Promise<number> {
  const t = performance.now();
  const r = await runBounded('smtp-source', ['-s', String(SESSIONS), '-l', String(SIZE), '-m', String(count), '-d', '-M', 'client.bench.test', '-f', FROM, '-t', RCPT, `127.0.0.1:${port}`], 120_000);
  if (r.code !== 0) throw new Error(`smtp-source exited ${r.code}: ${r.err.trim().split('\n').slice(-2).join(' | ')}`);
  return count / ((performance.now() - t) / 1000);
}

/** The generator's own figure: accepted per second from its first message to its last reply (start-up excluded). */
async function mailroomLoad(port: number, count: number): Promise<{ rate: number; p50: number; p99: number }> {
  const bin = process.env.BENCH_LOAD_BIN ? [process.env.BENCH_LOAD_BIN] : [join(ROOT, 'bin', 'mailroom.js')];
  const r = await runBounded(process.execPath, [...bin, 'load', 'smtp', '--target', `127.0.0.1:${port}`, '--to', RCPT, '--from', FROM, '--concurrency', String(SESSIONS), '--size', '10KB', '--count', String(count), '--json'], 120_000);
  if (r.code !== 0) throw new Error(`mailroom load exited ${r.code}: ${r.err.trim().split('\n').slice(-3).join(' | ')}`);
  const j = JSON.parse(r.out) as { counts: { accepted: number; failed: number }; throughput: { accepted: number }; latency: { accept?: { p50: number; p99: number } } };
  if (j.counts.failed > 0 || j.counts.accepted !== count) throw new Error(`mailroom load: ${j.counts.accepted}/${count} accepted, ${j.counts.failed} failed`);
  return { rate: j.throughput.accepted, p50: j.latency.accept?.p50 ?? NaN, p99: j.latency.accept?.p99 ?? NaN };
}

/** smtp-source and mailroom load alternating against one smtp-sink; the faster run of each is compared. */
export async function loadGeneratorRows(log: (s: string) => void, scale = 1): Promise<LoadGeneratorRow[]> {
  const count = Math.max(2000, Math.round(20_000 * scale));
  const port = await freePort();
  const sink = startProcess('/usr/sbin/smtp-sink', [...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []), `127.0.0.1:${port}`, '256']);
  try {
    await waitForPort(port, 10_000, sink.child);
    await smtpSource(port, 1000);
    const source: number[] = [];
    const load: Array<{ rate: number; p50: number; p99: number }> = [];
    for (let i = 0; i < ROUNDS; i++) {
      source.push(await smtpSource(port, count));
      load.push(await mailroomLoad(port, count));
      log(`round ${i + 1}: smtp-source ${source[i]!.toFixed(0)}/s, mailroom load smtp ${load[i]!.rate.toFixed(0)}/s (accept p50 ${load[i]!.p50} ms, p99 ${load[i]!.p99} ms)`);
    }
    const bestSource = Math.max(...source);
    const bestLoad = load.reduce((a, b) => (b.rate > a.rate ? b : a));
    const ratio = bestLoad.rate / bestSource;
    return [
      { what: `smtp-source → smtp-sink, reuse (faster of ${ROUNDS}: ${source.map((s) => s.toFixed(0)).join(', ')})`, figure: `${bestSource.toFixed(0)} msg/s` },
      {
        what: `mailroom load smtp → smtp-sink, 20 connections (faster of ${ROUNDS}: ${load.map((s) => s.rate.toFixed(0)).join(', ')})`,
        figure: `${bestLoad.rate.toFixed(0)} msg/s, accept p50 ${bestLoad.p50} ms p99 ${bestLoad.p99} ms`,
        ratio: `${ratio.toFixed(2)}×`,
        target: '≥ 0.5× smtp-source',
        verdict: ratio >= 0.5 ? 'met' : 'MISSED',
      },
    ];
  } finally {
    await sink.stop();
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const rows = await loadGeneratorRows((s) => process.stderr.write(`[load-generator] ${s}\n`), Number(process.env.BENCH_SCALE ?? 1));
  for (const r of rows) console.log([r.what, r.figure, r.ratio ?? '', r.target ?? '', r.verdict ?? ''].join('  '));
}
