/**
 * npx tsx test/bench/replay-memory.ts [GiB] — peak RSS of `mailroom replay --dry-run` over one big mbox (default
 * 2 GiB), written here as a stream: mostly ~10 KB messages, some of 1 MB, a few of 30 MB, bodies with "From " lines
 * to unquote. The dry run reads every message twice (measure and hash, then the body), as a real replay does, so
 * this is the source side's memory bound; the target is the goal ≤ 256 MB.
 *
 * Peak RSS is the child's maxrss as GNU time reports it. Needs ~2 GiB of free disk in the temp directory.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

const GIB = 1024 ** 3;
const size = Number(process.argv[2] ?? 2) * GIB;
const CLI = join(import.meta.dirname, '..', '..', 'bin', 'mailroom.js');

/** 1 MiB of base64 text in 76-character lines to cut bodies from. */
const TEXT = Buffer.from(
  randomBytes(768 * 1024)
    .toString('base64')
    .replace(/.{76}/g, '$&\n'),
);

function body(bytes: number): Buffer {
  const parts: Buffer[] = [];
  for (let left = bytes; left > 0; left -= TEXT.length) parts.push(TEXT.subarray(0, Math.min(left, TEXT.length)));
  return Buffer.concat([Buffer.from('From the first line, quoted\n>From a quoted one\n'), ...parts, Buffer.from('\n')]);
}

async function writeMbox(path: string): Promise<{ messages: number }> {
  const out = createWriteStream(path, { highWaterMark: 1 << 20 });
  let written = 0;
  let messages = 0;
  const small = body(10 * 1024);
  const medium = body(1024 * 1024);
  const large = body(30 * 1024 * 1024);
  while (written < size) {
    const n = messages++;
    const b = n % 20_000 === 19_999 ? large : n % 100 === 99 ? medium : small;
    const head = Buffer.from(
      `From sender${n}@sender.example Sat Jan  3 01:05:34 2004\nReturn-Path: <sender${n}@sender.example>\nFrom: sender${n}@sender.example\nTo: user${n % 50}@example.com\nSubject: message ${n}\nDate: Sat, 3 Jan 2004 01:05:34 +0000\n\n`,
    );
    const quoted = Buffer.from(b.toString('latin1').replace(/^(>*From )/gm, '>$1'), 'latin1');
    for (const part of [head, quoted, Buffer.from('\n')]) {
      written += part.length;
      if (!out.write(part)) await once(out, 'drain');
    }
  }
  out.end();
  await once(out, 'finish');
  return { messages };
}

const dir = await mkdtemp(join(tmpdir(), 'mailroom-replay-bench-'));
try {
  const mbox = join(dir, 'big.mbox');
  const config = join(dir, 'mailroom.json');
  writeFileSync(config, JSON.stringify({ region: 'us-east-1', accountId: '123456789012', ruleSetName: 'bench', rules: [{ name: 'inbox', recipients: ['example.com'], s3Action: { bucketName: 'bench' } }] }));
  let t = performance.now();
  const { messages } = await writeMbox(mbox);
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
