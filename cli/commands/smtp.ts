import type { Command } from '../command/command.js';
import { runGatewayParts, usageFlags } from './gateway.js';

export const smtp: Command = {
  name: 'smtp',
  summary: 'run only the SMTP front (accept, spool, enqueue)',
  usage: `usage: mailroom smtp --config <file> [options]

The accepting half of \`mailroom gateway\`: SMTP in, spool, jobs in Redis, 250. Run \`mailroom worker\` with the
same config, Redis and spool directory to deliver.

${usageFlags}`,
  run: (args) => runGatewayParts('smtp', args, { smtp: true, workers: false }),
};
