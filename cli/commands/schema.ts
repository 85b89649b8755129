import { receivingConfigJsonSchema } from '../../shared/config/index.js';
import type { Command } from '../command/command.js';

export const schema: Command = {
  name: 'schema',
  summary: 'print the config file’s JSON Schema',
  usage: 'usage: mailroom schema\n\nPrints the JSON Schema of mailroom config files (examples/mailroom.schema.json is a copy).',
  async run() {
    console.log(JSON.stringify(receivingConfigJsonSchema(), null, 2));
    return 0;
  },
};
