import type { Command } from '../command.js';
import { runGatewayParts, usageFlags } from './gateway.js';

export const worker: Command = {
  name: 'worker',
  summary: 'run only the delivery workers (S3, KMS, SNS)',
  usage: `usage: mailroom worker --config <file> [options]

The delivering half of \`mailroom gateway\`. It reads message bodies from the spool directory the SMTP front
writes, so it runs on the same machine or on storage both mount.

${usageFlags}`,
  run: (args) => runGatewayParts('worker', args, { smtp: false, workers: true }),
};
