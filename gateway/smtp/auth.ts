import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../shared/config/index.js';

/**
 * SMTP AUTH credentials for forwarding MTAs: `user:$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt b64>$<hash b64>` lines
 * (PHC string format, node:crypto scrypt — no extra dependency). Passwords and hashes never reach a log line or an
 * error message; only the file name and line number do.
 */

interface Credential {
  params: { N: number; r: number; p: number };
  salt: Buffer;
  hash: Buffer;
}

const PHC = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;
const DEFAULT = { ln: 15, r: 8, p: 1 };
/**
 * MAILROOM_SMTP_USERS entries are separated by newlines, or by a comma between one entry's hash and the next
 * `user:` — never at the commas inside an entry's `ln=15,r=8,p=1`.
 */
const ENV_SEPARATORS = /\r?\n|(?<=\$[A-Za-z0-9+/]+={0,2})\s*,\s*(?=[^\s:,$]+:)/;
const HASH_BYTES = 32;

function scryptAsync(password: Buffer, salt: Buffer, keylen: number, params: { N: number; r: number; p: number }): Promise<Buffer> {
  // maxmem: scrypt needs 128·N·r bytes; the default 32 MiB ceiling is just below what ln=15,r=8 needs.
  const opts: ScryptOptions = { ...params, maxmem: 256 * params.N * params.r + 1024 * 1024 };
  return new Promise((resolve, reject) => scrypt(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string, cost = DEFAULT): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(Buffer.from(password, 'utf8'), salt, HASH_BYTES, { N: 2 ** cost.ln, r: cost.r, p: cost.p });
  return `$scrypt$ln=${cost.ln},r=${cost.r},p=${cost.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export class Credentials {
  private constructor(private readonly users: Map<string, Credential>) {}

  get size(): number {
    return this.users.size;
  }

  /** From `usersFile` and the MAILROOM_SMTP_USERS variable; a malformed line is a ConfigError naming where it is. */
  static load(usersFile: string | undefined, env: NodeJS.ProcessEnv = process.env): Credentials {
    const users = new Map<string, Credential>();
    const add = (text: string, source: string, path: string, separators: RegExp) => {
      text.split(separators).forEach((raw, i) => {
        const line = raw.trim();
        if (!line || line.startsWith('#')) return;
        const colon = line.indexOf(':');
        const m = colon > 0 ? PHC.exec(line.slice(colon + 1)) : null;
        // The variable is already the problem's path: naming it twice would read "MAILROOM_SMTP_USERS: MAILROOM_SMTP_USERS, …".
        const where = source === path ? `entry ${i + 1}` : `${source}, entry ${i + 1}`;
        if (!m) {
          const bcrypt = /^[^:]+:\$2[aby]\$/.test(line);
          throw new ConfigError(source, [
            {
              path,
              message: `${where} is not "user:$scrypt$ln=..,r=..,p=..$salt$hash"${bcrypt ? ' (bcrypt hashes are not supported)' : ''}`,
              fix: 'make the line with `mailroom smtp-user <name>` (reads the password from stdin)',
            },
          ]);
        }
        const [, ln, r, p, salt, hash] = m as unknown as [string, string, string, string, string, string];
        users.set(line.slice(0, colon), { params: { N: 2 ** Number(ln), r: Number(r), p: Number(p) }, salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') });
      });
    };
    if (usersFile) {
      let text: string;
      try {
        text = readFileSync(usersFile, 'utf8');
      } catch (err) {
        throw new ConfigError(usersFile, [{ path: 'gateway.smtp.auth.usersFile', message: `cannot read "${usersFile}" (${(err as NodeJS.ErrnoException).code ?? 'error'})`, fix: 'give the path of a file the gateway can read' }]);
      }
      add(text, usersFile, 'gateway.smtp.auth.usersFile', /\r?\n/);
    }
    if (env.MAILROOM_SMTP_USERS) add(env.MAILROOM_SMTP_USERS, 'MAILROOM_SMTP_USERS', 'MAILROOM_SMTP_USERS', ENV_SEPARATORS);
    return new Credentials(users);
  }

  /** Constant work whether or not the user exists, so timing does not tell which names are valid. */
  async verify(username: string, password: string): Promise<boolean> {
    const c = this.users.get(username) ?? DUMMY;
    const got = await scryptAsync(Buffer.from(password, 'utf8'), c.salt, c.hash.length, c.params);
    return got.length === c.hash.length && timingSafeEqual(got, c.hash) && c !== DUMMY;
  }
}

const DUMMY: Credential = { params: { N: 2 ** DEFAULT.ln, r: DEFAULT.r, p: DEFAULT.p }, salt: Buffer.alloc(16), hash: Buffer.alloc(HASH_BYTES) };
