import { pino, type Logger } from 'pino';

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
  return pino(
    { name: opts.name ?? 'mailroom', level: opts.level ?? process.env.LOG_LEVEL ?? 'info', base: { pid: process.pid }, redact: { paths: REDACT, censor: '[redacted]' } },
    pino.destination({ fd: opts.destination ?? 1, sync: false }),
  );
}

/** For tests: the same logger options, writing to the given stream. */
export function streamLogger(stream: NodeJS.WritableStream, level = 'debug'): Logger {
  return pino({ name: 'mailroom', level, base: { pid: process.pid }, redact: { paths: REDACT, censor: '[redacted]' } }, stream);
}

/** For tests and embedding: a logger that writes nothing. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
