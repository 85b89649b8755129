import { Counter, Gauge, Histogram, Registry } from './registry.js';

/**
 * The gateway's metrics. The SMTP front and the workers get this object (or nothing, in tests and embeddings) and
 * call its hooks; scrape-time samples (queue depth, spool size, connections) are collectors added by the composer.
 * Label values are bounded: reply codes, RFC 3463 names, AWS operation and error names — never addresses or ids.
 */

/** How an AUTH ended: `locked_out` and `busy` were refused without a password check (454). */
export type AuthResult = 'success' | 'failure' | 'locked_out' | 'busy' | 'error';

/** What the SMTP front reports. Optional everywhere so the front runs without metrics. */
export interface SmtpMetrics {
  accepted(bytes: number): void;
  auth(result: AuthResult): void;
  /** A refusal the gateway wrote; `reason` defaults to the RFC 3463 name of the reply's enhanced status code. */
  rejected(reply: { responseCode?: number; message: string }, reason?: string): void;
}

export type AwsService = 's3' | 'kms' | 'sns';

/** What the delivery workers report. */
export interface DeliveryMetrics {
  deliveryStarted(): void;
  deliveryFinished(result: 'delivered' | 'retry' | 'failed'): void;
  uploaded(bytes: number, seconds: number): void;
  awsError(service: AwsService, operation: string, error: string): void;
  /** A stored message whose notification SNS refused for good (it is not announced). */
  notificationRefused(error: string): void;
}

/** RFC 3463 subject.detail names for the enhanced codes gateways write; others are labelled by the code itself. */
const RFC3463: Record<string, string> = {
  '1.1': 'bad_mailbox',
  '1.7': 'bad_sender_address',
  '1.8': 'bad_sender_domain',
  '2.2': 'mailbox_full',
  '3.0': 'mail_system',
  '3.1': 'system_full',
  '3.2': 'not_accepting',
  '3.4': 'too_big',
  '4.5': 'congestion',
  '5.2': 'syntax_error',
  '5.3': 'too_many_recipients',
  '6.0': 'media_error',
  '7.0': 'security_policy',
  '7.1': 'not_authorized',
  '7.8': 'auth_failed',
  '7.11': 'encryption_required',
};

export function rejectionReason(message: string): string {
  const m = /^\s*[245]\.(\d{1,3}\.\d{1,3})\b/.exec(message);
  if (!m) return 'other';
  return RFC3463[m[1]!] ?? `x.${m[1]}`;
}

/** Upload latency buckets: small PUTs take milliseconds, 40 MB multipart with KMS can take many seconds. */
const UPLOAD_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class GatewayMetrics implements SmtpMetrics, DeliveryMetrics {
  readonly registry = new Registry();

  readonly acceptedTotal = this.registry.add(new Counter('mailroom_smtp_accepted_total', 'Messages answered 250 (on disk, fsync\'d, jobs in Redis).', []));
  readonly acceptedBytes = this.registry.add(new Counter('mailroom_smtp_accepted_bytes_total', 'DATA bytes of accepted messages.', []));
  readonly rejectedTotal = this.registry.add(
    new Counter('mailroom_smtp_rejected_total', 'Refusals the gateway wrote, by reply code class, code and reason (RFC 3463 name).', ['class', 'code', 'reason'] as const),
  );
  readonly authTotal = this.registry.add(
    new Counter('mailroom_smtp_auth_total', 'SMTP AUTH attempts by result: success, failure (wrong credentials), locked_out (too many failures from the address: refused unchecked), busy (too many checks waiting), error.', ['result'] as const),
  );
  readonly connections = this.registry.add(new Gauge('mailroom_smtp_connections', 'Open SMTP connections on every listener, each holding a slot of gateway.smtp.maxConnections (sampled at scrape).', []));
  readonly deliveriesInFlight = this.registry.add(new Gauge('mailroom_deliveries_in_flight', 'Deliveries (S3 action of one rule for one message) running now.', []));
  readonly deliveriesTotal = this.registry.add(new Counter('mailroom_deliveries_total', 'Finished delivery attempts by result (retry = failed, will be tried again).', ['result'] as const));
  readonly uploadBytes = this.registry.add(new Counter('mailroom_upload_bytes_total', 'Bytes stored in S3 (header block + DATA, ciphertext when encrypted).', []));
  readonly uploadSeconds = this.registry.add(new Histogram('mailroom_upload_duration_seconds', 'Time to store one message in S3 (KMS data key, encryption and upload).', UPLOAD_BUCKETS));
  readonly s3Errors = this.registry.add(new Counter('mailroom_s3_errors_total', 'Failed S3 requests by operation and error name.', ['operation', 'error'] as const));
  readonly kmsErrors = this.registry.add(new Counter('mailroom_kms_errors_total', 'Failed KMS requests by operation and error name.', ['operation', 'error'] as const));
  readonly snsErrors = this.registry.add(new Counter('mailroom_sns_errors_total', 'Failed SNS requests by operation and error name.', ['operation', 'error'] as const));
  readonly notificationsRefused = this.registry.add(
    new Counter('mailroom_notifications_refused_total', 'Stored messages whose notification SNS refused for good (never announced; the delivery job is in the failed set), by error name.', ['error'] as const),
  );
  readonly queueJobs = this.registry.add(new Gauge('mailroom_queue_jobs', 'This node\'s jobs by queue and state (sampled from Redis at scrape).', ['queue', 'state'] as const));
  readonly spoolFiles = this.registry.add(new Gauge('mailroom_spool_files', 'Spool files (one message, or a batch of small ones that arrived together) awaiting delivery (sampled at scrape).', []));
  readonly spoolBytes = this.registry.add(new Gauge('mailroom_spool_bytes', 'Bytes of spooled messages on disk (sampled at scrape).', []));
  // Queue depth says how much waits; this says for how long — a delivery stuck on one file (a bucket policy that
  // refuses, a key that was disabled) shows here while the depth stays small.
  readonly spoolOldestSeconds = this.registry.add(new Gauge('mailroom_spool_oldest_seconds', 'Age of the oldest spool file awaiting delivery (since its last write), 0 when none (sampled at scrape).', []));
  readonly spoolBatchFiles = this.registry.add(
    new Counter('mailroom_spool_batch_files_total', 'Batch files written by spool rounds: into a spare (one disk flush) or created in the round (two; spares ran out or could not be made).', ['file'] as const),
  );
  readonly nodeInfo = this.registry.add(new Gauge('mailroom_node_info', 'Always 1; names this gateway\'s node id.', ['node_id'] as const));

  constructor(nodeId: string) {
    this.nodeInfo.set({ node_id: nodeId }, 1);
    this.acceptedTotal.init();
    for (const result of ['delivered', 'retry', 'failed']) this.deliveriesTotal.init({ result });
    for (const file of ['spare', 'created']) this.spoolBatchFiles.init({ file });
  }

  accepted(bytes: number): void {
    this.acceptedTotal.inc();
    this.acceptedBytes.inc({}, bytes);
  }

  auth(result: AuthResult): void {
    this.authTotal.inc({ result });
  }

  rejected(reply: { responseCode?: number; message: string }, reason?: string): void {
    const code = reply.responseCode ?? 0;
    this.rejectedTotal.inc({ class: `${Math.floor(code / 100)}xx`, code: String(code), reason: reason ?? rejectionReason(reply.message) });
  }

  deliveryStarted(): void {
    this.deliveriesInFlight.inc();
  }

  deliveryFinished(result: 'delivered' | 'retry' | 'failed'): void {
    this.deliveriesInFlight.dec();
    this.deliveriesTotal.inc({ result });
  }

  uploaded(bytes: number, seconds: number): void {
    this.uploadBytes.inc({}, bytes);
    this.uploadSeconds.observe(seconds);
  }

  awsError(service: AwsService, operation: string, error: string): void {
    const c = service === 's3' ? this.s3Errors : service === 'kms' ? this.kmsErrors : this.snsErrors;
    c.inc({ operation, error });
  }

  notificationRefused(error: string): void {
    this.notificationsRefused.inc({ error });
  }
}
