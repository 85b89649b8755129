/**
 * What the greeting delay costs (run: `npx tsx test/bench/greeting.bench.ts`; prints figures, asserts nothing).
 *
 * smtp-server greets every connection after a fixed 100 ms (early-talker detection). A client that opens one
 * connection per message then waits 100 ms per message per session; one that reuses its connection pays once.
 * The gateway keeps the delay (gateway.smtp.greetingDelayMs) for strangers and skips it for trustedNetworks (your
 * relays). This measures the durable accept path (SMTP → fsync'd spool → Redis jobs → 250, workers off) with
 * Postfix's smtp-source, per connection and with reuse (-d), with the delay applied and skipped.
 *
 * Bounded: a few thousand 1 KB messages per row, each run killed after 120 s; Redis and the gateway on loopback.
 */
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../shared/config/index.js';
import { startGateway } from '../../gateway/gateway.js';
import { silentLogger } from '../../gateway/runtime/log.js';
import { resolveRuntime } from '../../gateway/runtime/settings.js';
import { tempDir } from '../support/files.js';
import { startRedis } from '../support/redis.js';

const SIZE = 1024;

function smtpSource(port: number, sessions: number, count: number, reuse: boolean): Promise<{ seconds: number; ok: boolean; out: string }> {
  const args = ['-s', String(sessions), '-l', String(SIZE), '-m', String(count), ...(reuse ? ['-d'] : []), '-M', 'client.bench.test', '-f', 'sender@origin.example', '-t', 'user@example.com', `127.0.0.1:${port}`];
  return new Promise((resolve) => {
    const t = performance.now();
    const child = spawn('smtp-source', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-2000)));
    child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-2000)));
    const kill = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('exit', (code) => {
      clearTimeout(kill);
      resolve({ seconds: (performance.now() - t) / 1000, ok: code === 0, out });
    });
  });
}

async function main(): Promise<void> {
  const redis = await startRedis();
  const dir = await tempDir('mailroom-greeting-bench-');
  const rows: string[][] = [['greeting', 'connections', 'sessions', 'messages', 'seconds', 'msg/s']];
  try {
    for (const [label, trusted] of [
      ['100 ms (untrusted client)', [] as string[]],
      ['skipped (trustedNetworks)', ['127.0.0.0/8']],
    ] as const) {
      const runtime = resolveRuntime(
        parseConfig(
          {
            region: 'us-east-1',
            accountId: '123456789012',
            ruleSetName: 'bench',
            rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: 'bench' } }],
            gateway: {
              hostname: 'mx.bench.test',
              spoolDir: join(dir.path, label.replace(/\W+/g, '-')),
              smtp: { port: 0, reverseDns: false, greetingDelayMs: 100, trustedNetworks: [...trusted], maxConnections: 500 },
              redis: { url: redis.url, prefix: `greeting-${rows.length}` },
            },
          },
          'bench',
        ),
        {},
        'bench',
      );
      const gw = await startGateway(runtime, { smtp: true, workers: false }, silentLogger());
      try {
        const port = gw.smtpAddress!.port;
        for (const [sessions, count, reuse] of [
          [1, 50, false],
          [1, 500, true],
          [20, 1000, false],
          [20, 3000, true],
        ] as const) {
          const r = await smtpSource(port, sessions, count, reuse);
          rows.push([label, reuse ? 'reused (-d)' : 'one per message', String(sessions), String(count), r.seconds.toFixed(2), r.ok ? (count / r.seconds).toFixed(0) : `failed: ${r.out.trim().split('\n').pop()}`]);
          console.error(rows.at(-1)!.join(' | '));
        }
      } finally {
        await gw.stop();
      }
    }
  } finally {
    await redis.stop();
    await dir.remove();
  }
  console.log(`\nGreeting delay, durable accept (spool fsync + Redis), ${SIZE} B messages, ${cpus().length} cores, ${new Date().toISOString().slice(0, 10)}\n`);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const [i, r] of rows.entries()) {
    console.log(`| ${r.map((c, j) => c.padEnd(widths[j]!)).join(' | ')} |`);
    if (i === 0) console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err);
    process.exit(1);
  },
);
