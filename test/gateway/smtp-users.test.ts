/** MAILROOM_SMTP_USERS: a malformed entry is refused by its number, never echoed. (Entries made by `mailroom smtp-user`: test/cli/smtp-user.test.ts.) */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/config/index.js';
import { Credentials } from '../../gateway/smtp/auth.js';

describe('MAILROOM_SMTP_USERS', () => {
  it('a malformed entry is refused by its number, without echoing the entry', () => {
    expect(() => Credentials.load(undefined, { MAILROOM_SMTP_USERS: 'bob:$scrypt$ln=15,r=8,p=1$c2FsdA==$aGFzaA==,carol:secret' })).toThrow(
      /MAILROOM_SMTP_USERS: entry 2 is not "user:\$scrypt\$/,
    );
    const err = (() => {
      try {
        Credentials.load(undefined, { MAILROOM_SMTP_USERS: 'carol:secret' });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([
      { path: 'MAILROOM_SMTP_USERS', message: 'entry 1 is not "user:$scrypt$ln=..,r=..,p=..$salt$hash"', fix: 'make the line with `mailroom smtp-user <name>` (reads the password from stdin)' },
    ]);
    expect(JSON.stringify((err as ConfigError).problems)).not.toContain('secret');
    expect(String(err)).not.toContain('secret');
  });
});
