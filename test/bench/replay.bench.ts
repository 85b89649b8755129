/**
 * npm run bench:replay — `mailroom replay --deliver` storing an mbox for real (replay spool → Redis jobs → the
 * gateway's workers → S3 with the KMS envelope → SNS), in one bounded run on loopback:
 *
 *   1. A 10,000-message mbox (10 KB average) to the local sink (test/bench/s3-sink.ts: S3, KMS GenerateDataKey and
 *      SNS answered and discarded) and to moto, each next to the yardstick bench:gateway has: the same number of
 *      same-sized messages stored by SES-format calls made directly (GenerateDataKey + upload, a PublishBatch per
 *      10; `sesFormatCalls`), run before and after the replay, the faster taken. Target: ≥ 0.8× of it. On moto also
 *      with --no-bucket-check, which drops the HEAD of each key (what that request costs an emulator).
 *   2. A 2 GB mbox (bodies of 100 KB, every 50th of 1 MB, every 2,000th of 30 MB: 2 GB in a bounded number of
 *      messages) to the sink. Target: peak RSS ≤ 256 MB — the sources streamed, never read whole.
 *
 * Rates are messages over the replay's own time (its JSON summary: from the first message read to the last
 * delivered, start-up left out as the yardstick's warm-up is). Peak RSS is the replay process's maxrss (GNU time).
 * BENCH_STEPS=1,2 runs a subset; BENCH_SCALE=0.1 shrinks the counts and the 2 GB; BENCH_MOTO=0 skips moto.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateTopicCommand, SNSClient } from '@aws-sdk/client-sns';
import { buildHeaderBlock } from '../../shared/ses/header-block.js';
import { startMoto, type Moto } from '../support/moto.js';
import { startRedis } from '../support/redis.js';
import { faster, sesFormatCalls, startSinkProc } from './gateway.bench.js';
import { writeMbox } from './mbox-writer.js';
import { printReport, type Row } from './report.js';

const ROOT = join(import.meta.dirname, '..', '..');
const MAILROOM = join(ROOT, 'bin', 'mailroom.js');
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const STEPS = new Set((process.env.BENCH_STEPS ?? '1,2').split(',').map((s) => s.trim()));
const REGION = 'us-east-1';
const ACCOUNT = '123456789012';
const MESSAGES = Math.max(200, Math.round(10_000 * SCALE));
const BIG_BYTES = Math.round(2 * 1024 ** 3 * SCALE);
const MB = 1024 * 1024;

const log = (s: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

interface ReplayRun {
  label: string;
  ok: boolean;
  note?: string;
  messages: number;
  bytes: number;
  seconds: number;
  rate: number;
  rssMb: number;
}

/** One `mailroom replay --deliver` of `mbox`, under GNU time; its JSON summary and peak RSS. */
async function replayRun(label: string, work: string, mbox: string, redisUrl: string, rule: { kmsKeyArn: string; topicArn: string }, awsEnv: Record<string, string>, timeoutMs: number, extraArgs: string[] = []): Promise<ReplayRun> {
  const config = join(work, `${label}.json`);
  await writeFile(
    config,
    JSON.stringify({
      region: REGION,
      accountId: ACCOUNT,
      ruleSetName: 'bench',
      rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: 'bench', objectKeyPrefix: `${label}/`, ...rule } }],
      gateway: { hostname: 'replay.bench.test', spoolDir: join(work, `spool-${label}`), redis: { url: redisUrl, prefix: `bench-${label}` } },
    }),
  );
  const env = { ...process.env, AWS_REGION: REGION, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', LOG_LEVEL: '', ...awsEnv };
  const child = spawn('/usr/bin/time', ['-f', 'maxrss_kb=%M', process.execPath, MAILROOM, 'replay', mbox, '--config', config, '--deliver', '--json', ...extraArgs], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-20_000)));
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  const summary = stdout
    .split('\n')
    .filter((l) => l.startsWith('{"type":"summary"'))
    .map((l) => JSON.parse(l) as { messages: number; bytes: number; stored: number; delivered: number; seconds: number })[0];
  const rssMb = Number(/maxrss_kb=(\d+)/.exec(stderr)?.[1]) / 1024;
  if (!summary) {
    log(`${label}: no summary (exit ${code}): ${stderr.slice(-1500)}`);
    return { label, ok: false, note: `exit ${code}, no summary`, messages: 0, bytes: 0, seconds: 0, rate: 0, rssMb };
  }
  const ok = code === 0 && summary.delivered === summary.messages;
  const r: ReplayRun = { label, ok, messages: summary.delivered, bytes: summary.bytes, seconds: summary.seconds, rate: summary.delivered / summary.seconds, rssMb };
  if (!ok) r.note = `exit ${code}, ${summary.delivered}/${summary.messages} delivered: ${stderr.split('\n').filter((l) => l.startsWith('mailroom replay:')).slice(-3).join(' | ')}`;
  log(`${label}: ${r.messages} messages, ${(r.bytes / MB).toFixed(0)} MB in ${r.seconds.toFixed(1)} s = ${r.rate.toFixed(0)} msg/s, ${(r.bytes / MB / r.seconds).toFixed(1)} MB/s, peak RSS ${rssMb.toFixed(0)} MB${ok ? '' : ` (${r.note})`}`);
  return r;
}


async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'mailroom-replaybench-'));
  const rows: Row[] = [];
  const cleanups: Array<() => Promise<unknown>> = [];
  const started = new Date();
  const load0 = loadavg()[0]!;
  try {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const sink = await startSinkProc(work);
    cleanups.push(() => sink.proc.stop());
    const sinkRule = { kmsKeyArn: `arn:aws:kms:${REGION}:${ACCOUNT}:key/11111111-2222-3333-4444-555555555555`, topicArn: `arn:aws:sns:${REGION}:${ACCOUNT}:bench` };

    if (STEPS.has('1')) {
      const mbox = join(work, 'ten-thousand.mbox');
      const written = await writeMbox(mbox, { maxMessages: MESSAGES, averageBytes: 10 * 1024 - 200 });
      // What each stored object holds: the DATA behind a header block like this one, and the GCM tag.
      const block = Buffer.byteLength(buildHeaderBlock({ mailFrom: 'sender1234@sender.example', byHost: 'replay.bench.test', messageId: 'x'.repeat(40), recipients: ['user12@example.com'], receivedAt: new Date() }));
      const stored = Math.round(written.dataBytes / written.messages) + block + 16;
      log(`mbox: ${written.messages} messages, ${(written.bytes / MB).toFixed(1)} MB (${(written.dataBytes / written.messages / 1024).toFixed(1)} KB DATA each; stored objects ≈ ${stored} bytes)`);

      /** The replay between two runs of the yardstick; on moto also without the HEAD of each key (--no-bucket-check). */
      const pair = async (label: string, endpoint: string, rule: { kmsKeyArn: string; topicArn: string }, timeoutMs: number, withoutHead: boolean) => {
        const before = await sesFormatCalls(`SES-format calls → ${label}`, endpoint, 'bench', rule.kmsKeyArn, rule.topicArn, written.messages, stored, timeoutMs);
        const run = await replayRun(`replay-${label}`, work, mbox, redis.url, rule, { AWS_ENDPOINT_URL: endpoint }, timeoutMs);
        const trusting = withoutHead ? await replayRun(`replay-${label}-nohead`, work, mbox, redis.url, rule, { AWS_ENDPOINT_URL: endpoint }, timeoutMs, ['--no-bucket-check']) : undefined;
        const after = await sesFormatCalls(`SES-format calls → ${label}, again`, endpoint, 'bench', rule.kmsKeyArn, rule.topicArn, written.messages, stored, timeoutMs);
        const calls = faster(before, after);
        rows.push({ what: `SES-format calls, no gateway → ${label} (${written.messages} × ${(stored / 1024).toFixed(1)} KB; faster of before/after)`, figure: `${calls.rate.toFixed(0)} msg/s (other: ${calls.other?.toFixed(0)})${calls.ok ? '' : ` (${calls.note})`}` });
        for (const [r, how] of [[run, ''], [trusting, ', --no-bucket-check (no HEAD per object)']] as const) {
          if (!r) continue;
          const ratio = r.rate / calls.rate;
          rows.push({
            what: `mailroom replay --deliver${how}, ${written.messages}-message mbox → ${label} (peak RSS ${r.rssMb.toFixed(0)} MB)`,
            figure: `${r.rate.toFixed(0)} msg/s, ${(r.bytes / MB / r.seconds).toFixed(1)} MB/s${r.ok ? '' : ` (${r.note})`}`,
            ratio: `${ratio.toFixed(2)}×`,
            ...(how ? {} : { target: '≥ 0.8× calls', verdict: r.ok && calls.ok && ratio >= 0.8 ? ('met' as const) : ('MISSED' as const) }),
          });
        }
      };
      await pair('sink', sink.endpoint, sinkRule, 300_000, false);
      log(`sink stats: ${JSON.stringify(await sink.stats())}`);

      let moto: Moto | undefined;
      try {
        if (process.env.BENCH_MOTO === '0') throw new Error('BENCH_MOTO=0');
        moto = await startMoto();
      } catch (err) {
        log(`moto unavailable: ${(err as Error).message}`);
      }
      if (moto) {
        const m = moto;
        cleanups.push(() => m.stop());
        const cfg = { region: REGION, endpoint: moto.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } };
        const s3 = new S3Client({ ...cfg, forcePathStyle: true });
        const kms = new KMSClient(cfg);
        const sns = new SNSClient(cfg);
        await s3.send(new CreateBucketCommand({ Bucket: 'bench' }));
        const rule = { kmsKeyArn: (await kms.send(new CreateKeyCommand({ Description: 'bench' }))).KeyMetadata!.Arn!, topicArn: (await sns.send(new CreateTopicCommand({ Name: 'bench' }))).TopicArn! };
        [s3, kms, sns].forEach((c) => c.destroy());
        await pair('moto', moto.endpoint, rule, 600_000, true);
        await m.stop();
      }
      await rm(mbox, { force: true });
    }

    if (STEPS.has('2')) {
      const mbox = join(work, 'two-gigabytes.mbox');
      const written = await writeMbox(mbox, { maxBytes: BIG_BYTES, averageBytes: 100 * 1024, bigger: [{ every: 2_000, bytes: 30 * MB }, { every: 50, bytes: MB }] });
      log(`mbox: ${written.messages} messages, ${(written.bytes / 1024 ** 3).toFixed(2)} GiB`);
      const run = await replayRun('replay-big-sink', work, mbox, redis.url, sinkRule, { AWS_ENDPOINT_URL: sink.endpoint }, 900_000);
      rows.push({
        what: `mailroom replay --deliver, ${(written.bytes / 1024 ** 3).toFixed(2)} GiB mbox (${written.messages} messages: 100 KB, 1 MB, 30 MB) → sink: peak RSS`,
        figure: `${run.rssMb.toFixed(0)} MB (${run.rate.toFixed(0)} msg/s, ${(run.bytes / MB / run.seconds).toFixed(1)} MB/s)${run.ok ? '' : ` (${run.note})`}`,
        target: '≤ 256 MB',
        verdict: run.ok && run.rssMb <= 256 ? 'met' : 'MISSED',
      });
      await rm(mbox, { force: true });
    }

    printReport('replay benchmark', started, load0, 'loopback', rows);
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    if (!process.env.BENCH_KEEP) await rm(work, { recursive: true, force: true });
    else log(`kept ${work}`);
  }
}

await main();
process.exit(0);
