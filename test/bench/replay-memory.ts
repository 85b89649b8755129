/**
 * npx tsx test/bench/replay-memory.ts [GiB] — peak RSS of `mailroom replay --dry-run` over one big mbox (default
 * 2 GiB), written here as a stream: mostly ~10 KB messages, some of 1 MB, a few of 30 MB, bodies with "From " lines
 * to unquote. The dry run reads every message twice (measure and hash, then the body), as a real replay does, so
 * this is the source side's memory bound; the target is the goal ≤ 256 MB.
 *
 * Peak RSS is the child's maxrss as GNU time reports it. Needs ~2 GiB of free disk in the temp directory.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeMbox } from './mbox-writer.js';

const GIB = 1024 ** 3;
const size = Number(process.argv[2] ?? 2) * GIB;
const CLI = join(import.meta.dirname, '..', '..', 'bin', 'mailroom.js');

const dir = await mkdtemp(join(tmpdir(), 'mailroom-replay-bench-'));
try {
  const mbox = join(dir, 'big.mbox');
  const config = join(dir, 'mailroom.json');
  writeFileSync(config, JSON.stringify({ region: 'us-east-1', accountId: '123456789012', ruleSetName: 'bench', rules: [{ name: 'inbox', recipients: ['example.com'], s3Action: { bucketName: 'bench' } }] }));
  let t = performance.now();
  const { messages } = await writeMbox(mbox, { maxBytes: size, averageBytes: 10 * 1024, bigger: [{ every: 20_000, bytes: 30 * 1024 * 1024 }, { every: 100, bytes: 1024 * 1024 }] });
  console.log(`wrote ${messages} messages, ${(size / GIB).toFixed(2)} GiB, in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  t = performance.now();
  const child = spawnSync('/usr/bin/time', ['-f', 'maxrss_kb=%M', process.execPath, CLI, 'replay', mbox, '--config', config, '--dry-run'], {
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 64 << 20,
  });
  const stderr = child.stderr;
  if (child.status !== 0) throw new Error(`the dry run exited ${child.status}:\n${stderr.slice(-2000)}`);
  const seconds = (performance.now() - t) / 1000;
  const rss = Number(/maxrss_kb=(\d+)/.exec(stderr)?.[1]) / 1024;
  console.log(stderr.split('\n').filter((l) => /^\s+\w|replay \(dry run/.test(l)).join('\n'));
  console.log(`dry run: ${seconds.toFixed(1)} s, ${((size / (1024 * 1024)) / seconds).toFixed(0)} MB/s, peak RSS ${rss.toFixed(0)} MB (goal ≤ 256 MB)`);
  if (rss > 256) process.exitCode = 1;
} catch (err) {
  console.error((err as Error).message);
  process.exitCode = 1;
} finally {
  await rm(dir, { recursive: true, force: true });
}
