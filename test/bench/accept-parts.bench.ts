/**
 * npm run bench:accept — where the durable accept path's CPU goes, part by part (prints figures, asserts nothing).
 *
 * The same smtp-source load as bench:gateway step 2 (10 KB, 20 sessions, connection reuse) against, each in its own
 * process: plain smtp-server that drains DATA and answers 250 (the floor); the gateway's SMTP front with the spool
 * and the queue stubbed; then with the real spool (fsync'd batch files), with the real Redis jobs, with the per-message
 * log line — and all of it, which is `mailroom smtp`. Each row: messages per second and the front process's CPU per
 * message (from /proc). Bounded: N messages per row, each smtp-source run killed after 90 s; loopback only.
 * BENCH_ROWS=1,4,1,4 runs those rows (0-based) in that order; BENCH_NODE_ARGS adds node flags to the fronts (e.g.
 * "--cpu-prof --cpu-prof-dir=<dir>": they stop with SIGTERM, so the profile gets written).
 *
 * The rows' spool directories are removed only at the end: on an ext4 without a journal (this machine's) a file
 * created soon after thousands were deleted costs ≈1 ms of kernel CPU (the inode allocator steps over every recently
 * deleted inode, perf: find_inode_bit → recently_deleted), which would charge one row's clean-up to the next.
 */
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../support/ports.js';
import { waitForPort } from '../support/process.js';
import { startRedis } from '../support/redis.js';

const SIZE = 10 * 1024;
const SESSIONS = 20;
const COUNT = Math.max(1000, Math.round(10_000 * Number(process.env.BENCH_SCALE ?? 1)));

interface Parts {
  label: string;
  /** 'bare': smtp-server alone; otherwise the gateway's SmtpFront with these parts real. */
  bare?: boolean;
  spool?: boolean;
  redis?: boolean;
  log?: boolean;
}

const ROWS: Parts[] = [
  { label: 'smtp-server alone (drain DATA, 250)', bare: true },
  { label: 'gateway SMTP front, spool and queue stubbed' },
  { label: '+ spool (fsync\'d batch files)', spool: true },
  { label: '+ Redis jobs (spool stubbed: a job per message)', redis: true },
  { label: '+ the accept log at info (spool and queue stubbed)', log: true },
  { label: 'all of it (= mailroom smtp)', spool: true, redis: true, log: true },
];

/** The front under test, in this process (run as: tsx accept-parts.bench.ts front <port> <json parts> <dir> <redis>). */
async function front(port: number, parts: Parts, dir: string, redisUrl: string): Promise<void> {
  if (parts.bare) {
    const { SMTPServer } = await import('smtp-server');
    const s = new SMTPServer({
      disabledCommands: ['AUTH', 'STARTTLS'],
      hideSTARTTLS: true,
      logger: false,
      disableReverseLookup: true,
      size: 40 * 1024 * 1024,
      onData(stream, _session, cb) {
        stream.on('data', () => undefined);
        stream.on('end', () => cb(null, 'Ok'));
      },
    });
    s.listen(port, '127.0.0.1');
    return;
  }
  const { SmtpFront } = await import('../../gateway/smtp/server.js');
  const { resolveRuntime } = await import('../../gateway/runtime/settings.js');
  const { parseConfig } = await import('../../shared/config/index.js');
  const { silentLogger, createLogger } = await import('../../gateway/runtime/log.js');
  const { SpoolDirectory } = await import('../../gateway/spool/directory.js');
  const { SpoolWriter } = await import('../../gateway/spool/writer.js');
  const { Intake } = await import('../../gateway/intake/intake.js');
  const { Enqueuer } = await import('../../gateway/queue/enqueue.js');
  const config = {
    region: 'us-east-1',
    accountId: '123456789012',
    ruleSetName: 'bench',
    rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: 'bench', objectKeyPrefix: 'in/' } }],
    gateway: { hostname: 'mx.bench.test', spoolDir: join(dir, 'spool'), smtp: { port, reverseDns: false, maxConnections: 200 } },
  };
  const runtime = resolveRuntime(parseConfig(config as never), {}, 'bench');
  type Parts = ConstructorParameters<typeof Intake>[0];
  const directory = new SpoolDirectory(join(dir, 'spool'), { spareFiles: !!parts.spool }); // as the gateway's SMTP front
  await directory.init({ clearIncoming: true });
  let writer: Parts['writer'];
  if (parts.spool) writer = new SpoolWriter(directory);
  else {
    writer = {
      receive: async (record: { envelope: { messageId: string } }, data: AsyncIterable<Buffer>) => {
        let n = 0;
        for await (const c of data) n += c.length;
        return { ok: true, dataLength: n, file: { id: record.envelope.messageId, entries: [] }, durable: Promise.resolve() };
      },
      owns: () => false,
    } as unknown as Parts['writer'];
  }
  let jobs: Parts['jobs'];
  if (parts.redis) {
    const e = new Enqueuer({ redis: { url: redisUrl, cluster: false }, prefix: `parts-${process.pid}`, timeoutMs: 5_000, policy: { attempts: 3, backoffBaseMs: 100, keepCompleted: 10 } }, silentLogger());
    await e.ready(10_000);
    jobs = e;
  } else jobs = { add: async () => undefined } as unknown as Parts['jobs'];
  const log = parts.log ? createLogger({ name: 'bench' }) : silentLogger();
  const intake = new Intake({ directory, writer, jobs, log, jobsTimeoutMs: 5_000, maxMessageBytes: runtime.config.maxMessageSize, identity: { byHost: 'mx.bench.test', accountId: '123456789012', region: 'us-east-1' } });
  await new SmtpFront({ runtime, intake, spoolDir: directory.dir, log }).listen();
}

async function cpuTicks(pid: number): Promise<number> {
  const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]);
}

function smtpSource(port: number): Promise<{ seconds: number; ok: boolean }> {
  const args = ['-s', String(SESSIONS), '-l', String(SIZE), '-m', String(COUNT), '-d', '-M', 'client.bench.test', '-f', 'bench@origin.example', '-t', 'user@example.com', `127.0.0.1:${port}`];
  return new Promise((resolve) => {
    const t = performance.now();
    const child = spawn('smtp-source', args, { stdio: 'ignore' });
    const kill = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('exit', (code) => {
      clearTimeout(kill);
      resolve({ seconds: (performance.now() - t) / 1000, ok: code === 0 });
    });
  });
}

const nodeArgs = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];

async function main(): Promise<void> {
  const redis = await startRedis();
  const results: Array<{ label: string; rate: number; cpuMs: number; ok: boolean }> = [];
  const dirs: string[] = [];
  try {
    const only = process.env.BENCH_ROWS?.split(',').map(Number);
    for (const parts of only ? only.map((i) => ROWS[i]!) : ROWS) {
      const dir = join(tmpdir(), `mailroom-parts-${process.pid}-${results.length}`);
      dirs.push(dir);
      const port = await freePort();
      // node itself with tsx's loader (not the tsx CLI, which would run the front in a grandchild): the pid measured
      // and killed is the front's.
      const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', import.meta.filename, 'front', String(port), JSON.stringify(parts), dir, redis.url], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, LOG_LEVEL: 'info', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      });
      try {
        await waitForPort(port, 30_000, child);
        const c0 = await cpuTicks(child.pid!);
        const r = await smtpSource(port);
        const cpuMs = ((await cpuTicks(child.pid!)) - c0) * 10 / COUNT; // USER_HZ = 100
        results.push({ label: parts.label, rate: COUNT / r.seconds, cpuMs, ok: r.ok });
        process.stderr.write(`[bench] ${parts.label}: ${(COUNT / r.seconds).toFixed(0)} msg/s, ${cpuMs.toFixed(3)} ms CPU/msg${r.ok ? '' : ' (smtp-source failed)'}\n`);
      } finally {
        // SIGTERM first so a --cpu-prof profile gets written; SIGKILL if it does not go.
        const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(force);
      }
    }
  } finally {
    await redis.stop();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  }
  const cpu = cpus();
  console.log(`accept path by part — ${new Date().toISOString()}, ${cpu.length} × ${cpu[0]?.model.trim()}, node ${process.version}, ${COUNT} × 10 KB, ${SESSIONS} sessions, smtp-source -d; load average ${loadavg()[0]!.toFixed(1)}`);
  const w = Math.max(...results.map((r) => r.label.length));
  console.log(`${'front'.padEnd(w)}  msg/s   CPU ms/msg`);
  for (const r of results) console.log(`${r.label.padEnd(w)}  ${r.rate.toFixed(0).padStart(5)}   ${r.cpuMs.toFixed(3)}${r.ok ? '' : '  (smtp-source failed)'}`);
}

if (process.argv[2] === 'front') {
  // A clean exit on SIGTERM, so `node --cpu-prof` can write its profile.
  process.once('SIGTERM', () => process.exit(0));
  await front(Number(process.argv[3]), JSON.parse(process.argv[4]!) as Parts, process.argv[5]!, process.argv[6]!);
} else {
  await main();
  process.exit(0);
}
