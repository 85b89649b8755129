import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * Fields that must never reach a log, whoever adds them later (AUTH, credentials, bodies, header values). What gets
 * logged is decided at each call site — message ids, rule names, keys, sizes, addresses and timings — so this list
 * is a net, not the policy.
 */
const REDACT = ['password', 'pass', 'secret', 'token', 'authorization', 'credentials', 'auth', 'body', 'headers', 'data'].flatMap((k) => [k, `*.${k}`]);

/**
 * JSON lines on stdout (or stderr for commands whose stdout is for people). Lines about one message carry its
 * `messageId` (SMTP front: from DATA on; workers: a child logger per job with messageId, rule, jobId, attempt), and
 * every line of a gateway carries its `node`.
 */
export function createLogger(opts: { level?: string; name?: string; destination?: 1 | 2 } = {}): Logger {
  return pino(options(opts.name ?? 'mailroom', opts.level ?? process.env.LOG_LEVEL ?? 'info'), pino.destination({ fd: opts.destination ?? 1, sync: false }));
}

function options(name: string, level: string): LoggerOptions {
  return { name, level, base: { pid: process.pid }, redact: { paths: REDACT, censor: '[redacted]' } };
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
