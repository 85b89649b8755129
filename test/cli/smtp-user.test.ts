/** `mailroom smtp-user` prints entries that MAILROOM_SMTP_USERS takes, one per line or comma-separated. */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Credentials } from '../../gateway/smtp/auth.js';

describe('`mailroom smtp-user` entries in MAILROOM_SMTP_USERS', () => {
  // Lines as `mailroom smtp-user` prints them: the default cost `ln=15,r=8,p=1` has commas of its own.
  const smtpUser = (name: string, password: string) =>
    execFileSync(process.execPath, [fileURLToPath(new URL('../../bin/mailroom.js', import.meta.url)), 'smtp-user', name], { input: password, encoding: 'utf8' }).trim();

  it('takes entries made by `mailroom smtp-user`, newline- or comma-separated', async () => {
    const [bob, carol] = [smtpUser('bob', 'pw-bob'), smtpUser('carol', 'pw-carol')];
    expect(bob).toMatch(/^bob:\$scrypt\$ln=15,r=8,p=1\$/);
    for (const users of [bob, `${bob}\n${carol}\n`, `${bob}\r\n${carol}`, `${bob},${carol}`, `${bob}, ${carol}`]) {
      const creds = Credentials.load(undefined, { MAILROOM_SMTP_USERS: users });
      expect(creds.size, users).toBe(users.includes('carol') ? 2 : 1);
      expect(await creds.verify('bob', 'pw-bob')).toBe(true);
      if (creds.size === 2) expect([await creds.verify('carol', 'pw-carol'), await creds.verify('carol', 'pw-bob')]).toEqual([true, false]);
    }
  }, 30_000);
});
