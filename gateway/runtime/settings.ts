import { hostname as osHostname } from 'node:os';
import { resolve } from 'node:path';
import { GatewaySettingsSchema, type GatewaySettings } from '../../shared/config/gateway.js';
import { ConfigError, loadConfigFile, toProblems, type ConfigProblem, type LoadedConfig, type ReceivingConfig } from '../../shared/config/index.js';

/**
 * The gateway's settings: the config file's `gateway` section, overridden by environment variables, overridden by
 * command-line flags. One table below is the whole mapping, so `--help`, docs/operations.md and the code cannot disagree.
 */

export interface GatewayOverrides {
  config?: string | undefined;
  smtpPort?: string | undefined;
  smtpHost?: string | undefined;
  lmtpPort?: string | undefined;
  spoolDir?: string | undefined;
  redisUrl?: string | undefined;
  redisCluster?: string | undefined;
  concurrency?: string | undefined;
  hostname?: string | undefined;
  nodeId?: string | undefined;
  httpPort?: string | undefined;
  httpHost?: string | undefined;
  /** Where each value came from, for errors: `--concurrency`, or `MAILROOM_CONCURRENCY (--concurrency)`. */
  from?: Partial<Record<Exclude<keyof GatewayOverrides, 'from'>, string>>;
}

/** flag name → [override key, environment variable, description]. */
export const GATEWAY_FLAGS = {
  config: ['config', 'MAILROOM_CONFIG', 'config file (JSON, see `mailroom schema`)'],
  'smtp-port': ['smtpPort', 'MAILROOM_SMTP_PORT', 'SMTP port (gateway.smtp.port)'],
  'smtp-host': ['smtpHost', 'MAILROOM_SMTP_HOST', 'address to listen on (gateway.smtp.host)'],
  'lmtp-port': ['lmtpPort', 'MAILROOM_LMTP_PORT', 'also listen for LMTP on this port (gateway.smtp.lmtpPort)'],
  'spool-dir': ['spoolDir', 'MAILROOM_SPOOL_DIR', 'spool directory (gateway.spoolDir)'],
  'redis-url': ['redisUrl', 'REDIS_URL', 'Redis URL (gateway.redis.url)'],
  'redis-cluster': ['redisCluster', 'MAILROOM_REDIS_CLUSTER', 'yes: the Redis URL names a Redis Cluster node (gateway.redis.cluster)'],
  concurrency: ['concurrency', 'MAILROOM_CONCURRENCY', 'deliveries in flight (gateway.worker.concurrency)'],
  hostname: ['hostname', 'MAILROOM_HOSTNAME', 'own host name for the greeting and Received (gateway.hostname)'],
  'node-id': ['nodeId', 'MAILROOM_NODE_ID', 'names this node\'s spool and queues (gateway.nodeId)'],
  'http-port': ['httpPort', 'MAILROOM_HTTP_PORT', 'serve /metrics, /healthz, /readyz on this port (gateway.http.port)'],
  'http-host': ['httpHost', 'MAILROOM_HTTP_HOST', 'address of that listener, and turns it on (gateway.http.host); no authentication: keep it private'],
} as const satisfies Record<string, [Exclude<keyof GatewayOverrides, 'from'>, string, string]>;

export type GatewayFlag = keyof typeof GATEWAY_FLAGS;

/** Flags only the SMTP front uses: `mailroom worker` neither lists nor takes them. */
export const SMTP_FRONT_FLAGS: readonly GatewayFlag[] = ['smtp-port', 'smtp-host', 'lmtp-port'];

/** `parseArgs` options for the flags above, less `omit`. */
export function gatewayFlagOptions(omit: readonly GatewayFlag[] = []): Record<GatewayFlag, { type: 'string' }> {
  const out: Partial<Record<GatewayFlag, { type: 'string' }>> = {};
  for (const k of Object.keys(GATEWAY_FLAGS) as GatewayFlag[]) if (!omit.includes(k)) out[k] = { type: 'string' };
  // Typed as all flags so parsed values read alike; an omitted one is refused by parseArgs, so it is never set.
  return out as Record<GatewayFlag, { type: 'string' }>;
}

export function gatewayFlagsHelp(omit: readonly GatewayFlag[] = []): string {
  return (Object.entries(GATEWAY_FLAGS) as Array<[GatewayFlag, (typeof GATEWAY_FLAGS)[GatewayFlag]]>)
    .filter(([flag]) => !omit.includes(flag))
    .map(([flag, [, env, what]]) => `  --${flag.padEnd(13)} ${what}; env ${env}`)
    .join('\n');
}

/** Flags win over the environment. */
export function overridesFrom(values: Partial<Record<GatewayFlag, string | undefined>>, env: NodeJS.ProcessEnv = process.env): GatewayOverrides {
  const out: GatewayOverrides = {};
  const from: NonNullable<GatewayOverrides['from']> = {};
  for (const [flag, [key, envName]] of Object.entries(GATEWAY_FLAGS) as Array<[GatewayFlag, readonly [Exclude<keyof GatewayOverrides, 'from'>, string, string]]>) {
    const v = values[flag] ?? (env[envName] || undefined);
    if (v === undefined) continue;
    out[key] = v;
    from[key] = values[flag] !== undefined ? `--${flag}` : `${envName} (--${flag})`;
  }
  return { ...out, from };
}

/** What the gateway runs with: the receiving config and its resolved, defaulted `gateway` section. */
export interface GatewayRuntime {
  config: ReceivingConfig;
  settings: GatewaySettings & { hostname: string };
  warnings: string[];
  /** The config file it came from, for messages. */
  source: string;
}

/** `label`: where the value came from (GatewayOverrides.from), so an environment variable's error names it. */
function intFlag(label: string, value: string, min: number, max: number, fix: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < min || Number(value) > max) {
    throw new ConfigError(label, [{ path: label, message: `"${value}" is not a whole number from ${min} to ${max}`, fix }]);
  }
  return Number(value);
}

/** `name`: the flag without dashes; `label`: where the value came from, when not that flag (e.g. its variable). */
export function yesNo(name: string, value: string, label = `--${name}`): boolean {
  const v = value.trim().toLowerCase();
  if (['yes', 'true', '1'].includes(v)) return true;
  if (['no', 'false', '0'].includes(v)) return false;
  throw new ConfigError(label, [{ path: label, message: `"${value}" is neither yes nor no`, fix: 'write yes or no' }]);
}

/** Applies overrides to an already-validated config; throws ConfigError naming the flag or field at fault. */
export function resolveRuntime(loaded: LoadedConfig, overrides: GatewayOverrides, source: string): GatewayRuntime {
  const input: Record<string, unknown> = structuredClone((loaded.config.gateway ?? {}) as Record<string, unknown>);
  const section = (k: string) => ((input[k] ??= {}) as Record<string, unknown>);
  const from = (key: keyof NonNullable<GatewayOverrides['from']>, flag: GatewayFlag) => overrides.from?.[key] ?? `--${flag}`;
  if (overrides.smtpPort !== undefined) section('smtp').port = intFlag(from('smtpPort', 'smtp-port'), overrides.smtpPort, 0, 65535, 'give a port number, e.g. 2525 (0 picks a free port)');
  if (overrides.smtpHost !== undefined) section('smtp').host = overrides.smtpHost;
  if (overrides.lmtpPort !== undefined) section('smtp').lmtpPort = intFlag(from('lmtpPort', 'lmtp-port'), overrides.lmtpPort, 0, 65535, 'give a port number, e.g. 2424 (0 picks a free port)');
  if (overrides.spoolDir !== undefined) input.spoolDir = overrides.spoolDir;
  if (overrides.redisUrl !== undefined) {
    if (!/^rediss?:\/\//.test(overrides.redisUrl)) {
      const label = overrides.from?.redisUrl ?? '--redis-url / REDIS_URL';
      throw new ConfigError(label, [{ path: label, message: `"${overrides.redisUrl}" is not a Redis URL`, fix: 'write it as redis://host:port (or rediss:// for TLS)' }]);
    }
    section('redis').url = overrides.redisUrl;
  }
  if (overrides.redisCluster !== undefined) section('redis').cluster = yesNo('redis-cluster', overrides.redisCluster, from('redisCluster', 'redis-cluster'));
  if (overrides.concurrency !== undefined) section('worker').concurrency = intFlag(from('concurrency', 'concurrency'), overrides.concurrency, 1, 10_000, 'give the number of deliveries in flight, e.g. 8');
  if (overrides.hostname !== undefined) input.hostname = overrides.hostname;
  if (overrides.nodeId !== undefined) input.nodeId = overrides.nodeId;
  if (overrides.httpHost !== undefined) section('http').host = overrides.httpHost;
  if (overrides.httpPort !== undefined) section('http').port = intFlag(from('httpPort', 'http-port'), overrides.httpPort, 0, 65535, 'give a port number, e.g. 9464 (0 picks a free port)');

  const parsed = GatewaySettingsSchema.safeParse(input, { reportInput: true });
  if (!parsed.success) {
    // A value the schema refuses is named where it came from when a flag or variable set it.
    const overridden: Record<string, string | undefined> = { 'smtp.host': overrides.from?.smtpHost, 'http.host': overrides.from?.httpHost, spoolDir: overrides.from?.spoolDir, hostname: overrides.from?.hostname, nodeId: overrides.from?.nodeId };
    const where = (path: string) => overridden[path] ?? (path === '(top level)' ? 'gateway' : `gateway.${path}`);
    throw new ConfigError(source, toProblems(parsed.error.issues).map((p) => ({ ...p, path: where(p.path) })));
  }
  const s = parsed.data;
  if (!/^rediss?:\/\//.test(s.redis.url)) {
    throw new ConfigError(source, [{ path: 'gateway.redis.url', message: `"${s.redis.url}" is not a Redis URL`, fix: 'write it as redis://host:port (or rediss:// for TLS)' }]);
  }
  const warnings = [...loaded.warnings];
  if (!s.smtp.tls && loaded.config.rules.some((r) => r.enabled && r.tlsPolicy === 'Require')) {
    warnings.push('a rule has tlsPolicy "Require" but gateway.smtp.tls is not set: its recipients will always be refused (530); add certFile and keyFile');
  }
  return {
    config: loaded.config,
    settings: { ...s, hostname: s.hostname ?? osHostname(), spoolDir: resolve(s.spoolDir) },
    warnings,
    source,
  };
}

/** Loads the config file named by the overrides (flag or MAILROOM_CONFIG) and resolves the settings. */
export function loadRuntime(overrides: GatewayOverrides): GatewayRuntime {
  if (!overrides.config) {
    throw new ConfigError('(command line)', [{ path: '--config', message: 'no config file given', fix: 'pass --config <file> (or set MAILROOM_CONFIG), e.g. --config examples/local.json' }]);
  }
  const loaded = loadConfigFile(overrides.config);
  const unbound = rulesAwaitingCreatedKey(loaded.config);
  if (unbound.length) throw new ConfigError(overrides.config, unbound);
  return resolveRuntime(loaded, overrides, overrides.config);
}

/**
 * Rules bound to a KMS key the infra stack creates (`infra.createKmsKeys`) carry no kmsKeyArn in the source config;
 * delivering them would store plaintext where SES stores ciphertext. The deployed config has the ARN filled in.
 * (`mailroom local` fills it itself before starting the gateway.)
 */
export function rulesAwaitingCreatedKey(config: ReceivingConfig): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const [name, key] of Object.entries(config.infra?.createKmsKeys ?? {})) {
    for (const ruleName of key.rules) {
      const i = config.rules.findIndex((r) => r.name === ruleName);
      if (i >= 0 && !config.rules[i]!.s3Action.kmsKeyArn) {
        out.push({
          path: `rules[${i}].s3Action.kmsKeyArn`,
          message: `rule "${ruleName}" is encrypted with infra.createKmsKeys.${name}, a key the infra stack creates, and this file does not name its ARN`,
          fix: 'run the gateway with the deployed config: terraform -chdir=cdktf.out/stacks/mailroom output -json gateway_config > mailroom.deployed.json',
        });
      }
    }
  }
  return out;
}
