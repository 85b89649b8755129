import { availableParallelism } from 'node:os';
import { lstatSync, statSync } from 'node:fs';
import { dirname, sep } from 'node:path';
import { ConfigError } from '../../shared/config/index.js';
import { startGateway, type GatewayParts, type RunningGateway } from '../../gateway/gateway.js';
import { createLogger, logLevel } from '../../gateway/runtime/log.js';
import { gatewayFlagOptions, gatewayFlagsHelp, loadRuntime, overridesFrom, type GatewayFlag, type GatewayRuntime } from '../../gateway/runtime/settings.js';
import { parse } from '../command/args.js';
import { UsageError, type Command } from '../command/command.js';

/**
 * Loads settings from flags/env/file; prints ConfigError problems (field and fix) and returns undefined on error.
 * `omit`: flags this command does not use (their variables still apply: one environment serves every part).
 */
export function runtimeFromArgs(command: string, args: string[], omit: readonly GatewayFlag[] = []): GatewayRuntime | undefined {
  const unused = omit.find((f) => args.some((a) => a === `--${f}` || a.startsWith(`--${f}=`)));
  if (unused) throw new UsageError(`--${unused} is a setting of the SMTP front, which \`mailroom ${command}\` does not run: drop it`);
  const { values } = parse(args, gatewayFlagOptions(omit), false);
  try {
    logLevel(); // LOG_LEVEL is settings too: refused here, before anything starts, like a bad flag
    return loadRuntime(overridesFrom(values));
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`mailroom ${command}: ${err.message}`);
      return undefined;
    }
    throw err;
  }
}

const SPOOL_SETTING = '--spool-dir / MAILROOM_SPOOL_DIR (gateway.spoolDir)';

/** The first existing part of `path` that is not a directory (a file, or a symbolic link to nothing). */
function blocker(path: string): { path: string; what: string } | undefined {
  const parts: string[] = [];
  for (let p = path; ; p = dirname(p)) {
    parts.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const p of parts) {
    let link;
    try {
      link = lstatSync(p);
    } catch {
      return undefined; // the rest does not exist: nothing in the way
    }
    try {
      if (!statSync(p).isDirectory()) return { path: p, what: link.isSymbolicLink() ? 'a link to something other than a directory' : 'a file' };
    } catch {
      return { path: p, what: 'a symbolic link to nothing (a volume not mounted?)' };
    }
  }
  return undefined;
}

/** Explains start-up failures a user can fix. */
export function explainStartError(err: unknown, runtime: GatewayRuntime): string {
  const e = err as NodeJS.ErrnoException;
  const { host, port } = runtime.settings.smtp;
  if (e.code === 'EADDRINUSE') return `${host}:${port} is already in use: stop what listens there or choose another port with --smtp-port`;
  if (e.code === 'EACCES' && e.syscall === 'listen') return `no permission to listen on ${host}:${port} (ports below 1024 need privileges): use --smtp-port 2525 or grant CAP_NET_BIND_SERVICE`;
  return explainSpoolError(e, runtime.settings.spoolDir) ?? (e instanceof Error ? e.message : String(e));
}

/** A file-system error on the spool directory or on the path to it, in words; undefined for anything else. */
export function explainSpoolError(e: NodeJS.ErrnoException, spoolDir: string): string | undefined {
  const at = e.path;
  // Only errors on the spool itself, inside it, or on a directory above it (where a recursive mkdir stops).
  const onSpool = at === undefined ? e.code === 'EACCES' || e.code === 'EROFS' : at === spoolDir || at.startsWith(`${spoolDir}${sep}`) || spoolDir.startsWith(`${at.replace(/[\\/]$/, '')}${sep}`);
  if (!onSpool) return undefined;
  const where = at && at !== spoolDir ? ` (at ${at})` : '';
  switch (e.code) {
    case 'EACCES':
    case 'EPERM':
      return `cannot write the spool directory ${spoolDir}${where} (${e.code}: no permission): give this user write access to it, or choose another with ${SPOOL_SETTING}`;
    case 'EROFS':
      return `cannot write the spool directory ${spoolDir}${where} (EROFS: read-only file system): mount its volume read-write, or choose another directory with ${SPOOL_SETTING}`;
    case 'ENOTDIR': {
      // Node names the whole path it was asked to make; the operator needs the part that is in the way.
      const b = at ? blocker(at) : undefined;
      const what = b ? `${b.path} is ${b.what}, not a directory` : `a part of ${at ?? spoolDir} is not a directory`;
      return `cannot make the spool directory ${spoolDir}: ${what} (ENOTDIR): move it out of the way, or choose another directory with ${SPOOL_SETTING}`;
    }
    case 'ENOENT': {
      const b = at ? blocker(at) : undefined;
      const what = b ? `${b.path} is ${b.what}` : `a part of ${at ?? spoolDir} does not exist and cannot be made`;
      return `cannot make the spool directory ${spoolDir}: ${what} (ENOENT; a volume not mounted, or a directory removed meanwhile?): mount the volume or mend the path, or choose another directory with ${SPOOL_SETTING}`;
    }
    case 'ENOSPC':
    case 'EDQUOT':
      return `the spool directory ${spoolDir}${where} is full (${e.code}): free space or inodes there, or choose another directory with ${SPOOL_SETTING}`;
    default:
      return undefined;
  }
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

export async function runGatewayParts(command: string, args: string[], parts: GatewayParts, omit: readonly GatewayFlag[] = []): Promise<number> {
  const runtime = runtimeFromArgs(command, args, omit);
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

/** The options part of a gateway command's usage, less the flags it does not take. */
export const usageFlagsWithout = (omit: readonly GatewayFlag[]) => `options (flags override environment variables, which override the config file's "gateway" section):
${gatewayFlagsHelp(omit)}

AWS: AWS_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3|_KMS|_SNS and the standard credential chain, as for
\`mailroom get\`. Logs are JSON lines on stdout (LOG_LEVEL=debug|info|warn). SIGTERM: stop accepting (421), finish
messages in flight, give deliveries gateway.worker.shutdownTimeoutMs, exit.`;

export const usageFlags = usageFlagsWithout([]);

export const gateway: Command = {
  name: 'gateway',
  summary: 'run the SMTP gateway and its delivery workers in one process',
  usage: `usage: mailroom gateway --config <file> [options]

Receives mail over SMTP as SES would for the config's receipt rules, spools it durably, and delivers each message
to every matching rule's S3 action (same key, encryption and SNS notification as SES).

${usageFlags}`,
  run: (args) => runGatewayParts('gateway', args, { smtp: true, workers: true, deliveryThread: true }),
};
