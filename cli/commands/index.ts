import type { Command } from '../command.js';

/** Subcommands load lazily so `mailroom validate` never pays for BullMQ, smtp-server or the AWS SDK. */
export const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  validate: { summary: 'check a config file against SES’s rules', load: async () => (await import('./validate.js')).validate },
  schema: { summary: 'print the config file’s JSON Schema', load: async () => (await import('./schema.js')).schema },
  get: { summary: 'write a stored message to stdout or a file, decrypting it', load: async () => (await import('./get.js')).get },
};
