import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON lines on stdout (or stderr for commands whose stdout is for people). What gets logged is decided at each
 * call site: message ids, rule names, keys, sizes, addresses and timings — never message bodies, header values or
 * credentials, so there is nothing to redact here.
 */
export function createLogger(opts: { level?: string; name?: string; destination?: 1 | 2 } = {}): Logger {
  return pino(
    { name: opts.name ?? 'mailroom', level: opts.level ?? process.env.LOG_LEVEL ?? 'info', base: { pid: process.pid } },
    pino.destination({ fd: opts.destination ?? 1, sync: false }),
  );
}

/** For tests and embedding: a logger that writes nothing. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
