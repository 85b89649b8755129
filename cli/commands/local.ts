import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfigFile } from '../../shared/config/index.js';
import { startGateway, type RunningGateway } from '../../gateway/gateway.js';
import { provisionLocal } from '../../gateway/local/provision.js';
import { INSTALL_HINTS, onPath, startMotoServer, startRedisServer, type Service } from '../../gateway/local/services.js';
import { watchNotifications } from '../../gateway/local/watch.js';
import { createLogger, logLevel } from '../../gateway/runtime/log.js';
import { gatewayFlagOptions, gatewayFlagsHelp, overridesFrom, resolveRuntime } from '../../gateway/runtime/settings.js';
import { parse } from '../command/args.js';
import type { Command } from '../command/command.js';
import { explainStartError, untilSignalled } from './gateway.js';

/** examples/local.json from the sources (cli/commands/) or from a build (dist/cli/commands/). */
const EXAMPLE_CONFIG = ['../../examples/local.json', '../../../examples/local.json'].map((p) => fileURLToPath(new URL(p, import.meta.url))).find((p) => existsSync(p)) ?? 'examples/local.json';

/** A recipient the first enabled rule accepts, for the printed swaks line. */
function sampleRecipient(conditions: readonly string[]): string {
  const c = conditions.find((x) => !x.startsWith('.')) ?? conditions[0];
  if (!c) return 'someone@example.com';
  if (c.includes('@')) return c;
  return c.startsWith('.') ? `someone@mail${c}` : `someone@${c}`;
}

export const local: Command = {
  name: 'local',
  summary: 'run everything on this machine for a first try (npm start)',
  usage: `usage: mailroom local [--config <file>] [options]

Runs the gateway with everything it needs on this machine: Redis (REDIS_URL, else a redis-server started on a free
port), an AWS emulator (AWS_ENDPOINT_URL, else a moto_server started on a free port) with the config's buckets, KMS
keys (infra.createKmsKeys) and topics created and an SQS queue subscribed, then shows each message as it lands.
Default config: examples/local.json. Nothing persists: the spool is a temporary directory unless --spool-dir is
given, and Redis/moto started here stop with it. It never provisions real AWS: without AWS_ENDPOINT_URL it uses moto.

${gatewayFlagsHelp()}`,
  async run(args) {
    const { values } = parse(args, gatewayFlagOptions(), false);
    const overrides = overridesFrom(values);
    const configFile = overrides.config ?? EXAMPLE_CONFIG;
    let level: string;
    try {
      level = logLevel(process.env.LOG_LEVEL, 'warn'); // before Redis and moto are started for nothing
    } catch (err) {
      if (err instanceof ConfigError) {
        console.error(`mailroom local: ${err.message}`);
        return 2;
      }
      throw err;
    }

    const missing: string[] = [];
    if (!overrides.redisUrl && !onPath('redis-server')) missing.push(INSTALL_HINTS['redis-server']);
    if (!process.env.AWS_ENDPOINT_URL && !onPath('moto_server')) missing.push(INSTALL_HINTS.moto_server);
    if (missing.length > 0) {
      for (const m of missing) console.error(`mailroom local: ${m}`);
      return 1;
    }

    let loaded;
    try {
      loaded = loadConfigFile(configFile);
    } catch (err) {
      if (err instanceof ConfigError) {
        console.error(`mailroom local: ${err.message}`);
        return 2;
      }
      throw err;
    }

    const services: Service[] = [];
    let gw: RunningGateway | undefined;
    let spoolTemp: string | undefined;
    const watching = new AbortController();
    const cleanup = async () => {
      watching.abort();
      await gw?.stop();
      for (const s of services.reverse()) await s.stop();
      if (spoolTemp) await rm(spoolTemp, { recursive: true, force: true });
    };
    try {
      if (!overrides.redisUrl) {
        const redis = await startRedisServer();
        services.push(redis);
        overrides.redisUrl = redis.url;
      }
      if (!process.env.AWS_ENDPOINT_URL) {
        const moto = await startMotoServer();
        services.push(moto);
        process.env.AWS_ENDPOINT_URL = moto.url;
      }
      // Emulators take any credentials; set the conventional fake ones only when the user has none.
      process.env.AWS_ACCESS_KEY_ID ??= 'testing';
      process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';
      process.env.AWS_REGION ??= loaded.config.region;
      if (!overrides.spoolDir) overrides.spoolDir = spoolTemp = await mkdtemp(join(tmpdir(), 'mailroom-local-spool-'));

      const provisioned = await provisionLocal(loaded.config);
      let runtime;
      try {
        runtime = resolveRuntime({ config: provisioned.config, warnings: loaded.warnings }, overrides, configFile);
      } catch (err) {
        if (err instanceof ConfigError) {
          console.error(`mailroom local: ${err.message}`);
          await cleanup();
          return 2;
        }
        throw err;
      }
      const log = createLogger({ name: 'mailroom-local', level, destination: 2 });
      try {
        gw = await startGateway(runtime, { smtp: true, workers: true }, log);
      } catch (err) {
        console.error(`mailroom local: ${explainStartError(err, runtime)}`);
        await cleanup();
        return 1;
      }

      const smtp = gw.smtpAddress!;
      const rules = runtime.config.rules.filter((r) => r.enabled);
      const endpoint = process.env.AWS_ENDPOINT_URL;
      const lines = [
        'mailroom local is running',
        `  SMTP   ${smtp.address}:${smtp.port} as ${runtime.settings.hostname}`,
        ...rules.map((r) => `  rule   ${r.name}: ${r.recipients.join(', ') || '(every recipient)'} → s3://${r.s3Action.bucketName}/${r.s3Action.objectKeyPrefix}${r.s3Action.kmsKeyArn ? ', encrypted' : ''}${r.s3Action.topicArn ? `, notifies ${r.s3Action.topicArn}` : ''}${r.tlsPolicy === 'Require' ? ', TLS required' : ''}`),
        `  Redis  ${runtime.settings.redis.url}${services.some((s) => s.name === 'redis-server') ? ' (started here)' : ''}`,
        `  AWS    ${endpoint}${services.some((s) => s.name === 'moto_server') ? ' (moto, started here)' : ''}`,
        ...provisioned.notes.map((n) => `  note   ${n}`),
        '',
        'Send a test mail:',
        `  swaks --server ${smtp.address}:${smtp.port} --from you@example.org --to ${sampleRecipient(rules[0]?.recipients ?? [])}`,
        'Read a stored message back (decrypted):',
        `  AWS_ENDPOINT_URL=${endpoint} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=${runtime.config.region} npx mailroom get s3://<bucket>/<key>`,
        'Ctrl-C stops everything. Arriving messages:',
      ];
      console.log(lines.join('\n'));

      if (provisioned.watchQueueUrl) void watchNotifications(runtime.config.region, provisioned.watchQueueUrl, (l) => console.log(l), watching.signal);
      // Rules without a topic have no notification to show; report their stored objects instead.
      gw.workers?.onDelivered((job, r) => {
        if (job.data.rule.s3Action.topicArn) return;
        for (const d of r.delivered) console.log(`✉  s3://${r.bucket}/${d.key}  (rule ${r.rule}, ${d.storedBytes} bytes, no topic)`);
      });

      await untilSignalled(cleanup);
      setTimeout(() => process.exit(0), 2_000).unref();
      return 0;
    } catch (err) {
      await cleanup();
      throw err;
    }
  },
};
