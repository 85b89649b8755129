import type { Command } from '../command/command.js';

/** Subcommands load lazily so `mailroom validate` never pays for BullMQ, smtp-server or the AWS SDK. */
export const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  validate: { summary: 'check a config file against SES’s rules', load: async () => (await import('./validate.js')).validate },
  schema: { summary: 'print the config file’s JSON Schema', load: async () => (await import('./schema.js')).schema },
  get: { summary: 'write a stored message to stdout or a file, decrypting it', load: async () => (await import('./get.js')).get },
  gateway: { summary: 'run the SMTP gateway and its delivery workers in one process', load: async () => (await import('./gateway.js')).gateway },
  smtp: { summary: 'run only the SMTP front (accept, spool, enqueue)', load: async () => (await import('./smtp.js')).smtp },
  worker: { summary: 'run only the delivery workers (S3, KMS, SNS)', load: async () => (await import('./worker.js')).worker },
  local: { summary: 'run everything on this machine for a first try (npm start)', load: async () => (await import('./local.js')).local },
  replay: { summary: 'store mail from mbox, Maildir, .eml files or another bucket as SES would have', load: async () => (await import('./replay.js')).replay },
  queue: { summary: 'show delivery counts; list and retry failed deliveries', load: async () => (await import('./queue.js')).queue },
  load: { summary: 'load-test the upload path: SMTP to a gateway, or uploads in SES format', load: async () => (await import('./load.js')).load },
  'smtp-user': { summary: 'print a credentials line for SMTP AUTH (password from stdin)', load: async () => (await import('./smtp-user.js')).smtpUser },
};
