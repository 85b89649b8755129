import { join, resolve } from 'node:path';
import type { KMSClient } from '@aws-sdk/client-kms';
import type { S3Client } from '@aws-sdk/client-s3';
import { kmsClient, s3Client } from '../../gateway/aws/clients.js';
import { ConfigError } from '../../shared/config/index.js';
import { objectKey } from '../../shared/ses/object-key.js';
import { loadRuntime, overridesFrom, type GatewayRuntime } from '../../gateway/runtime/settings.js';
import { lineLogger, logLevel, type Logger } from '../../gateway/runtime/log.js';
import type { DrainOutcome, ReplayNode } from '../../gateway/replay/accept-node.js';
import { newCounters, runReplay, type ReplayCounters } from '../../gateway/replay/driver.js';
import { storedAddress } from '../../gateway/replay/envelope.js';
import type { MboxVariant } from '../../gateway/replay/mbox-decoder.js';
import { findRule, Planner, type ReplayPlan } from '../../gateway/replay/plan.js';
import { formatDuration, ProgressDisplay } from '../../gateway/replay/progress.js';
import { openSource } from '../../gateway/replay/sources.js';
import type { ReplayProblem, SourceNote } from '../../gateway/replay/source.js';
import { dryRunTarget, type ReplayTarget } from '../../gateway/replay/target.js';
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
  --concurrency N          messages in hand at once (default 32)
  --dry-run                store nothing: print each message's rule, bucket and key (every message is still read
                           through, so damaged input shows)
  --json                   JSON lines on stdout: one per message, problem and note, the summary last
  --deliver                store and announce in this process too (the gateway's workers), and exit once every
                           message is delivered; without it a \`mailroom worker\` on the replay spool delivers
  --spool-dir DIR          the replay's own spool (default: replay/ in the gateway's spool directory); run
                           again with the same one to resume — it holds the checkpoint of what was accepted
  --redis-url URL          Redis for the delivery jobs (env REDIS_URL; default: the config's gateway.redis.url)
  --no-bucket-check        ask the bucket (HEAD) only about messages a crash left in doubt, not about every
                           message the replay spool does not know: for a spool that has seen every earlier replay
                           of these sources (a message stored through another spool is then stored and
                           announced again)

Storing goes through the gateway's durable path: each message is written to the replay spool (fsync'd) and its
delivery jobs to Redis, under this replay's own node id; the same workers as for SMTP mail store it (header
block, encryption, multipart) and publish its notification. A message whose objects are there already (the
checkpoint, the spool, a HEAD of each key) is skipped and counted. SIGINT/SIGTERM: stop reading, finish the
messages in hand, print the summary (a second signal exits at once).

Envelope, unless --from/--to say: MAIL FROM from Return-Path (or the mbox From line); recipients from
X-Original-To or Delivered-To, else To and Cc. Problems are printed on stderr with where they are (file:line
(byte N), the file, the object key); exit 1 when any message was not stored. Details: docs/replay.md.

AWS: AWS_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3|_KMS|_SNS and the standard credential chain. Logs:
warnings and errors on stderr (LOG_LEVEL=info|debug for more).`;

export interface ReplayFlags {
  dryRun: boolean;
  json: boolean;
  deliver: boolean;
  checkBucket: boolean;
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
  'no-bucket-check': { type: 'boolean' },
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
    checkBucket: values['no-bucket-check'] !== true,
    timestamp: 'source',
    mboxVariant: 'mboxrd',
    concurrency: 32,
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

function loadConfig(values: { config?: string | undefined; 'redis-url'?: string | undefined }): GatewayRuntime | undefined {
  try {
    logLevel(); // LOG_LEVEL is refused here, before anything starts, like a bad flag
    return loadRuntime(overridesFrom({ config: values.config, 'redis-url': values['redis-url'] }));
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
    // Beside the gateway's own spool, so on the volume that outlives a container (accept-node.ts).
    const spoolDir = resolve(values['spool-dir'] ?? join(runtime.settings.spoolDir, 'replay'));
    const code = await replayRun(distinctSources(positionals), flags, runtime, spoolDir);
    // Anything a library left open must not keep a finished replay alive.
    setTimeout(() => process.exit(code), 2_000).unref();
    return code;
  },
};

/** The sources once each: the same file or object named twice would be replayed twice under the same ids. */
function distinctSources(args: string[]): string[] {
  const seen = new Set<string>();
  return args.filter((a) => {
    const k = a === '-' || a.startsWith('s3://') ? a : resolve(a);
    if (seen.has(k)) {
      console.error(`mailroom replay: note: ${a} is named more than once; replayed once`);
      return false;
    }
    seen.add(k);
    return true;
  });
}

/**
 * The gateway's log lines, for an operator watching a replay: warnings and errors (LOG_LEVEL for more) as one line
 * each on stderr, above the progress bar — level, message, then the line's own fields. Lines logged while the node
 * starts are held: a start that fails says why in one message of its own (`started(false)` drops them).
 */
function operatorLog(print: (text: string) => void): { log: Logger; started: (ok: boolean) => void } {
  const level = process.env.LOG_LEVEL ? logLevel() : 'warn';
  let held: string[] | undefined = [];
  const show = (line: string) => {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return print(`mailroom replay: ${line.trim()}`);
    }
    const { level: n, msg, time: _t, pid: _p, hostname: _h, name: _n, ...fields } = o;
    const word = ({ 10: 'trace', 20: 'debug', 30: 'info', 40: 'warning', 50: 'error', 60: 'fatal' } as Record<number, string>)[n as number] ?? String(n);
    print(`mailroom replay: ${word}: ${String(msg)}${Object.keys(fields).length ? ` ${JSON.stringify(fields)}` : ''}`);
  };
  return {
    log: lineLogger((line) => (held ? held.push(line) : show(line)), 'mailroom-replay', level),
    started: (ok) => {
      const lines = held ?? [];
      held = undefined;
      if (ok) lines.forEach(show);
    },
  };
}

/** The first SIGINT/SIGTERM aborts `stop`; a second exits at once. Returns the function that removes the handlers. */
function onSignals(stop: AbortController, said: (text: string) => void): () => void {
  const handler = (sig: NodeJS.Signals) => {
    if (stop.signal.aborted) {
      said(`mailroom replay: ${sig} again: exiting without waiting (messages in hand are not accepted; the spool keeps what was)`);
      process.exit(1);
    }
    said(`mailroom replay: ${sig}: stopping — no further message is read, those in hand finish (${sig} again to exit at once)`);
    stop.abort();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

async function replayRun(sources: string[], flags: ReplayFlags, runtime: GatewayRuntime, spoolDir: string): Promise<number> {
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
  const counters = newCounters();
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const totals = {};
  let node: ReplayNode | undefined;
  let draining = false;
  const progress = new ProgressDisplay(process.stderr, counters, totals, {
    extra: () => (node && flags.deliver ? `${draining ? 'delivering: ' : ''}${node.delivered.toLocaleString('en-US')} delivered${node.backlog > 0 ? `, ${node.backlog.toLocaleString('en-US')} to go` : ''}` : undefined),
  });
  const say = (text: string) => progress.line(text);
  const problem = (kind: string, location: string, reason: string) => {
    if (flags.json) out(JSON.stringify({ type: 'problem', kind, location, reason }));
    say(`mailroom replay: ${kind}: ${location} ${reason}`);
  };
  const note = (location: string, text: string) => {
    if (flags.json) out(JSON.stringify({ type: 'note', location, text }));
    say(`mailroom replay: note: ${location}: ${text}`);
  };

  const stop = new AbortController();
  const offSignals = onSignals(stop, say);
  let target: ReplayTarget;
  if (flags.dryRun) target = dryRunTarget();
  else {
    // Loaded only to store: a dry run needs neither BullMQ nor the workers.
    const [{ ReplayNode, replayRuntime }, { explainStartError }] = await Promise.all([import('../../gateway/replay/accept-node.js'), import('./gateway.js')]);
    const replaySpool = spoolDir;
    const logs = operatorLog(say);
    try {
      node = await ReplayNode.start({ runtime: replayRuntime(runtime, replaySpool), deliver: flags.deliver, checkBucket: flags.checkBucket, log: logs.log, note: (text) => note(replaySpool, text) });
      logs.started(true);
    } catch (err) {
      logs.started(false);
      offSignals();
      console.error(`mailroom replay: cannot store through the replay spool ${replaySpool}: ${explainStartError(err, replayRuntime(runtime, replaySpool))}`);
      return 1;
    }
    target = node.target;
    const where = `the replay spool ${node.spoolDir} (node ${node.nodeId}, Redis prefix ${runtime.settings.redis.prefix})`;
    say(
      flags.deliver
        ? `mailroom replay: storing through ${where}, delivered by this process`
        : `mailroom replay: storing through ${where}; a worker on the same machine and Redis delivers it: mailroom worker --config ${runtime.source} --spool-dir ${node.spoolDir} --node-id ${node.nodeId}`,
    );
  }
  const sizing = new AbortController();
  void estimateTotals(sources, getS3, sizing.signal).then(
    (t) => Object.assign(progress.totals, t),
    () => {}, // the bar goes without a percentage
  );

  const started = performance.now();
  let drained: DrainOutcome | undefined;
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
        signal: stop.signal,
        events: {
          message: (plan) => {
            if (flags.json) out(JSON.stringify(messageEvent(plan, flags.dryRun)));
            else if (flags.dryRun) for (const r of targets(plan)) out(`${plan.message.location}  ${r.rule}  s3://${r.bucket}/${r.key}`);
          },
          skipped: (plan) => {
            if (flags.json) out(JSON.stringify({ ...messageEvent(plan, flags.dryRun), type: 'skipped' }));
          },
          problem: (p: ReplayProblem) => {
            problem(p.kind, p.location, p.reason);
            // Refusals that will hold for every message after this one: stop, rather than fail each.
            if (node && p.kind === 'failed' && /refused by the accept path \((no-space|unavailable)\)/.test(p.reason) && !stop.signal.aborted) {
              say('mailroom replay: stopping: the accept path cannot take messages now (see above); run the same command again once it can — nothing accepted is lost, and nothing is accepted twice');
              stop.abort();
            }
          },
          note: (n: SourceNote) => note(n.location, n.text),
        },
      },
    );
    if (node && flags.deliver && !stop.signal.aborted) {
      draining = true;
      drained = await node.drain(stop.signal);
      if (!drained.drained) {
        for (const f of drained.failed) {
          const what = f.failure.kind === 'release' ? 'was delivered, but its spool file could not be released' : `was not delivered to rule "${f.failure.rule}"`;
          problem('failed', f.source ?? `message ${f.messageId}`, `${what} (${f.failure.reason}; job ${f.failure.jobId}): mailroom queue failed --node ${node.nodeId} lists it, mailroom queue retry tries again`);
        }
      }
    }
  } finally {
    sizing.abort();
    progress.stop();
    offSignals();
    if (node) await node.stop();
    else await target.close();
    s3?.destroy();
    for (const k of kms.values()) k.destroy();
  }
  const seconds = (performance.now() - started) / 1000;
  const result = outcome(counters, node, flags, drained);
  if (flags.json) out(JSON.stringify({ type: 'summary', dryRun: flags.dryRun, ...summaryCounts(counters), ...result.json, seconds: Math.round(seconds * 1000) / 1000 }));
  else process.stderr.write(summaryText(counters, seconds, flags.dryRun, result.rows));
  if (node && result.left > 0) {
    process.stderr.write(
      `mailroom replay: ${result.left.toLocaleString('en-US')} accepted message(s) are not delivered yet: they stay in ${node.spoolDir}, and the same command again (or \`mailroom worker --config ${runtime.source} --spool-dir ${node.spoolDir} --node-id ${node.nodeId}\`) delivers them\n`,
    );
  }
  if (counters.interrupted) process.stderr.write('mailroom replay: interrupted before every source was read: run the same command again to go on (what was accepted is skipped)\n');
  return counters.unmatched + counters.malformed + counters.failed + result.left > 0 || counters.interrupted ? 1 : 0;
}

/** What a storing run adds to the summary: delivery, and the spool and node it went through. */
function outcome(c: ReplayCounters, node: ReplayNode | undefined, flags: ReplayFlags, drained: DrainOutcome | undefined) {
  if (!node) return { json: {}, rows: [] as Array<[string, number]>, left: 0 };
  if (!flags.deliver) return { json: { spoolDir: node.spoolDir, nodeId: node.nodeId, queued: c.stored }, rows: [] as Array<[string, number]>, left: 0 };
  const left = drained?.drained ? 0 : c.stored - node.delivered;
  return {
    json: { spoolDir: node.spoolDir, nodeId: node.nodeId, delivered: drained?.drained ? c.stored : node.delivered, notDelivered: left },
    rows: left > 0 ? ([['not delivered yet', left]] as Array<[string, number]>) : [],
    left,
  };
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
    ...(plan.alreadyThere ? { alreadyThere: Object.fromEntries(plan.alreadyThere) } : {}),
  };
}

function summaryCounts(c: ReplayCounters) {
  return { messages: c.messages, bytes: c.bytes, stored: c.stored, alreadyStored: c.alreadyStored, unmatched: c.unmatched, malformed: c.malformed, failed: c.failed, interrupted: c.interrupted };
}

export function summaryText(c: ReplayCounters, seconds: number, dryRun: boolean, more: Array<[string, number]> = []): string {
  const n = (v: number) => v.toLocaleString('en-US').padStart(10);
  const rows: Array<[string, number]> = [
    [dryRun ? 'would be stored' : 'stored', c.stored],
    ['already there', c.alreadyStored],
    ['unmatched', c.unmatched],
    ['malformed', c.malformed],
    ['failed', c.failed],
    ...more,
  ];
  const head = `mailroom replay${dryRun ? ' (dry run: nothing stored)' : ''}: ${c.messages.toLocaleString('en-US')} messages, ${(c.bytes / (1024 * 1024)).toFixed(1)} MB in ${formatDuration(seconds)}`;
  return `${head}\n${rows.map(([label, v]) => `  ${label.padEnd(16)}${n(v)}`).join('\n')}\n`;
}
