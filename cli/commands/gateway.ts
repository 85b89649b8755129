import { availableParallelism } from 'node:os';
import { ConfigError } from '../../shared/config/index.js';
import { startGateway, type GatewayParts, type RunningGateway } from '../../gateway/gateway.js';
import { createLogger } from '../../gateway/log.js';
import { gatewayFlagOptions, gatewayFlagsHelp, loadRuntime, overridesFrom, type GatewayRuntime } from '../../gateway/settings.js';
import { parse } from '../args.js';
import type { Command } from '../command.js';

/** Loads settings from flags/env/file; prints ConfigError problems (field and fix) and returns undefined on error. */
export function runtimeFromArgs(command: string, args: string[]): GatewayRuntime | undefined {
  const { values } = parse(args, gatewayFlagOptions(), false);
  try {
    return loadRuntime(overridesFrom(values));
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`mailroom ${command}: ${err.message}`);
      return undefined;
    }
    throw err;
  }
}

/** Explains start-up failures a user can fix. */
export function explainStartError(err: unknown, runtime: GatewayRuntime): string {
  const e = err as NodeJS.ErrnoException;
  const { host, port } = runtime.settings.smtp;
  if (e.code === 'EADDRINUSE') return `${host}:${port} is already in use: stop what listens there or choose another port with --smtp-port`;
  if (e.code === 'EACCES' && e.syscall === 'listen') return `no permission to listen on ${host}:${port} (ports below 1024 need privileges): use --smtp-port 2525 or grant CAP_NET_BIND_SERVICE`;
  if (e.code === 'EACCES' || e.code === 'EROFS') return `cannot write the spool directory ${runtime.settings.spoolDir} (${e.code}): choose a writable one with --spool-dir`;
  return e instanceof Error ? e.message : String(e);
}

/** Resolves on the first SIGTERM/SIGINT after `stop` finished; a second signal exits at once. */
export function untilSignalled(stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) {
        console.error(`mailroom: ${sig} again, exiting without waiting`);
        process.exit(1);
      }
      stopping = true;
      void stop().finally(() => {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        resolve();
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/** `gateway.worker.thread`: "auto" uses a thread when there is a second CPU for it. */
export function useDeliveryThread(setting: 'auto' | 'yes' | 'no', cpus = availableParallelism()): boolean {
  return setting === 'yes' || (setting === 'auto' && cpus > 1);
}

export async function runGatewayParts(command: string, args: string[], parts: GatewayParts): Promise<number> {
  const runtime = runtimeFromArgs(command, args);
  if (!runtime) return 2;
  const log = createLogger({ name: `mailroom-${command}` });
  for (const w of runtime.warnings) log.warn(w);
  let gw: RunningGateway;
  try {
    const deliveryThread = parts.deliveryThread === true && useDeliveryThread(runtime.settings.worker.thread);
    gw = await startGateway(runtime, { ...parts, deliveryThread }, log);
  } catch (err) {
    console.error(`mailroom ${command}: ${explainStartError(err, runtime)}`);
    return 1;
  }
  // SIGHUP re-reads the TLS certificate (a renewal) without dropping sessions.
  const onHup = () => void gw.smtp?.reloadTls('SIGHUP');
  process.on('SIGHUP', onHup);
  await untilSignalled(() => gw.stop());
  process.off('SIGHUP', onHup);
  // Anything a library left open must not keep a stopped gateway alive.
  setTimeout(() => process.exit(0), 2_000).unref();
  return 0;
}

export const usageFlags = `options (flags override environment variables, which override the config file's "gateway" section):
${gatewayFlagsHelp()}

AWS: AWS_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3|_KMS|_SNS and the standard credential chain, as for
\`mailroom get\`. Logs are JSON lines on stdout (LOG_LEVEL=debug|info|warn). SIGTERM: stop accepting (421), finish
messages in flight, give deliveries gateway.worker.shutdownTimeoutMs, exit.`;

export const gateway: Command = {
  name: 'gateway',
  summary: 'run the SMTP gateway and its delivery workers in one process',
  usage: `usage: mailroom gateway --config <file> [options]

Receives mail over SMTP as SES would for the config's receipt rules, spools it durably, and delivers each message
to every matching rule's S3 action (same key, encryption and SNS notification as SES).

${usageFlags}`,
  run: (args) => runGatewayParts('gateway', args, { smtp: true, workers: true, deliveryThread: true }),
};
