/**
 * A load run from start to end: checks (config, loopback, the target answers), the watchers, the load itself, the
 * wait for deliveries, the output — and the temporary queue removed whatever happens (error, Ctrl-C, SIGTERM).
 */
import { access, readFile, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { AwsClients } from '../gateway/worker/aws.js';
import { headBucket } from '../gateway/observability/rule-buckets.js';
import { RecipientRouter } from '../gateway/smtp/routing.js';
import { rulesAwaitingCreatedKey } from '../gateway/runtime/settings.js';
import { ConfigError, loadConfigFile, type ReceivingConfig } from '../shared/config/index.js';
import { GatewaySettingsSchema } from '../shared/config/gateway.js';
import { UsageError } from '../cli/command/command.js';
import { DeliveryTracker, type RuleCopy } from './deliveries.js';
import { drive, type DriveResult, type Lane } from './driver.js';
import { classifySmtpError } from './errors.js';
import { MessageFactory, newRunId } from './messages.js';
import { ObjectWatcher } from './object-watch.js';
import { MAX_MESSAGE_BYTES, type LoadOptions, type SmtpLoadOptions, type UploadLoadOptions } from './options.js';
import { Progress } from './progress.js';
import { Publisher } from './publisher.js';
import { recipientFor, recipientsFor } from './recipients.js';
import { Recorder } from './recorder.js';
import { renderReport } from './report.js';
import { buildResult, type LoadResult } from './result.js';
import { remoteAwsTargets, remoteSmtpTarget } from './safety.js';
import { openConnection, SmtpLane, type SmtpTarget } from './smtp-lane.js';
import { formatTable } from './table.js';
import { TopicWatcher, type Leftover } from './topic-watch.js';
import { formatBytes, formatDuration } from './units.js';
import { UploadLane } from './upload-lane.js';
import { readPassword } from './password.js';

export interface LoadIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (on: boolean) => unknown };
  env: NodeJS.ProcessEnv;
}

/** Stands for a problem found before any load was sent: printed as it is, exit code 1. */
class Refused extends Error {}

export const PASSWORD_ENV = 'MAILROOM_LOAD_PASSWORD';
/** Open-loop uploads in flight at most (the SDK's own socket pool queues beyond its 50 connections). */
const UPLOAD_MAX_IN_FLIGHT = 1024;

/** Runs `mailroom load smtp|upload`; returns the exit code. */
export async function runLoad(opts: LoadOptions, io: LoadIO): Promise<number> {
  const interrupt = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupt.signal.aborted) {
      io.stderr.write(`mailroom load: ${sig} again: still removing what the run created; it ends in a few seconds\n`);
      return;
    }
    io.stderr.write(`\nmailroom load: ${sig}: stopping — no new messages; finishing those in flight and removing the temporary queue\n`);
    interrupt.abort(new Error(sig));
  };
  // Installed for the whole run, so a Ctrl-C cannot end the process before the temporary queue is removed.
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const outcome = opts.command === 'smtp' ? await runSmtp(opts, io, interrupt.signal) : await runUpload(opts, io, interrupt.signal);
    return await finish(opts, io, outcome);
  } catch (err) {
    if (err instanceof Refused) {
      io.stderr.write(`mailroom load ${opts.command}: ${err.message}\n`);
      return 1;
    }
    if (err instanceof ConfigError) {
      io.stderr.write(`mailroom load ${opts.command}: ${err.message}\n`);
      return 2;
    }
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function finish(opts: LoadOptions, io: LoadIO, result: LoadResult): Promise<number> {
  let code = result.endedBy === 'interrupted' ? 130 : 0;
  if (opts.reportFile) {
    try {
      await writeFile(opts.reportFile, renderReport(result));
      io.stderr.write(`mailroom load: report written to ${resolve(opts.reportFile)}\n`);
    } catch (err) {
      io.stderr.write(`mailroom load: could not write --report ${opts.reportFile}: ${(err as Error).message}\n`);
      code ||= 1;
    }
  }
  if (opts.json) io.stdout.write(`${JSON.stringify(result)}\n`);
  else io.stdout.write(`${formatTable(result)}\n`);
  if (result.delivery.leftovers.length > 0) code ||= 1;
  return code;
}

async function checkReportFile(file: string | undefined): Promise<void> {
  if (!file) return;
  try {
    await access(dirname(resolve(file)), constants.W_OK);
  } catch (err) {
    throw new UsageError(`--report ${file}: cannot write into ${dirname(resolve(file))} (${(err as NodeJS.ErrnoException).code}); give a path in a writable directory`);
  }
}

function loadConfig(file: string): ReceivingConfig {
  return loadConfigFile(file).config;
}

const sizeLabel = (o: LoadOptions) => (o.size.kind === 'fixed' ? formatBytes(o.size.bytes) : 'mix realistic');

function shapeParameters(o: LoadOptions, concurrency: number | undefined): LoadResult['parameters'] {
  return {
    rate: o.shape.kind === 'open' ? o.shape.rate : null,
    concurrency: o.shape.kind === 'closed' ? (concurrency ?? o.shape.concurrency) : null,
    count: o.count ?? null,
    duration: o.durationMs !== undefined ? formatDuration(o.durationMs) : null,
    size: sizeLabel(o),
    timeout: formatDuration(o.timeoutMs),
    deliveryWait: formatDuration(o.deliveryWaitMs),
    watchTopic: o.watchTopic,
  };
}

/** The load, the wait for deliveries and the watchers' removal; the figures whatever happened. */
async function execute(params: {
  opts: LoadOptions;
  io: LoadIO;
  signal: AbortSignal;
  recorder: Recorder;
  tracker: DeliveryTracker | undefined;
  topics: TopicWatcher | undefined;
  objects: ObjectWatcher | undefined;
  maxLanes: number;
  newLane: (i: number) => Lane;
  acceptedLabel: string;
}): Promise<{ run: DriveResult; leftovers: Leftover[] }> {
  const { opts, io, signal, recorder, tracker, topics, objects } = params;
  const progress = new Progress(io.stderr, { recorder, acceptedLabel: params.acceptedLabel, deliveries: () => (tracker ? { delivered: recorder.total('delivered'), expected: tracker.expected } : undefined) });
  // Filled by the finally below, after the return value is made: it must be this same array.
  const leftovers: Leftover[] = [];
  try {
    if (topics) {
      try {
        await topics.start();
      } catch (err) {
        const e = err as Error;
        throw new Refused(`--watch-topic: could not set up the temporary queue: ${e.name}: ${e.message} — check the rules' topic ARNs, and that the credentials may create SQS queues and subscribe them to the topics (docs/load.md#delivery)`);
      }
      progress.say(`mailroom load: watching ${topics.queues.map((q) => q.queueUrl).join(', ')} (removed at the end)`);
    }
    progress.start();
    const run = await drive({ shape: opts.shape, count: opts.count, durationMs: opts.durationMs, maxLanes: params.maxLanes, timeoutMs: opts.timeoutMs, newLane: params.newLane, signal, onStart: (t0) => recorder.start(t0) });
    if (tracker && tracker.pending > 0 && !signal.aborted) {
      progress.phase = 'waiting for deliveries';
      await tracker.settled(opts.deliveryWaitMs, signal);
    }
    progress.stop();
    return { run, leftovers };
  } finally {
    progress.stop();
    await objects?.stop();
    if (topics) {
      leftovers.push(...(await topics.stop().catch((err: Error) => topics.queues.map((q) => ({ what: `queue ${q.queueUrl}`, fix: `aws sqs delete-queue --region ${q.region} --queue-url ${q.queueUrl}`, error: err.message })))));
      // Reached also when the load threw: say it here, the caller may never print a result.
      for (const l of leftovers) io.stderr.write(`mailroom load: NOT REMOVED: ${l.what} (${l.error}); remove it with: ${l.fix}\n`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------

async function runSmtp(opts: SmtpLoadOptions, io: LoadIO, signal: AbortSignal): Promise<LoadResult> {
  await checkReportFile(opts.reportFile);
  const config = opts.configFile ? loadConfig(opts.configFile) : undefined;
  if (opts.watchTopic && !config) throw new UsageError('--watch-topic needs --config <file>: its rules name the topics (and buckets) to watch');
  const to = opts.to.length > 0 ? opts.to : recipientsFor(config!);
  if (to.length === 0) throw new UsageError(`${opts.configFile} has no enabled rule to send to; give --to ADDR`);
  const maxBytes = config?.maxMessageSize ?? MAX_MESSAGE_BYTES;
  if (opts.size.kind === 'fixed' && opts.size.bytes > maxBytes) throw new UsageError(`--size ${formatBytes(opts.size.bytes)} is over the config's maxMessageSize (${maxBytes} bytes); the gateway would refuse every message (552)`);

  // The copies each message makes: one per rule its recipients match, as the gateway routes them.
  const secure = opts.tls !== 'none';
  let copies: RuleCopy[] = [];
  const notes: string[] = [];
  if (config) {
    const router = new RecipientRouter(config);
    for (const a of to) {
      const r = router.route(a, secure);
      if (!r.ok) {
        notes.push(`${a}: ${r.reply.message} — expect the target to refuse it`);
        io.stderr.write(`mailroom load: note: ${a}: ${r.reply.message} — expect the target to refuse it\n`);
      }
    }
    copies = router.rulesFor(to, secure).map((r) => ({ rule: r.name, s3Action: r.s3Action }));
  }

  const remote = await remoteSmtpTarget(opts.target.host, opts.target.port);
  if (remote && !opts.allowRemote) throw new Refused(`${remote}. mailroom load sends only to this machine unless told otherwise: add --allow-remote to load it (every run is still bounded by --count / --duration)`);

  const target: SmtpTarget = { host: opts.target.host, port: opts.target.port, tls: opts.tls, tlsInsecure: opts.tlsInsecure, helo: opts.helo, timeoutMs: opts.timeoutMs };
  if (opts.caFile) {
    try {
      target.ca = await readFile(opts.caFile);
    } catch (err) {
      throw new UsageError(`--ca ${opts.caFile}: cannot read it (${(err as NodeJS.ErrnoException).code}); give the PEM file of the CA that signed the target's certificate`);
    }
  }
  if (opts.authUser) target.auth = { user: opts.authUser, pass: await readPassword(opts.authUser, PASSWORD_ENV, io) };

  const runId = newRunId();
  const messages = new MessageFactory({ size: opts.size, runId, from: opts.from, to, maxBytes });
  await messages.prepare();
  if (opts.size.kind === 'fixed' && opts.size.bytes < messages.minimumBytes) throw new UsageError(`--size ${opts.size.bytes} bytes is smaller than the message's headers and MIME structure (${messages.minimumBytes} bytes); give at least --size ${Math.ceil(messages.minimumBytes / 1024)}KB`);

  // One session first: a wrong port, TLS mode or password is said once, plainly, not as N errors a second.
  try {
    const c = await openConnection(target);
    c.quit();
  } catch (err) {
    const e = classifySmtpError(err);
    const code = (err as { code?: string }).code;
    const fix =
      e.stage.startsWith('AUTH') || code === 'EAUTH'
        ? `check --auth ${opts.authUser ?? ''} and the password in ${PASSWORD_ENV} (or on stdin)`
        : e.code === 'ECONNREFUSED'
          ? 'nothing listens there: check --target and that the server runs'
          : code === 'ETLS' || /CERT|SELF_SIGNED|TLS|SSL|ALTNAME/.test(e.code)
            ? 'check --tls (starttls or implicit), and --ca FILE for a private CA, or --tls-insecure for a test certificate'
            : 'check --target, --tls and the server';
    throw new Refused(`cannot start an SMTP session with ${opts.target.host}:${opts.target.port}: ${e.code} — ${e.message}; ${fix}`);
  }

  const recorder = new Recorder();
  const watchedTopics = opts.watchTopic ? [...new Set(copies.map((c) => c.s3Action.topicArn).filter((t): t is string => !!t))] : [];
  const objectCopies = opts.watchTopic ? copies.filter((c) => !c.s3Action.topicArn) : [];
  const tracker = opts.watchTopic && copies.length > 0 ? new DeliveryTracker(recorder, runId) : undefined;
  const topics = tracker && watchedTopics.length > 0 ? new TopicWatcher(runId, watchedTopics, (n, at) => tracker.notification(n, at)) : undefined;
  const objects = tracker && objectCopies.length > 0 ? new ObjectWatcher((token, rule, at) => tracker.object(token, rule, at)) : undefined;
  const topicCopies = copies.filter((c) => c.s3Action.topicArn);
  let noIdInReply = 0;
  if (opts.watchTopic && copies.length === 0) notes.push('--watch-topic: no enabled rule matches the recipients, so there is nothing to watch');

  const stats = { connectionsOpened: 0, recipientsRefused: 0 };
  const { run, leftovers } = await execute({
    opts,
    io,
    signal,
    recorder,
    tracker,
    topics,
    objects,
    maxLanes: opts.connections,
    acceptedLabel: 'accepted',
    newLane: () =>
      new SmtpLane({
        target,
        messages,
        envelope: { from: opts.from, to },
        recorder,
        stats,
        onAccepted: (m) => {
          if (!tracker) return;
          const watch = [...(topics ? topicCopies : [])];
          if (objects && m.sesMessageId) watch.push(...objectCopies);
          else if (objects) noIdInReply++;
          tracker.expect(m.token, m.sesMessageId, m.at, watch);
          if (objects && m.sesMessageId) for (const c of objectCopies) objects.watch(m.token, m.sesMessageId, c, m.at);
        },
      }),
  });
  if (noIdInReply > 0) notes.push(`${noIdInReply} replies named no message id (250 Ok <id>), so their objects could not be looked for: delivery for rules without a topic is measured only against mailroom or SES`);
  if (objects?.problem) notes.push(objects.problem);
  if (topics && topics.receiveErrors > 0) notes.push(`reading the temporary queue failed ${topics.receiveErrors} times (last: ${topics.lastReceiveError})`);
  if (tracker && tracker.pending > 0) notes.push(`${tracker.pending} copies were not seen within --delivery-wait ${formatDuration(opts.deliveryWaitMs)}`);
  if (tracker && tracker.foreign > 0) notes.push(`${tracker.foreign} notifications on the watched topics were not this run's (other mail); they were not kept`);

  return buildResult({
    command: 'smtp',
    recorder,
    parameters: {
      target: `${opts.target.host}:${opts.target.port}`,
      tls: opts.tls,
      auth: opts.authUser ?? null,
      from: opts.from,
      to,
      config: opts.configFile ?? null,
      connections: opts.connections,
      ...shapeParameters(opts, undefined),
      runId,
    },
    endedBy: run.endedBy,
    scheduled: run.scheduled,
    unsent: run.unsent,
    extraCounts: { recipientsRefused: stats.recipientsRefused, connectionsOpened: stats.connectionsOpened },
    deliveriesExpected: tracker?.expected ?? 0,
    duplicates: tracker?.duplicates ?? 0,
    foreign: tracker?.foreign ?? 0,
    delivery: { method: [...(topics ? (['topic'] as const) : []), ...(objects ? (['object'] as const) : [])], notes, leftovers },
  });
}

// ---------------------------------------------------------------------------------------------------------------

async function runUpload(opts: UploadLoadOptions, io: LoadIO, signal: AbortSignal): Promise<LoadResult> {
  await checkReportFile(opts.reportFile);
  const config = loadConfig(opts.configFile);
  const enabled = config.rules.filter((r) => r.enabled);
  let rule = enabled[0];
  if (opts.rule !== undefined) {
    rule = config.rules.find((r) => r.name === opts.rule);
    if (!rule) throw new UsageError(`--rule "${opts.rule}" is not a rule of ${opts.configFile}; its rules: ${config.rules.map((r) => r.name).join(', ')}`);
  } else if (enabled.length !== 1) {
    throw new UsageError(enabled.length === 0 ? `${opts.configFile} has no enabled rule; name one with --rule NAME` : `${opts.configFile} has ${enabled.length} enabled rules (${enabled.map((r) => r.name).join(', ')}); name the one to load with --rule NAME`);
  }
  const unbound = rulesAwaitingCreatedKey(config).filter((p) => p.path.startsWith(`rules[${config.rules.indexOf(rule!)}]`));
  if (unbound.length) throw new ConfigError(opts.configFile, unbound);
  const r = rule!;
  const action = r.s3Action;
  const settings = GatewaySettingsSchema.parse(config.gateway ?? {});
  const concurrency = opts.concurrencyFromConfig ? settings.worker.concurrency : undefined;
  const shape = concurrency !== undefined ? { kind: 'closed' as const, concurrency } : opts.shape;
  if (opts.size.kind === 'fixed' && opts.size.bytes > config.maxMessageSize) throw new UsageError(`--size ${formatBytes(opts.size.bytes)} is over the config's maxMessageSize (${config.maxMessageSize} bytes)`);

  const remote = await remoteAwsTargets(['s3', ...(action.kmsKeyArn ? (['kms'] as const) : []), ...(action.topicArn ? (['sns'] as const) : [])], io.env);
  if (remote && !opts.allowRemote) throw new Refused(`${remote}. mailroom load writes only to endpoints on this machine unless told otherwise: set AWS_ENDPOINT_URL to a local emulator, or add --allow-remote to load the real bucket, key and topic (every run is still bounded by --count / --duration; the objects stay under the rule's prefix)`);

  const aws = new AwsClients(settings.upload);
  try {
    try {
      await headBucket(aws.s3(action.bucketRegion ?? config.region), action.bucketName, 10_000, signal);
    } catch (err) {
      throw new Refused(`rule "${r.name}": bucket ${action.bucketName}: ${(err as Error).message}`);
    }
    const runId = newRunId();
    const recipient = recipientFor(r, config);
    const messages = new MessageFactory({ size: opts.size, runId, from: opts.from, to: [recipient], maxBytes: config.maxMessageSize });
    await messages.prepare();
    if (opts.size.kind === 'fixed' && opts.size.bytes < messages.minimumBytes) throw new UsageError(`--size ${opts.size.bytes} bytes is smaller than the message's headers and MIME structure (${messages.minimumBytes} bytes)`);

    const recorder = new Recorder();
    const notes: string[] = [];
    const tracker = opts.watchTopic && action.topicArn ? new DeliveryTracker(recorder, runId) : undefined;
    const topics = tracker ? new TopicWatcher(runId, [action.topicArn!], (n, at) => tracker.notification(n, at)) : undefined;
    if (opts.watchTopic && !action.topicArn) notes.push(`rule "${r.name}" has no topic: a message is delivered when its object is stored (the store latency), so --watch-topic has nothing more to watch`);
    const publisher = action.topicArn ? new Publisher(aws.sns(action.topicArn, config.region), action.topicArn) : undefined;
    const stats = { stored: 0, announced: 0 };
    const copy: RuleCopy = { rule: r.name, s3Action: action };
    const { run, leftovers } = await execute({
      opts: { ...opts, shape },
      io,
      signal,
      recorder,
      tracker,
      topics,
      objects: undefined,
      maxLanes: UPLOAD_MAX_IN_FLIGHT,
      acceptedLabel: 'uploaded',
      newLane: () =>
        new UploadLane({
          rule: r,
          accountId: config.accountId,
          region: config.region,
          recipients: [recipient],
          from: opts.from,
          aws,
          tuning: settings.upload,
          messages,
          recorder,
          publisher,
          timeoutMs: opts.timeoutMs,
          stats,
          // Expected from its start (its notification can only come later), forgotten if it fails.
          ...(tracker ? { onStart: (token: string, id: string, at: number) => tracker.expect(token, id, at, [copy]), onFailed: (token: string) => tracker.forget(token) } : {}),
        }),
    });
    if (topics && topics.receiveErrors > 0) notes.push(`reading the temporary queue failed ${topics.receiveErrors} times (last: ${topics.lastReceiveError})`);
    if (tracker && tracker.pending > 0) notes.push(`${tracker.pending} notifications were not seen within --delivery-wait ${formatDuration(opts.deliveryWaitMs)}`);
    if (tracker && tracker.foreign > 0) notes.push(`${tracker.foreign} notifications on the topic were not this run's (other mail); they were not kept`);
    notes.push(`the objects are under s3://${action.bucketName}/${action.objectKeyPrefix ?? ''} like any mail the rule receives (their Message-ID header ends in @load.invalid); delete them when done`);
    return buildResult({
      command: 'upload',
      recorder,
      parameters: {
        config: opts.configFile,
        rule: r.name,
        bucket: action.bucketName,
        objectKeyPrefix: action.objectKeyPrefix ?? '',
        kmsKeyArn: action.kmsKeyArn ?? null,
        topicArn: action.topicArn ?? null,
        recipient,
        from: opts.from,
        maxInFlight: shape.kind === 'open' ? UPLOAD_MAX_IN_FLIGHT : null,
        ...shapeParameters({ ...opts, shape }, concurrency),
        multipartThresholdBytes: settings.upload.multipartThresholdBytes,
        partSizeBytes: settings.upload.partSizeBytes,
        checksums: settings.upload.checksums,
        runId,
      },
      endedBy: run.endedBy,
      scheduled: run.scheduled,
      unsent: run.unsent,
      extraCounts: { stored: stats.stored, announced: stats.announced },
      deliveriesExpected: tracker?.expected ?? 0,
      duplicates: tracker?.duplicates ?? 0,
      foreign: tracker?.foreign ?? 0,
      delivery: { method: topics ? ['topic'] : [], notes, leftovers },
    });
  } finally {
    aws.destroy();
  }
}
