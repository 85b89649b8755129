import { hashPassword } from '../../gateway/smtp/auth.js';
import { UsageError, type Command } from '../command/command.js';

/** Reads the password from stdin (never from argv, where `ps` would show it). */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

export const smtpUser: Command = {
  name: 'smtp-user',
  summary: 'print a credentials line for gateway.smtp.auth (password from stdin)',
  usage: `usage: mailroom smtp-user <name> < password-file

Prints "name:$scrypt$..." for gateway.smtp.auth.usersFile or MAILROOM_SMTP_USERS. The password is read from
stdin (e.g. \`printf %s "$PASS" | mailroom smtp-user relay1 >> /etc/mailroom/smtp-users\`).`,
  async run(args) {
    const [name, ...rest] = args;
    if (!name || rest.length || !/^[^\s:]+$/.test(name)) throw new UsageError('give one user name without spaces or ":"');
    const password = await readStdin();
    if (!password) {
      console.error('mailroom smtp-user: no password on stdin');
      return 2;
    }
    console.log(`${name}:${await hashPassword(password)}`);
    return 0;
  },
};
