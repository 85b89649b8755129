/**
 * `mailroom load smtp|upload` options: parsed with the project's parseArgs conventions (cli/args.ts), every error a
 * UsageError that names the flag and the fix.
 */
import { parse } from '../cli/command/args.js';
import { UsageError } from '../cli/command/command.js';
import { parseDuration, parseRate, parseSize, parseWhole } from './units.js';

/** Open loop: arrivals on a schedule that does not wait for replies. Closed loop: N at once, each waiting for its reply. */
export type LoadShape = { kind: 'open'; rate: number } | { kind: 'closed'; concurrency: number };

export type MessageSize = { kind: 'fixed'; bytes: number } | { kind: 'mix'; name: 'realistic' };

export interface CommonOptions {
  shape: LoadShape;
  /** Messages in the run; undefined: as many as the duration allows. */
  count: number | undefined;
  /** How long new messages start; undefined: until `count` are sent. */
  durationMs: number | undefined;
  size: MessageSize;
  watchTopic: boolean;
  json: boolean;
  reportFile: string | undefined;
  allowRemote: boolean;
  /** Longest one message may take (SMTP transaction or upload) before it counts as a timeout. */
  timeoutMs: number;
  /** After the last message, how long to wait for deliveries still on their way. */
  deliveryWaitMs: number;
  from: string;
}

export interface SmtpLoadOptions extends CommonOptions {
  command: 'smtp';
  target: { host: string; port: number };
  tls: 'none' | 'starttls' | 'implicit';
  caFile: string | undefined;
  tlsInsecure: boolean;
  authUser: string | undefined;
  to: string[];
  configFile: string | undefined;
  /** Open loop: most sessions opened as arrivals need them. Closed loop: the concurrency. */
  connections: number;
  helo: string;
}

export interface UploadLoadOptions extends CommonOptions {
  command: 'upload';
  configFile: string;
  rule: string | undefined;
  /** Closed loop without --concurrency: the config's gateway.worker.concurrency (resolved once the config is read). */
  concurrencyFromConfig: boolean;
}

export type LoadOptions = SmtpLoadOptions | UploadLoadOptions;

/** SES's (and the gateway's default) message size limit. */
export const MAX_MESSAGE_BYTES = 40 * 1024 * 1024;
/** Below this a message is little more than MailComposer's headers. */
export const MIN_MESSAGE_BYTES = 1024;
const DEFAULT_DURATION_MS = 60_000;
const DEFAULT_SMTP_CONCURRENCY = 20;
const DEFAULT_OPEN_CONNECTIONS = 50;
const DEFAULT_FROM = 'mailroom-load@load.invalid';

const common = {
  rate: { type: 'string' },
  concurrency: { type: 'string' },
  count: { type: 'string' },
  duration: { type: 'string' },
  size: { type: 'string' },
  mix: { type: 'string' },
  'watch-topic': { type: 'boolean' },
  json: { type: 'boolean' },
  report: { type: 'string' },
  'allow-remote': { type: 'boolean' },
  timeout: { type: 'string' },
  'delivery-wait': { type: 'string' },
  from: { type: 'string' },
} as const;

const smtpFlags = {
  ...common,
  target: { type: 'string' },
  tls: { type: 'string' },
  ca: { type: 'string' },
  'tls-insecure': { type: 'boolean' },
  auth: { type: 'string' },
  to: { type: 'string', multiple: true },
  config: { type: 'string' },
  connections: { type: 'string' },
  helo: { type: 'string' },
} as const;

const uploadFlags = { ...common, config: { type: 'string' }, rule: { type: 'string' } } as const;

type CommonValues = { [K in keyof typeof common]?: (typeof common)[K]['type'] extends 'boolean' ? boolean : string };

function commonOptions(v: CommonValues, defaultConcurrency: number): CommonOptions & { concurrencyGiven: boolean } {
  if (v.rate !== undefined && v.concurrency !== undefined) {
    throw new UsageError('--rate and --concurrency are two load shapes; give one: --rate N starts N messages a second whatever the replies (open loop), --concurrency N keeps N in flight (closed loop)');
  }
  const shape: LoadShape = v.rate !== undefined ? { kind: 'open', rate: parseRate('rate', v.rate, 100_000) } : { kind: 'closed', concurrency: v.concurrency !== undefined ? parseWhole('concurrency', v.concurrency, 1, 1000) : defaultConcurrency };
  const count = v.count !== undefined ? parseWhole('count', v.count, 1, 100_000_000) : undefined;
  let durationMs = v.duration !== undefined ? parseDuration('duration', v.duration) : undefined;
  if (count === undefined && durationMs === undefined) durationMs = DEFAULT_DURATION_MS;
  if (v.size !== undefined && v.mix !== undefined) throw new UsageError('--size and --mix both set the message sizes; give one: --size 10KB (every message that size) or --mix realistic');
  let size: MessageSize = { kind: 'fixed', bytes: 10 * 1024 };
  if (v.mix !== undefined) {
    if (v.mix !== 'realistic') throw new UsageError(`--mix "${v.mix}" is not a known mix; write --mix realistic (or --size 10KB for one size)`);
    size = { kind: 'mix', name: 'realistic' };
  } else if (v.size !== undefined) {
    const bytes = parseSize('size', v.size);
    if (bytes < MIN_MESSAGE_BYTES || bytes > MAX_MESSAGE_BYTES) throw new UsageError(`--size ${v.size} is outside 1KB…40MB (SES's limit); write e.g. --size 10KB`);
    size = { kind: 'fixed', bytes };
  }
  const from = v.from ?? DEFAULT_FROM;
  if (!/^[^\s<>@]+@[^\s<>@]+$/.test(from)) throw new UsageError(`--from "${from}" is not an address; write e.g. --from load@example.net`);
  return {
    shape,
    count,
    durationMs,
    size,
    watchTopic: !!v['watch-topic'],
    json: !!v.json,
    reportFile: v.report,
    allowRemote: !!v['allow-remote'],
    timeoutMs: v.timeout !== undefined ? parseDuration('timeout', v.timeout) : 60_000,
    deliveryWaitMs: v['delivery-wait'] !== undefined ? parseDuration('delivery-wait', v['delivery-wait']) : 60_000,
    from,
    concurrencyGiven: v.concurrency !== undefined,
  };
}

/** `host:port`, `[v6]:port`; the port is required (SMTP load has no sensible default target). */
export function parseTarget(value: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(value) ?? /^([^:\s]+):(\d+)$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) throw new UsageError(`--target "${value}" is not HOST:PORT; write e.g. --target 127.0.0.1:2525 (an IPv6 address in brackets: [::1]:2525)`);
  return { host: m[1]!, port };
}

export function parseSmtpOptions(args: string[]): SmtpLoadOptions {
  const { values: v } = parse(args, smtpFlags, false);
  const c = commonOptions(v, DEFAULT_SMTP_CONCURRENCY);
  if (v.target === undefined) throw new UsageError('--target is required: the SMTP server to load, e.g. --target 127.0.0.1:2525');
  const target = parseTarget(v.target);
  const tls = v.tls ?? 'none';
  if (tls !== 'none' && tls !== 'starttls' && tls !== 'implicit') throw new UsageError(`--tls "${tls}" is not a TLS mode; write --tls starttls (upgrade after EHLO) or --tls implicit (TLS from the first byte, port 465 style)`);
  if ((v.ca !== undefined || v['tls-insecure']) && tls === 'none') throw new UsageError(`--${v.ca !== undefined ? 'ca' : 'tls-insecure'} only applies with --tls starttls or --tls implicit`);
  if (v.auth !== undefined && !/^[^\s:]+$/.test(v.auth)) throw new UsageError('--auth takes the user name only (no spaces or ":"); the password comes from MAILROOM_LOAD_PASSWORD or stdin, never from a flag');
  const to = v.to ?? [];
  for (const a of to) if (!/^[^\s<>@]+@[^\s<>@]+$/.test(a)) throw new UsageError(`--to "${a}" is not an address; write e.g. --to user@example.com`);
  if (to.length === 0 && v.config === undefined) throw new UsageError('no recipients: give --to ADDR (repeatable), or --config <file> to send to one address per receipt rule');
  if (v.connections !== undefined && c.shape.kind === 'closed') throw new UsageError('--connections applies to --rate (open loop); with --concurrency N the load uses N connections');
  const connections = c.shape.kind === 'closed' ? c.shape.concurrency : v.connections !== undefined ? parseWhole('connections', v.connections, 1, 1000) : DEFAULT_OPEN_CONNECTIONS;
  const { concurrencyGiven: _, ...rest } = c;
  return {
    ...rest,
    command: 'smtp',
    target,
    tls,
    caFile: v.ca,
    tlsInsecure: !!v['tls-insecure'],
    authUser: v.auth,
    to,
    configFile: v.config,
    connections,
    helo: v.helo ?? 'mailroom-load.invalid',
  };
}

export function parseUploadOptions(args: string[], env: NodeJS.ProcessEnv = process.env): UploadLoadOptions {
  const { values: v } = parse(args, uploadFlags, false);
  const c = commonOptions(v, 8);
  const configFile = v.config ?? (env.MAILROOM_CONFIG || undefined);
  if (!configFile) throw new UsageError('--config is required: the mailroom config whose rule (bucket, key prefix, KMS key, topic) takes the uploads, e.g. --config mailroom.deployed.json');
  const { concurrencyGiven, ...rest } = c;
  return { ...rest, command: 'upload', configFile, rule: v.rule, concurrencyFromConfig: c.shape.kind === 'closed' && !concurrencyGiven };
}
