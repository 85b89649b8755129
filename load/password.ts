/**
 * The AUTH password: from an environment variable, else stdin — never a flag, where `ps` and shell history would
 * show it. On a terminal it is asked for without echo; from a pipe, the first line is taken.
 */
import { UsageError } from '../cli/command/command.js';

interface PasswordIO {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (on: boolean) => unknown };
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

export async function readPassword(user: string, envName: string, io: PasswordIO): Promise<string> {
  const fromEnv = io.env[envName];
  if (fromEnv) return fromEnv;
  const password = io.stdin.isTTY && io.stdin.setRawMode ? await askWithoutEcho(`password for ${user}: `, io) : await firstLine(io.stdin);
  if (!password) throw new UsageError(`--auth ${user}: no password: set ${envName}, or pipe it on stdin (e.g. printf %s "$PASS" | mailroom load smtp … --auth ${user})`);
  return password;
}

async function firstLine(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stdin) {
    chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
    if ((c as Buffer).includes(10)) break;
  }
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

function askWithoutEcho(prompt: string, io: PasswordIO): Promise<string> {
  const stdin = io.stdin;
  io.stderr.write(prompt);
  stdin.setRawMode!(true);
  stdin.resume();
  return new Promise((resolve) => {
    let typed = '';
    const done = (value: string) => {
      stdin.setRawMode!(false);
      stdin.pause();
      stdin.removeListener('data', onData);
      io.stderr.write('\n');
      resolve(value);
    };
    const onData = (d: Buffer | string) => {
      for (const ch of d.toString()) {
        if (ch === '\r' || ch === '\n') return done(typed);
        if (ch === '\u0003' || ch === '\u0004') return done(''); // Ctrl-C, Ctrl-D: no password
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    stdin.on('data', onData);
  });
}
