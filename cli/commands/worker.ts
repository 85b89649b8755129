import { SMTP_FRONT_FLAGS } from '../../gateway/runtime/settings.js';
import type { Command } from '../command/command.js';
import { runGatewayParts, usageFlagsWithout } from './gateway.js';

export const worker: Command = {
  name: 'worker',
  summary: 'run only the delivery workers (S3, KMS, SNS)',
  usage: `usage: mailroom worker --config <file> [options]

The delivering half of \`mailroom gateway\`. It reads message bodies from the spool directory the SMTP front
writes, so it runs on the same machine or on storage both mount.

${usageFlagsWithout(SMTP_FRONT_FLAGS)}`,
  // No SMTP listener here: the SMTP flags are neither listed nor taken (MAILROOM_SMTP_* from a shared environment are
  // still read, and still checked, with the config).
  run: (args) => runGatewayParts('worker', args, { smtp: false, workers: true }, SMTP_FRONT_FLAGS),
};
