import { z } from 'zod';

/**
 * Settings only the infra module reads (`infra` in the config file). Owned by infra/; kept here so the one config
 * file a user writes is described by one schema.
 */
export const InfraSettingsSchema = z.object({}).strict();
export type InfraSettings = z.infer<typeof InfraSettingsSchema>;
