import { z } from 'zod';
import { ReceivingConfigSchema } from './schema.js';

/** JSON Schema of the config file (what a user writes, so defaults are optional), for editors and CI. */
export function receivingConfigJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ReceivingConfigSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}
