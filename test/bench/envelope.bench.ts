/**
 * npm run bench:envelope — encrypt+decrypt throughput and peak RSS for one 40 MB message through the streaming
 * envelope path, next to node:crypto AES-256-GCM on one Buffer of the same size, in the same run.
 *
 * Each mode runs in its own child process so peak RSS (getrusage maxrss) is that mode's alone.
 *   buffer   : cipher.update(one 40 MB Buffer) + final + tag, then decipher the same way (the baseline)
 *   stream   : the project's GCM Transform streams fed 64 KiB chunks from memory (pure stream overhead)
 *   file     : spool-like file → encrypt stream → file → decrypt stream → sink (what the gateway and `get` do)
 * Throughput = message MB / (encrypt + decrypt seconds), best of N rounds.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDecipherStream } from '../../shared/envelope/decrypt.js';
import { createGcmEncryptStream } from '../../shared/envelope/encrypt.js';
import { randomFile } from '../support/files.js';

const SIZE = 40 * 1024 * 1024;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CHUNK = 64 * 1024;

interface Result {
  mode: string;
  bestSeconds: number;
  mbPerSec: number;
  baseRssMb: number;
  peakRssMb: number;
  growthMb: number;
}

const mb = (b: number) => b / (1024 * 1024);
const maxRssBytes = () => process.resourceUsage().maxRSS * 1024;

function sink(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}

async function roundBuffer(plain: Buffer, key: Buffer, iv: Buffer): Promise<void> {
  // As lean as node:crypto allows: one update each way, no concatenation (GCM's final() adds no bytes).
  const c = createCipheriv('aes-256-gcm', key, iv);
  const ct = c.update(plain);
  c.final();
  const tag = c.getAuthTag();
  const d = createDecipheriv('aes-256-gcm', key, iv);
  d.setAuthTag(tag);
  const pt = d.update(ct);
  d.final();
  if (pt.length !== plain.length) throw new Error('round trip failed');
}

async function roundStream(key: Buffer, iv: Buffer, chunk: Buffer): Promise<void> {
  // Ciphertext flows straight into the decryptor: the stream path never holds the message.
  function* chunks() {
    for (let left = SIZE; left > 0; left -= CHUNK) yield left >= CHUNK ? chunk : chunk.subarray(0, left);
  }
  await pipeline(Readable.from(chunks()), createGcmEncryptStream(key, iv, SIZE), createDecipherStream(key, { iv, unencryptedLength: SIZE }), sink());
}

async function roundFile(key: Buffer, iv: Buffer, dir: string): Promise<void> {
  const src = join(dir, 'plain.eml');
  const enc = join(dir, 'cipher.bin');
  await pipeline(createReadStream(src, { highWaterMark: CHUNK }), createGcmEncryptStream(key, iv, SIZE), createWriteStream(enc));
  await pipeline(createReadStream(enc, { highWaterMark: CHUNK }), createDecipherStream(key, { iv, unencryptedLength: SIZE }), sink());
}

async function child(mode: string, dir: string): Promise<void> {
  const key = randomBytes(32);
  const iv = randomBytes(12);
  let plain: Buffer | undefined;
  const chunk = randomBytes(CHUNK);
  if (mode === 'buffer') plain = randomBytes(SIZE);
  const round = () => (mode === 'buffer' ? roundBuffer(plain!, key, iv) : mode === 'stream' ? roundStream(key, iv, chunk) : roundFile(key, iv, dir));
  // Baseline after the input exists (the buffer mode's input is the message itself, like a spool file is for file).
  const base = process.memoryUsage().rss;
  let best = Infinity;
  for (let i = 0; i < ROUNDS; i++) {
    const t = process.hrtime.bigint();
    await round();
    best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e9);
  }
  const peak = maxRssBytes();
  const r: Result = { mode, bestSeconds: best, mbPerSec: mb(SIZE) / best, baseRssMb: mb(base), peakRssMb: mb(peak), growthMb: mb(peak - base) };
  process.stdout.write(JSON.stringify(r));
}

async function main(): Promise<void> {
  const [, , role, mode, dir] = process.argv;
  if (role === '--child') return child(mode!, dir!);

  const work = await mkdtemp(join(tmpdir(), 'mailroom-bench-'));
  try {
    await randomFile(join(work, 'plain.eml'), SIZE);
    const results: Result[] = [];
    for (const m of ['buffer', 'stream', 'file']) {
      const out = execFileSync(process.execPath, [...process.execArgv, process.argv[1]!, '--child', m, work], { encoding: 'utf8' });
      results.push(JSON.parse(out) as Result);
    }
    const base = results[0]!;
    console.log(`envelope benchmark — ${mb(SIZE)} MB message, best of ${ROUNDS} rounds, node ${process.version}, ${new Date().toISOString()}`);
    console.log('mode     enc+dec MB/s   ratio vs buffer   base RSS MB   peak RSS MB   RSS growth MB   growth / message');
    for (const r of results) {
      console.log(
        `${r.mode.padEnd(8)} ${r.mbPerSec.toFixed(0).padStart(13)}   ${(r.mbPerSec / base.mbPerSec).toFixed(2).padStart(15)}   ${r.baseRssMb.toFixed(0).padStart(11)}   ${r.peakRssMb.toFixed(0).padStart(11)}   ${r.growthMb.toFixed(1).padStart(13)}   ${(r.growthMb / mb(SIZE)).toFixed(2).padStart(16)}`,
      );
    }
    const stream = results.find((r) => r.mode === 'file')!;
    const okSpeed = stream.mbPerSec >= 0.8 * base.mbPerSec;
    const okRss = stream.growthMb < 2 * mb(SIZE);
    console.log(`targets (file path): speed ≥ 0.8× buffer: ${okSpeed ? 'met' : 'MISSED'} (${(stream.mbPerSec / base.mbPerSec).toFixed(2)}×); RSS growth < 2× message: ${okRss ? 'met' : 'MISSED'} (${(stream.growthMb / mb(SIZE)).toFixed(2)}×)`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
