import { z } from 'zod';

/**
 * Settings only the gateway reads (`gateway` in the config file). Owned by gateway/; kept here so the one config
 * file a user writes is described by one schema. Every field has a default, so `"gateway": {}` (or no section)
 * runs; command-line flags and environment variables override the file (gateway/settings.ts).
 */

const ms = (def: number, what: string) => z.number().int().positive().default(def).describe(`${what}, in milliseconds.`);

export const GatewayTlsSchema = z
  .object({
    certFile: z.string().describe('PEM certificate chain offered with STARTTLS.'),
    keyFile: z.string().describe('PEM private key of the certificate.'),
  })
  .strict();

export const GatewaySmtpSchema = z
  .object({
    host: z.string().default('127.0.0.1').describe('Address to listen on; "0.0.0.0" (or "::") to take mail from other hosts.'),
    port: z.number().int().min(0).max(65535).default(2525).describe('SMTP port (25 in production needs privileges; 0 picks a free port).'),
    tls: GatewayTlsSchema.optional().describe('Offer STARTTLS with this certificate. Without it, recipients of rules with tlsPolicy "Require" are always refused.'),
    maxConnections: z.number().int().positive().default(200).describe('Concurrent SMTP connections; further clients get 421.'),
    maxRecipients: z.number().int().positive().default(100).describe('RCPT TO per message; further recipients get 452 (the sender retries them).'),
    socketTimeoutMs: ms(300_000, 'Idle time before a client is disconnected with 421 (RFC 5321 suggests at least 5 minutes)'),
    closeTimeoutMs: ms(30_000, 'On shutdown, how long sessions may finish before they get 421'),
    reverseDns: z.boolean().default(true).describe('Look up the client\'s PTR name for the Received header (1.5 s at most).'),
  })
  .strict();

export const GatewayRedisSchema = z
  .object({
    url: z.string().default('redis://127.0.0.1:6379').describe('Redis for the job queue (redis:// or rediss://).'),
    prefix: z
      .string()
      .default('mailroom')
      .describe('Key prefix of the queues; write it as "{mailroom}" on Redis Cluster so every key of a queue is in one slot.'),
    enqueueTimeoutMs: ms(5_000, 'How long the accept path waits for Redis before answering 451'),
  })
  .strict();

export const GatewayWorkerSchema = z
  .object({
    concurrency: z.number().int().positive().default(8).describe('Deliveries in flight per process.'),
    attempts: z.number().int().positive().default(60).describe('Tries per delivery before it lands in the failed set (60 with the default backoff ≈ 4 h, as SES retries).'),
    backoffBaseMs: ms(1_000, 'First retry delay; doubles per attempt'),
    backoffMaxMs: ms(300_000, 'Largest retry delay'),
    lockDurationMs: ms(30_000, 'How long a delivery is owned by a worker that stopped answering before another may take it over'),
    stalledIntervalMs: ms(30_000, 'How often workers look for deliveries of crashed workers'),
    maxStalledCount: z.number().int().nonnegative().default(10).describe('Crashes a delivery survives before it is marked failed.'),
    shutdownTimeoutMs: ms(30_000, 'On shutdown, how long deliveries in flight may finish; the rest are taken over after a restart'),
    keepCompleted: z.number().int().nonnegative().default(1000).describe('Completed deliveries kept for `mailroom queue`.'),
    recoveryIntervalMs: ms(60_000, 'How often the spool is checked for messages whose jobs are gone (e.g. Redis lost its data)'),
  })
  .strict();

export const GatewayUploadSchema = z
  .object({
    multipartThresholdBytes: z.number().int().positive().default(8 * 1024 * 1024).describe('Stored messages this large or larger go up in parts; smaller ones in one PUT.'),
    partSizeBytes: z.number().int().min(5 * 1024 * 1024).default(8 * 1024 * 1024).describe('Multipart part size (S3 minimum 5 MiB). Memory per upload ≈ partSize × queueSize.'),
    queueSize: z.number().int().positive().default(2).describe('Parts in flight per upload.'),
    checksums: z
      .enum(['WHEN_SUPPORTED', 'WHEN_REQUIRED'])
      .default('WHEN_SUPPORTED')
      .describe('S3 checksum calculation; WHEN_REQUIRED for S3-compatible stores that reject the SDK\'s default CRC32 checksums.'),
    requestTimeoutMs: ms(60_000, 'Per-request ceiling for S3, KMS and SNS'),
  })
  .strict();

export const GatewayHttpSchema = z
  .object({
    host: z.string().default('127.0.0.1').describe('Address of the metrics/health listener; keep it off the public interface.'),
    port: z.number().int().min(0).max(65535).default(9464).describe('Port of /metrics (Prometheus), /healthz and /readyz (0 picks a free port).'),
    readyCacheMs: ms(5_000, 'How long a /readyz answer is reused (its S3 check sends one HeadBucket per bucket)'),
    checkTimeoutMs: ms(2_000, 'Per-check ceiling of /readyz (Redis PING, spool probe file, S3 HeadBucket)'),
  })
  .strict();

export const GatewaySettingsSchema = z
  .object({
    hostname: z
      .string()
      .regex(/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/, 'must be a host name')
      .optional()
      .describe('The gateway\'s own name: in the SMTP greeting and in the `by` part of the Received header. Default: the machine\'s host name.'),
    spoolDir: z.string().default('.mailroom/spool').describe('Directory where accepted mail is kept (fsync\'d) until every rule delivered it.'),
    nodeId: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit')
      .optional()
      .describe('Names this gateway\'s spool and its queues in Redis (several gateways share one Redis, each delivers what its own spool holds). Default: the id recorded in the spool directory, else the host name. Keep it with the spool volume.'),
    http: GatewayHttpSchema.optional().describe('Serve /metrics, /healthz and /readyz over HTTP. Off when absent; {} listens on 127.0.0.1:9464.'),
    smtp: GatewaySmtpSchema.prefault({}),
    redis: GatewayRedisSchema.prefault({}),
    worker: GatewayWorkerSchema.prefault({}),
    upload: GatewayUploadSchema.prefault({}),
  })
  .strict();
export type GatewaySettings = z.infer<typeof GatewaySettingsSchema>;
