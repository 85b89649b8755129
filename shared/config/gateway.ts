import { isIP } from 'node:net';
import { z } from 'zod';
import { parseKmsKeyArn } from '../ses/arn.js';
import { SES_MULTIPART } from '../ses/multipart.js';

/**
 * Settings only the gateway reads (`gateway` in the config file). Owned by gateway/; kept here so the one config
 * file a user writes is described by one schema. Every field has a default, so `"gateway": {}` (or no section)
 * runs; command-line flags and environment variables override the file (gateway/runtime/settings.ts).
 */

const ms = (def: number, what: string) => z.number().int().positive().default(def).describe(`${what}, in milliseconds.`);

export const GatewayTlsSchema = z
  .object({
    certFile: z.string().describe('PEM certificate chain offered with STARTTLS.'),
    keyFile: z.string().describe('PEM private key of the certificate.'),
    implicitPort: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .optional()
      .describe('Also listen on this port with implicit TLS (465-style: TLS from the first byte), on gateway.smtp.host; 0 picks a free port.'),
    watch: z
      .boolean()
      .default(true)
      .describe('Reload the certificate and key when their files change (SIGHUP always reloads); new sessions get the new certificate, open ones keep theirs.'),
    handshakeTimeoutMs: ms(
      10_000,
      'How long a client of the implicit-TLS port may take to complete its TLS handshake before the connection is closed (its connection slot is taken when it connects, so an idle one must not hold it for socketTimeoutMs)',
    ),
  })
  .strict();

/** One IPv4/IPv6 address or CIDR; shared by the schema (to refuse typos early) and gateway/net/cidr.ts. */
export function parseCidr(entry: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | { error: string } {
  const [addr = '', bits, ...rest] = entry.trim().split('/');
  const family = isIP(addr);
  if (rest.length || family === 0) return { error: 'is not an IP address or CIDR (e.g. 192.0.2.0/24, 2001:db8::/32)' };
  const max = family === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!(prefix <= max)) return { error: `has a bad prefix length (0 to ${max})` };
  return { address: addr, prefix, family: family === 4 ? 'ipv4' : 'ipv6' };
}

const cidrList = (what: string, def: string[] = []) =>
  z
    .array(
      z.string().superRefine((v, ctx) => {
        const r = parseCidr(v);
        if ('error' in r) ctx.addIssue({ code: 'custom', message: `"${v}" ${r.error}` });
      }),
    )
    .default(def)
    .describe(`${what} IPv4/IPv6 addresses or CIDRs ("192.0.2.0/24", "2001:db8::/32").`);

export const GatewayAuthSchema = z
  .object({
    mode: z
      .enum(['off', 'optional', 'required'])
      .default('off')
      .describe('SMTP AUTH (PLAIN, LOGIN) for forwarding MTAs. "optional": offered, anyone may still send; "required": MAIL FROM needs a login (530 otherwise) on every listener.'),
    usersFile: z
      .string()
      .optional()
      .describe('File of "user:$scrypt$ln=..,r=..,p=..$salt$hash" lines (make them with `mailroom smtp-user <name>`). MAILROOM_SMTP_USERS (same lines, newline- or comma-separated) adds to it. Never logged.'),
    plaintextFrom: cidrList('Clients that may AUTH without TLS (a relay on the same host, tests); everyone else must STARTTLS first (538).'),
    failureDelayMs: z
      .number()
      .int()
      .nonnegative()
      .default(1_000)
      .describe('A failed AUTH (535) and an AUTH refused for too many failures (454, 421) are answered after this pause, which slows password guessing on every connection. 0 = at once.'),
    maxFailuresPerConnection: z.number().int().positive().default(3).describe('Failed AUTH attempts per connection: the last one allowed is answered 421 4.7.0 and the connection is closed.'),
    maxFailuresPerClient: z
      .number()
      .int()
      .positive()
      .default(10)
      .describe('Failed AUTH attempts from one client address within failureWindowMs; from then on its AUTH gets 454 4.7.0 without a password check until the oldest failure leaves the window. trustedNetworks are not exempt.'),
    failureWindowMs: ms(900_000, 'The sliding window of maxFailuresPerClient'),
    maxConcurrentChecks: z
      .number()
      .int()
      .positive()
      .default(2)
      .describe('Password checks running at once. Each is a scrypt (about 32 MB and tens of milliseconds with the default cost) on the thread pool the spool\'s disk flushes also wait in, so a flood of logins must not take all of it.'),
    maxQueuedChecks: z.number().int().nonnegative().default(32).describe('Password checks waiting for one of maxConcurrentChecks; beyond that, AUTH gets 454 4.7.0 (try again later) at once.'),
  })
  .strict();

export const GatewayRateLimitSchema = z
  .object({
    messagesPerMinute: z.number().int().nonnegative().default(0).describe('Messages (MAIL FROM) per client address per minute; over it MAIL gets 451 4.7.1 with the wait. 0 = no limit.'),
    burst: z.number().int().positive().optional().describe('Messages a client may send at once before the per-minute rate applies (token bucket size). Default: messagesPerMinute.'),
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
    lmtpPort: z.number().int().min(0).max(65535).optional().describe('Also listen for LMTP (RFC 2033: one reply per recipient after DATA) on this port, on gateway.smtp.host; 0 picks a free port.'),
    receiptFilters: z
      .object({
        allow: cidrList('Receipt filter "Allow": when not empty, only these clients may connect.'),
        block: cidrList('Receipt filter "Block": these clients are refused (554 5.7.1) even when an allow entry matches them, as in SES.'),
      })
      .strict()
      .prefault({})
      .describe('IP address filters applied when a client connects, as SES receipt filters.'),
    maxConnectionsPerClient: z.number().int().positive().default(50).describe('Concurrent connections from one client address; further ones get 421 4.7.0. trustedNetworks are exempt.'),
    rateLimit: GatewayRateLimitSchema.prefault({}),
    trustedNetworks: cidrList(
      'Your own relays (e.g. the MTA that forwards to the gateway): exempt from the per-client connection and rate limits and the greeting delay. Not exempt from receipt filters.',
      ['127.0.0.0/8', '::1/128'],
    ),
    greetingDelayMs: z
      .number()
      .int()
      .nonnegative()
      .default(100)
      .describe('Wait this long before the 220 greeting; a client that talks first gets 421 (early-talker protection). Skipped for trustedNetworks. 0 = off.'),
    proxyProtocol: z
      .object({
        trustedProxies: cidrList('Load balancers whose connections start with a PROXY protocol header (v1 or v2, e.g. AWS NLB); the client address is taken from it. A connection from them without a valid header is closed without a reply. Others must not send one.'),
        headerTimeoutMs: ms(5_000, 'How long a trusted proxy may take to send the header'),
      })
      .strict()
      .prefault({}),
    auth: GatewayAuthSchema.prefault({}),
  })
  .strict();

/** The hash tag Redis Cluster hashes a key by: the text between its first `{` and the next `}`, when not empty. */
export function hashTag(key: string): string | undefined {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : undefined;
}

export const GatewayRedisSchema = z
  .object({
    url: z.string().default('redis://127.0.0.1:6379').describe('Redis for the job queue (redis:// or rediss://); with cluster, any one node of the cluster (e.g. the ElastiCache configuration endpoint).'),
    cluster: z
      .boolean()
      .default(false)
      .describe('Redis Cluster (ElastiCache with cluster mode enabled): connect with a cluster client that follows the slot map. The prefix must then carry a hash tag. A single Redis or an ElastiCache primary endpoint needs false.'),
    prefix: z
      .string()
      .default('mailroom')
      .describe('Key prefix of the queues; write it as "{mailroom}" on Redis Cluster so every key of a queue is in one slot.'),
    enqueueTimeoutMs: ms(5_000, 'How long the accept path waits for Redis before answering 451'),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (!r.cluster) return;
    // BullMQ's scripts and the accept path's MULTI touch several keys at once: on a cluster they must share a slot.
    if (hashTag(r.prefix) === undefined) {
      ctx.addIssue({ code: 'custom', path: ['prefix'], message: `"${r.prefix}" has no hash tag, so a cluster would spread one queue's keys over several slots`, params: { fix: `write it with braces, e.g. "{${r.prefix.replace(/[{}]/g, '') || 'mailroom'}}"` } });
    }
    const db = /^rediss?:\/\/[^/]*\/(\d+)/.exec(r.url)?.[1];
    if (db !== undefined && db !== '0') {
      ctx.addIssue({ code: 'custom', path: ['url'], message: `"${r.url}" selects database ${db}; a Redis Cluster has only database 0`, params: { fix: 'drop the /<db> part of the URL' } });
    }
  });

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
    thread: z
      .enum(['no', 'yes', 'auto'])
      .default('no')
      .describe('mailroom gateway only: run deliveries in a worker thread of their own, so SMTP answers on one core while uploads, encryption and notifications use another, at the cost of a second JavaScript heap (docs/performance.md#the-delivery-thread). auto = yes when the machine has more than one CPU.'),
    recoveryIntervalMs: ms(60_000, 'How often the spool is checked for messages whose jobs are gone (e.g. Redis lost its data)'),
  })
  .strict();

export const GatewayUploadSchema = z
  .object({
    multipartThresholdBytes: z.number().int().positive().default(SES_MULTIPART.thresholdBytes).describe('Stored messages this large or larger go up in parts (as SES uploads messages of 5 MB and more); smaller ones in one PUT.'),
    partSizeBytes: z.number().int().min(5 * 1024 * 1024).default(SES_MULTIPART.partSizeBytes).describe('Multipart part size (S3 minimum 5 MiB). Memory per upload ≈ partSize × queueSize.'),
    queueSize: z.number().int().positive().default(2).describe('Parts in flight per upload.'),
    checksums: z
      .enum(['WHEN_SUPPORTED', 'WHEN_REQUIRED'])
      .default('WHEN_REQUIRED')
      .describe(
        'S3 flexible checksums. WHEN_REQUIRED (default): none sent unless an operation requires one, so a stored object carries only the checksum S3 computes for any upload — a client CRC32 would show on HeadObject as ChecksumCRC32, an attribute SES-written objects are not known to have (docs/ses-format.md#content-type-and-checksums); it also halves the PUT\'s CPU. WHEN_SUPPORTED: the SDK\'s CRC32 on every upload.',
      ),
    requestTimeoutMs: ms(60_000, 'Per-request ceiling for S3, KMS and SNS'),
  })
  .strict();

/**
 * A DNS server as Node's resolver takes it: `192.0.2.53`, `192.0.2.53:5353`, `2001:db8::53` or `[2001:db8::53]:5353`.
 * Shared by the schema (to refuse typos early) and gateway/verdicts/dns.ts.
 */
export function parseDnsServer(entry: string): { address: string; port: number } | { error: string } {
  const v = entry.trim();
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(v);
  const [address, port] = bracketed ? [bracketed[1]!, bracketed[2]] : isIP(v) ? [v, undefined] : ((m) => (m ? [m[1]!, m[2]] : [v, undefined]))(/^([^:]+):(\d{1,5})$/.exec(v));
  if (!isIP(address)) return { error: 'is not an IP address, with an optional port (e.g. "192.0.2.53", "192.0.2.53:5353", "[2001:db8::53]:5353")' };
  const p = port === undefined ? 53 : Number(port);
  if (!(p >= 1 && p <= 65535)) return { error: 'has a port outside 1-65535' };
  return { address, port: p };
}

/** A scanner's endpoint: `host:port`, or a unix socket as an absolute path (`/run/clamav/clamd.ctl`) or `unix:<path>`. */
export function parseEndpoint(entry: string): { host: string; port: number } | { path: string } | { error: string } {
  const v = entry.trim();
  if (v.startsWith('unix:')) return v.length > 5 && v[5] === '/' ? { path: v.slice(5) } : { error: 'names a unix socket without an absolute path (e.g. "unix:/run/clamav/clamd.ctl")' };
  if (v.startsWith('/')) return { path: v };
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(v);
  if (!m) return { error: 'is neither host:port nor a unix socket path (e.g. "127.0.0.1:3310", "/run/clamav/clamd.ctl")' };
  const port = Number(m[3]);
  if (!(port >= 1 && port <= 65535)) return { error: 'has a port outside 1-65535' };
  return { host: m[1] ?? m[2]!, port };
}

const endpoint = (example: string) =>
  z
    .string()
    .superRefine((v, ctx) => {
      const r = parseEndpoint(v);
      if ('error' in r) ctx.addIssue({ code: 'custom', message: `"${v}" ${r.error}`, params: { fix: `write it as host:port or an absolute socket path, e.g. "${example}"` } });
    })
    .describe(`host:port, or a unix socket as an absolute path or unix:<path> (e.g. "${example}").`);

export const GatewayDnsSchema = z
  .object({
    servers: z
      .array(
        z.string().superRefine((v, ctx) => {
          const r = parseDnsServer(v);
          if ('error' in r) ctx.addIssue({ code: 'custom', message: `"${v}" ${r.error}`, params: { fix: 'give the IP address of a DNS resolver, with :port when it is not 53' } });
        }),
      )
      .default([])
      .describe('DNS resolvers asked for SPF, DKIM and DMARC records ("192.0.2.53", "192.0.2.53:5353", "[2001:db8::53]:53"), in order. Empty: the machine\'s (/etc/resolv.conf).'),
    timeoutMs: ms(2_000, 'How long one try of a DNS query waits for its answer'),
    tries: z.number().int().min(1).max(5).default(2).describe('Tries per DNS query (per server) before it counts as a DNS failure: temperror, the SES verdict PROCESSING_FAILED.'),
    cacheSize: z.number().int().nonnegative().default(10_000).describe('DNS answers kept in memory (least recently used dropped first), "no such name" included; 0 = no cache.'),
    cacheTtlMs: ms(300_000, 'How long a cached DNS answer is used'),
  })
  .strict();

export const GatewayAuthenticationSchema = z
  .object({
    enabled: z
      .boolean()
      .default(false)
      .describe(
        'Check SPF (the client\'s IP against MAIL FROM, or HELO for bounces), DKIM and DMARC for each message after it is accepted, as SES does, and write the results in Received-SPF, Authentication-Results and the notification\'s verdicts. Needs DNS (gateway.dns). Off: those verdicts are GRAY. Leave it off when the gateway\'s clients are your own relays: SPF would check the relay\'s address.',
      ),
  })
  .strict();

const spamScanner = (example: string) =>
  z
    .object({
      endpoint: endpoint(example),
      timeoutMs: ms(30_000, 'How long a scan may take, connection included, before the verdict is PROCESSING_FAILED'),
      maxBytes: z
        .number()
        .int()
        .positive()
        .default(1024 * 1024)
        .describe('Messages larger than this are not sent to the spam scanner (as spamc skips them) and get the spam verdict GRAY.'),
    })
    .strict();

export const GatewayScanSchema = z
  .object({
    spamd: spamScanner('127.0.0.1:783').optional().describe("SpamAssassin's spamd (spamc protocol): spam verdicts for rules with scanEnabled."),
    rspamd: spamScanner('127.0.0.1:11333').optional().describe("rspamd's normal worker (HTTP /checkv2): spam verdicts for rules with scanEnabled."),
    clamd: z
      .object({
        endpoint: endpoint('/run/clamav/clamd.ctl'),
        timeoutMs: ms(30_000, 'How long a scan may take, connection included, before the verdict is PROCESSING_FAILED'),
      })
      .strict()
      .optional()
      .describe("ClamAV's clamd (INSTREAM): virus verdicts for rules with scanEnabled. Its StreamMaxLength must be at least maxMessageSize, or bigger mail gets PROCESSING_FAILED."),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.spamd && s.rspamd) ctx.addIssue({ code: 'custom', path: ['rspamd'], message: 'spamd and rspamd are both configured; a message gets one spam verdict', params: { fix: 'keep one of gateway.scan.spamd and gateway.scan.rspamd' } });
  });

export const GatewayHttpSchema = z
  .object({
    host: z.string().default('127.0.0.1').describe('Address of the metrics/health listener; keep it off the public interface.'),
    port: z.number().int().min(0).max(65535).default(9464).describe('Port of /metrics (Prometheus), /healthz and /readyz (0 picks a free port).'),
    readyCacheMs: ms(5_000, 'How long a /readyz answer is reused (its S3 check sends one HeadBucket per bucket)'),
    checkTimeoutMs: ms(2_000, 'Per-check ceiling of /readyz (Redis PING, spool probe file, S3 HeadBucket)'),
  })
  .strict();

export const GatewaySpoolEncryptionSchema = z
  .object({
    kmsKeyArn: z
      .string()
      .optional()
      .describe('Seal spool files under this KMS key (its full key ARN; the gateway needs kms:GenerateDataKey and kms:Decrypt on it). One data key serves many files (see dataKeyMaxAgeMs), so KMS is not called per message.'),
    keyFile: z
      .string()
      .optional()
      .describe('Or seal them under a raw AES-256 key read from this file (32 random bytes, or their base64 or hex: `(umask 077 && openssl rand -base64 32 > spool.key)`), for sites without KMS. Must not be readable by group or others (chmod 600).'),
    enabled: z
      .boolean()
      .default(true)
      .describe('false: new mail is spooled in plaintext again, and the key only opens mail already sealed in the spool. Remove the section once that mail is delivered.'),
    thread: z
      .enum(['auto', 'yes', 'no'])
      .default('auto')
      .describe('Seal batch files on a thread of their own (a second JavaScript heap), so sealing costs the SMTP thread almost nothing. auto = yes when the machine has more than one CPU.'),
    dataKeyMaxAgeMs: ms(300_000, 'How long one data key seals new spool files before a new one is made (with KMS: one GenerateDataKey each time)'),
    dataKeyMaxFiles: z.number().int().positive().max(2 ** 32).default(100_000).describe('Spool files (a batch of small messages, or one big message each) one data key seals at most.'),
    dataKeyMaxBytes: z
      .number()
      .int()
      .positive()
      .default(8 * 2 ** 30)
      .describe('Bytes one data key seals at most (a streamed message counts with the size limit it may reach).'),
  })
  .strict()
  .superRefine((e, ctx) => {
    if ((e.kmsKeyArn === undefined) === (e.keyFile === undefined)) {
      ctx.addIssue({ code: 'custom', path: [], message: e.kmsKeyArn === undefined ? 'names no key' : 'names two keys', params: { fix: 'give exactly one of "kmsKeyArn" (a KMS key ARN) and "keyFile" (a file holding a 256-bit key)' } });
    }
    // A key ARN, not an alias (not even alias/aws/ses): each sealed file names the key that opens it, as KMS returns it.
    const key = e.kmsKeyArn === undefined ? undefined : parseKmsKeyArn(e.kmsKeyArn);
    if (key && !('kind' in key && key.kind === 'key')) {
      ctx.addIssue({
        code: 'custom',
        path: ['kmsKeyArn'],
        message: `"${e.kmsKeyArn}" is ${'error' in key ? key.error : 'an alias ARN'}`,
        params: { fix: 'write the key\'s full ARN, arn:aws:kms:<region>:<account>:key/<key-id> (an alias will not do: each sealed file names the key that opens it)' },
      });
    }
  });

export const GatewaySpoolSchema = z
  .object({
    encryption: GatewaySpoolEncryptionSchema.optional().describe(
      'Seal spooled mail (bodies and envelopes) with the AWS Encryption SDK, under a KMS key or a key file (docs/spool-encryption.md). Off when absent; mail already sealed then needs the key again to be delivered.',
    ),
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
    spoolMinFreeBytes: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe('Free space the spool\'s file system must keep: MAIL FROM gets 452 4.3.1 (the sender retries later) while less than this plus the message\'s declared SIZE is free. Default: 1.5 × maxMessageSize (Postfix\'s rule). 0 = no check.'),
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
    dns: GatewayDnsSchema.prefault({}).describe('The resolver the verdicts use (SPF, DKIM, DMARC): servers, per-query timeout and tries, answer cache.'),
    authentication: GatewayAuthenticationSchema.prefault({}).describe('SPF, DKIM and DMARC verdicts for gateway mail (docs/ses-format.md#verdicts).'),
    scan: GatewayScanSchema.prefault({}).describe('Spam and virus scanners for rules with scanEnabled. None configured: their verdicts are GRAY.'),
    spool: GatewaySpoolSchema.prefault({}).describe('What the spool does with mail at rest (gateway.spoolDir holds it).'),
  })
  .strict();
export type GatewaySpoolEncryption = z.infer<typeof GatewaySpoolEncryptionSchema>;
export type GatewaySettings = z.infer<typeof GatewaySettingsSchema>;
