import { z } from 'zod';

/**
 * Settings only the gateway reads (`gateway` in the config file). Owned by gateway/; kept here so the one config
 * file a user writes is described by one schema.
 */
export const GatewaySettingsSchema = z.object({}).strict();
export type GatewaySettings = z.infer<typeof GatewaySettingsSchema>;
