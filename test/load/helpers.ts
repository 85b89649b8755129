/** Running `mailroom load` as an operator would (a child process), and small SMTP targets that misbehave on purpose. */
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import type { LoadResult } from '../../load/result.js';
import { MAILROOM } from '../gateway/child.js';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time of the whole command, start-up included. */
  ms: number;
  json?: LoadResult;
}

/** `mailroom load <args>`; parses stdout as the --json result when it is one. */
export function loadCli(
  args: string[],
  opts: {
    env?: Record<string, string | undefined>;
    stdin?: string;
    timeoutMs?: number;
    /** Once stderr matches `when`: after `afterMs`, send the process `signal` (an operator's Ctrl-C) and/or call `then`. */
    interrupt?: { when: RegExp; afterMs: number; signal?: NodeJS.Signals | null; then?: () => void };
  } = {},
): Promise<CliRun> {
  return new Promise((resolve) => {
    const t = performance.now();
    const env = { ...process.env, ...opts.env };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
    const child = spawn(process.execPath, [MAILROOM, 'load', ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    let interrupted = false;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      // Like an operator's Ctrl-C once the run is under way.
      if (opts.interrupt && !interrupted && opts.interrupt.when.test(stderr)) {
        interrupted = true;
        setTimeout(() => {
          if (opts.interrupt!.signal !== null) child.kill(opts.interrupt!.signal ?? 'SIGINT');
          opts.interrupt!.then?.();
        }, opts.interrupt.afterMs);
      }
    });
    child.stdin.end(opts.stdin ?? '');
    const kill = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
    child.on('exit', (code) => {
      clearTimeout(kill);
      let json: LoadResult | undefined;
      try {
        json = stdout.trim().startsWith('{') ? (JSON.parse(stdout) as LoadResult) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ code, stdout, stderr, ms: performance.now() - t, ...(json ? { json } : {}) });
    });
  });
}

export interface TargetEvent {
  at: number;
  session: string;
  secure: boolean;
  user: string | undefined;
}

export interface Target {
  port: number;
  mailFrom: TargetEvent[];
  messages: number;
  close(): Promise<void>;
}

/**
 * An SMTP server on a free loopback port. `onData` decides the reply to each message's end of DATA (after its whole
 * body was read): undefined accepts it, an Error with responseCode refuses it; `delayMs` holds the reply back.
 */
export async function startTarget(opts: {
  delayMs?: number;
  reply?: (n: number, session: SMTPServerSession) => (Error & { responseCode?: number }) | undefined | 'hang';
  rcpt?: (address: string) => (Error & { responseCode?: number }) | undefined;
  server?: Partial<SMTPServerOptions>;
} = {}): Promise<Target> {
  const mailFrom: TargetEvent[] = [];
  let messages = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    size: 50 * 1024 * 1024,
    ...opts.server,
    onMailFrom(_address, session, cb) {
      mailFrom.push({ at: performance.now(), session: session.id, secure: session.secure, user: session.user as string | undefined });
      cb();
    },
    onRcptTo(address, _session, cb) {
      cb(opts.rcpt?.(address.address) ?? undefined);
    },
    onData(stream, session, cb) {
      stream.on('data', () => undefined);
      stream.on('end', () => {
        const n = messages++;
        const r = opts.reply?.(n, session);
        if (r === 'hang') return;
        if (opts.delayMs) setTimeout(() => cb(r ?? null), opts.delayMs);
        else cb(r ?? null);
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    mailFrom,
    get messages() {
      return messages;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** An SMTP error as smtp-server writes it: `code` and text. */
export function smtpError(code: number, text: string): Error & { responseCode: number } {
  return Object.assign(new Error(text), { responseCode: code });
}
