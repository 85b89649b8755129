import { pino, type Logger, type LoggerOptions } from 'pino';
import { ConfigError } from '../../shared/config/index.js';

export type { Logger };

/**
 * Fields that must never reach a log, whoever adds them later (AUTH, credentials, bodies, header values). What gets
 * logged is decided at each call site — message ids, rule names, keys, sizes, addresses and timings — so this list
 * is a net, not the policy.
 */
const SENSITIVE = new Set(['password', 'pass', 'secret', 'token', 'authorization', 'credentials', 'auth', 'body', 'headers', 'data']);
const CENSOR = '[redacted]';

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Error) && !Buffer.isBuffer(v);
}

/**
 * The net: a sensitive key at the top of a line's object or one level down (`{ auth: … }`, `{ session: { auth: … } }`)
 * is replaced by "[redacted]", in a copy — the caller's object is never changed. This replaces pino's `redact`
 * option, whose path matcher parsed its 20 paths on every line: a third of the accept path's heap allocation
 * (sampled), and the scavenges that came with it.
 */
export function censorSensitive<T extends Record<string, unknown>>(obj: T): T {
  let out: Record<string, unknown> | undefined;
  for (const k in obj) {
    if (!Object.prototype.hasOwnProperty.call(obj, k)) continue;
    const v = obj[k];
    let censored: unknown = v;
    if (SENSITIVE.has(k)) censored = CENSOR;
    else if (isPlainObject(v)) {
      for (const inner in v) {
        if (!SENSITIVE.has(inner) || !Object.prototype.hasOwnProperty.call(v, inner)) continue;
        if (censored === v) censored = { ...v };
        (censored as Record<string, unknown>)[inner] = CENSOR;
      }
    }
    if (censored !== v) (out ??= { ...obj })[k] = censored;
  }
  return (out ?? obj) as T;
}

/**
 * JSON lines on stdout (or stderr for commands whose stdout is for people). Lines about one message carry its
 * `messageId` (SMTP front: from DATA on; workers: a child logger per job with messageId, rule, jobId, attempt), and
 * every line of a gateway carries its `node`.
 */
export function createLogger(opts: { level?: string; name?: string; destination?: 1 | 2 } = {}): Logger {
  return pino(options(opts.name ?? 'mailroom', opts.level ?? logLevel()), pino.destination({ fd: opts.destination ?? 1, sync: false }));
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * LOG_LEVEL (unset or empty: `fallback`), checked before pino sees it: pino's own error ("default level:verbose must
 * be included in custom levels") names neither the variable nor the levels there are.
 */
export function logLevel(value: string | undefined = process.env.LOG_LEVEL, fallback = 'info'): string {
  const level = value?.trim().toLowerCase() || fallback;
  if (LEVELS.includes(level)) return level;
  throw new ConfigError('LOG_LEVEL', [{ path: 'LOG_LEVEL', message: `${JSON.stringify(value)} is not a log level`, fix: `use one of ${LEVELS.join(', ')}` }]);
}

function options(name: string, level: string): LoggerOptions {
  return { name, level, base: { pid: process.pid }, formatters: { log: censorSensitive } };
}

/** A child logger whose bindings pass the same net (pino applies its formatters to lines, not to child bindings). */
export function childLogger(log: Logger, bindings: Record<string, unknown>): Logger {
  return log.child(censorSensitive(bindings));
}

/** For tests: the same logger options, writing to the given stream. */
export function streamLogger(stream: NodeJS.WritableStream, level = 'debug'): Logger {
  return pino(options('mailroom', level), stream);
}

/** The same logger options, handing each finished line (with its newline) to `write`: a delivery thread's logger. */
export function lineLogger(write: (line: string) => void, name: string, level: string): Logger {
  return pino(options(name, level), { write });
}

/** Writes lines another logger of this process formatted (a delivery thread's) to this logger's destination. */
export function writeLines(log: Logger, lines: string): void {
  const stream = (log as unknown as Record<symbol, { write(s: string): unknown } | undefined>)[pino.symbols.streamSym];
  (stream ?? process.stdout).write(lines);
}

/** For tests and embedding: a logger that writes nothing. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
