import type { KMSClient } from '@aws-sdk/client-kms';
import type { S3Client } from '@aws-sdk/client-s3';
import { kmsClient, s3Client } from '../../gateway/aws/clients.js';
import { ConfigError } from '../../shared/config/index.js';
import { objectKey } from '../../shared/ses/object-key.js';
import { loadRuntime, overridesFrom, type GatewayRuntime } from '../../gateway/runtime/settings.js';
import { newCounters, runReplay, type ReplayCounters } from '../../gateway/replay/driver.js';
import { storedAddress } from '../../gateway/replay/envelope.js';
import type { MboxVariant } from '../../gateway/replay/mbox-decoder.js';
import { findRule, Planner, type ReplayPlan } from '../../gateway/replay/plan.js';
import { formatDuration, ProgressDisplay } from '../../gateway/replay/progress.js';
import { openSource } from '../../gateway/replay/sources.js';
import type { ReplayProblem, SourceNote } from '../../gateway/replay/source.js';
import { dryRunTarget } from '../../gateway/replay/target.js';
import { estimateTotals } from '../../gateway/replay/totals.js';
import { parse } from '../command/args.js';
import { UsageError, type Command } from '../command/command.js';

const USAGE = `usage: mailroom replay <source>… --config <file> [options]

Stores mail from archives and from other buckets into the config's buckets as SES stores what it receives: each
message matched to the receipt rules by its recipients, under a message id derived from the source message (the
same on every run, so a second run stores nothing twice), with the source's receipt time.

sources (told apart by what they are, not by their names):
  FILE                 one message (an .eml export)
  DIR                  the .eml files under DIR, recursively
  MBOX                 an mbox file (its "From " lines separate the messages)
  MAILDIR              a Maildir: cur/ and new/ (tmp/ skipped), and its Maildir++ folders
  s3://BUCKET/PREFIX   messages SES or the gateway stored under PREFIX, encrypted or not (the header block at the
                       top of each is read for the original envelope and not stored twice)
  -                    one message on standard input

options:
  --config FILE            config file (env MAILROOM_CONFIG)
  --rule NAME              store every message under this receipt rule, whatever its recipients
  --from ADDR              MAIL FROM of every message ("" or "<>": the null sender)
  --to ADDR                a recipient of every message (repeat for more); routes like RCPT TO
  --timestamp source|now   receipt time: the source's (default: mbox From line, Date header, Maildir file
                           time, the stored Received date) or the time of the replay
  --mbox-format mboxrd|mboxo  how the mbox files quote body lines beginning "From " (default mboxrd; the note
                           after a run says when the choice mattered)
  --rate N                 start at most N messages a second
  --concurrency N          messages in hand at once (default 8)
  --dry-run                store nothing: print each message's rule, bucket and key (every message is still read
                           through, so damaged input shows)
  --json                   JSON lines on stdout: one per message, problem and note, the summary last
  --spool-dir DIR, --redis-url URL, --deliver
                           for storing, through the gateway's accept path (spool, queue, workers): not wired
                           in this build, which replays with --dry-run only

Envelope, unless --from/--to say: MAIL FROM from Return-Path (or the mbox From line); recipients from
X-Original-To or Delivered-To, else To and Cc. Problems are printed on stderr with where they are (file:line
(byte N), the file, the object key); exit 1 when any message was not stored. Details: docs/replay.md.

AWS (s3:// sources): AWS_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3|_KMS and the standard credential chain.`;

export interface ReplayFlags {
  dryRun: boolean;
  json: boolean;
  deliver: boolean;
  rule?: string;
  from?: string;
  to?: string[];
  timestamp: 'source' | 'now';
  mboxVariant: MboxVariant;
  rate?: number;
  concurrency: number;
}

const OPTIONS = {
  config: { type: 'string' },
  'spool-dir': { type: 'string' },
  'redis-url': { type: 'string' },
  deliver: { type: 'boolean' },
  rule: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string', multiple: true },
  timestamp: { type: 'string' },
  'mbox-format': { type: 'string' },
  rate: { type: 'string' },
  concurrency: { type: 'string' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

/** The replay's own flags, checked; each error names the flag and the fix. */
export function replayFlags(values: ReturnType<typeof parse<typeof OPTIONS>>['values']): ReplayFlags {
  const flags: ReplayFlags = {
    dryRun: values['dry-run'] === true,
    json: values.json === true,
    deliver: values.deliver === true,
    timestamp: 'source',
    mboxVariant: 'mboxrd',
    concurrency: 8,
  };
  if (values.timestamp !== undefined) {
    if (values.timestamp !== 'source' && values.timestamp !== 'now') throw new UsageError(`--timestamp "${values.timestamp}" is neither source nor now: write --timestamp source (the source's receipt time) or --timestamp now`);
    flags.timestamp = values.timestamp;
  }
  if (values['mbox-format'] !== undefined) {
    const v = values['mbox-format'].toLowerCase();
    if (v !== 'mboxrd' && v !== 'mboxo') throw new UsageError(`--mbox-format "${values['mbox-format']}" is neither mboxrd nor mboxo: write --mbox-format mboxrd (the default) or --mbox-format mboxo`);
    flags.mboxVariant = v;
  }
  if (values.rate !== undefined) {
    const n = Number(values.rate);
    if (!/^\d+(\.\d+)?$/.test(values.rate.trim()) || !(n > 0) || n > 100_000) throw new UsageError(`--rate "${values.rate}" is not a number of messages a second greater than 0 (at most 100000): write e.g. --rate 50`);
    flags.rate = n;
  }
  if (values.concurrency !== undefined) {
    const n = Number(values.concurrency);
    if (!/^\d+$/.test(values.concurrency.trim()) || n < 1 || n > 1000) throw new UsageError(`--concurrency "${values.concurrency}" is not a whole number from 1 to 1000: write e.g. --concurrency 8`);
    flags.concurrency = n;
  }
  if (values.rule !== undefined) {
    if (values.rule.trim() === '') throw new UsageError('--rule is empty: give the name of one of the config\'s receipt rules');
    flags.rule = values.rule;
  }
  if (values.from !== undefined) {
    const v = values.from.trim();
    if (v === '' || v === '<>') flags.from = '';
    else {
      const a = storedAddress(v);
      if (!a) throw new UsageError(`--from "${values.from}" is not an address: write it as local@domain, or --from '<>' for the null sender`);
      flags.from = a;
    }
  }
  if (values.to !== undefined) {
    flags.to = values.to.map((t) => {
      const a = storedAddress(t);
      if (!a) throw new UsageError(`--to "${t}" is not an address: write it as local@domain (repeat --to for each recipient)`);
      return a;
    });
  }
  return flags;
}

function loadConfig(values: { config?: string | undefined; 'spool-dir'?: string | undefined; 'redis-url'?: string | undefined }): GatewayRuntime | undefined {
  try {
    return loadRuntime(overridesFrom({ config: values.config, 'spool-dir': values['spool-dir'], 'redis-url': values['redis-url'] }));
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`mailroom replay: ${err.message}`);
      return undefined;
    }
    throw err;
  }
}

export const replay: Command = {
  name: 'replay',
  summary: 'store mail from mbox, Maildir, .eml files or another bucket as SES would have',
  usage: USAGE,
  async run(args) {
    const { values, positionals } = parse(args, OPTIONS);
    if (positionals.length === 0) throw new UsageError('name at least one source: a file, a directory, an mbox, a Maildir, s3://bucket/prefix, or - for standard input');
    if (positionals.filter((p) => p === '-').length > 1) throw new UsageError('- (one message on standard input) can be given once');
    const flags = replayFlags(values);
    const runtime = loadConfig(values);
    if (!runtime) return 2;
    const { config } = runtime;
    if (flags.rule !== undefined) {
      const rule = findRule(config, flags.rule);
      if (!rule) throw new UsageError(`--rule "${flags.rule}" names no receipt rule of ${runtime.source}: use one of ${config.rules.map((r) => `"${r.name}"`).join(', ')}`);
      if (!rule.enabled) console.error(`mailroom replay: note: rule "${rule.name}" is disabled in ${runtime.source}; --rule stores under it anyway`);
    }
    if (!flags.dryRun) {
      console.error('mailroom replay: storing needs the gateway\'s accept path (the Intake), which this build does not have yet; run with --dry-run to check a replay (it reads every message and prints where each would be stored)');
      return 1;
    }
    return replayRun(positionals, flags, runtime);
  },
};

async function replayRun(sources: string[], flags: ReplayFlags, runtime: GatewayRuntime): Promise<number> {
  const { config } = runtime;
  let s3: S3Client | undefined;
  const kms = new Map<string, KMSClient>();
  const getS3 = () => (s3 ??= s3Client());
  const aws = () => ({
    s3: getS3(),
    kmsFor: (region: string | undefined) => {
      const r = region ?? '';
      if (!kms.has(r)) kms.set(r, kmsClient(region ? { region } : {}));
      return kms.get(r)!;
    },
  });

  const planner = new Planner({ config, ...(flags.rule !== undefined ? { rule: flags.rule } : {}), envelope: { ...(flags.from !== undefined ? { from: flags.from } : {}), ...(flags.to ? { to: flags.to } : {}) }, timestamp: flags.timestamp });
  const target = dryRunTarget();
  const counters = newCounters();
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const totals = {};
  const progress = new ProgressDisplay(process.stderr, counters, totals);
  const sizing = new AbortController();
  void estimateTotals(sources, getS3, sizing.signal).then(
    (t) => Object.assign(progress.totals, t),
    () => {}, // the bar goes without a percentage
  );

  const started = performance.now();
  progress.start();
  try {
    await runReplay(
      sources.map((arg) => openSource(arg, { mboxVariant: flags.mboxVariant, maxBytes: config.maxMessageSize, aws, stdin: process.stdin })),
      {
        concurrency: flags.concurrency,
        ...(flags.rate !== undefined ? { rate: flags.rate } : {}),
        maxBytes: config.maxMessageSize,
        plan: (m) => planner.plan(m),
        target,
        counters,
        events: {
          message: (plan) => {
            if (flags.json) out(JSON.stringify(messageEvent(plan, flags.dryRun)));
            else if (flags.dryRun) for (const r of targets(plan)) out(`${plan.message.location}  ${r.rule}  s3://${r.bucket}/${r.key}`);
          },
          skipped: (plan) => {
            if (flags.json) out(JSON.stringify({ ...messageEvent(plan, flags.dryRun), type: 'skipped' }));
          },
          problem: (p: ReplayProblem) => {
            if (flags.json) out(JSON.stringify({ type: 'problem', kind: p.kind, location: p.location, reason: p.reason }));
            progress.line(`mailroom replay: ${p.kind}: ${p.message}`);
          },
          note: (n: SourceNote) => {
            if (flags.json) out(JSON.stringify({ type: 'note', location: n.location, text: n.text }));
            progress.line(`mailroom replay: note: ${n.location}: ${n.text}`);
          },
        },
      },
    );
  } finally {
    sizing.abort();
    progress.stop();
    await target.close();
    s3?.destroy();
    for (const k of kms.values()) k.destroy();
  }
  const seconds = (performance.now() - started) / 1000;
  if (flags.json) out(JSON.stringify({ type: 'summary', dryRun: flags.dryRun, ...summaryCounts(counters), seconds: Math.round(seconds * 1000) / 1000 }));
  else process.stderr.write(summaryText(counters, seconds, flags.dryRun));
  return counters.unmatched + counters.malformed + counters.failed > 0 ? 1 : 0;
}

function targets(plan: ReplayPlan): Array<{ rule: string; bucket: string; key: string }> {
  return plan.accept.rules.map((r) => ({ rule: r.name, bucket: r.s3Action.bucketName, key: objectKey(r.s3Action.objectKeyPrefix, plan.accept.messageId) }));
}

function messageEvent(plan: ReplayPlan, dryRun: boolean) {
  const a = plan.accept;
  return {
    type: 'message',
    dryRun,
    location: plan.message.location,
    messageId: a.messageId,
    mailFrom: a.mailFrom,
    mailFromSource: plan.mailFromSource,
    recipients: a.recipients,
    recipientsSource: plan.recipientsSource,
    timestamp: a.receivedAt?.toISOString() ?? null,
    timestampSource: plan.timestampSource,
    client: a.client ?? null,
    dataLength: plan.message.dataLength ?? null,
    rules: targets(plan),
  };
}

function summaryCounts(c: ReplayCounters) {
  return { messages: c.messages, bytes: c.bytes, stored: c.stored, alreadyStored: c.alreadyStored, unmatched: c.unmatched, malformed: c.malformed, failed: c.failed };
}

export function summaryText(c: ReplayCounters, seconds: number, dryRun: boolean): string {
  const n = (v: number) => v.toLocaleString('en-US').padStart(10);
  const rows: Array<[string, number]> = [
    [dryRun ? 'would be stored' : 'stored', c.stored],
    ['already there', c.alreadyStored],
    ['unmatched', c.unmatched],
    ['malformed', c.malformed],
    ['failed', c.failed],
  ];
  const head = `mailroom replay${dryRun ? ' (dry run: nothing stored)' : ''}: ${c.messages.toLocaleString('en-US')} messages, ${(c.bytes / (1024 * 1024)).toFixed(1)} MB in ${formatDuration(seconds)}`;
  return `${head}\n${rows.map(([label, v]) => `  ${label.padEnd(16)}${n(v)}`).join('\n')}\n`;
}
