import type { KMSClient } from '@aws-sdk/client-kms';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SNSClient } from '@aws-sdk/client-sns';
import { kmsClient, s3Client, snsClient } from '../aws/clients.js';
import { observeErrors } from '../aws/signed-request.js';
import { parseArn } from '../../shared/ses/arn.js';
import type { GatewaySettings } from '../../shared/config/gateway.js';
import type { AwsService, DeliveryMetrics } from '../observability/metrics.js';

interface MiddlewareClient {
  middlewareStack: { add(mw: unknown, opts: { step: 'initialize'; name: string }): void };
}

/**
 * Counts every failed command (after the SDK's own retries) by service, operation and error name — and each failed
 * entry of a batch command that succeeded as a whole (PublishBatch's `Failed`), by the entry's code. Requests sent
 * without the middleware stack (gateway/aws/signed-request.ts: GenerateDataKey, a small PutObject, PublishBatch) are
 * counted through the client's error observer.
 */
function countErrors<C extends object>(client: C, service: AwsService, metrics: DeliveryMetrics | undefined): C {
  if (!metrics) return client;
  observeErrors(client, (operation, error) => metrics.awsError(service, operation, error));
  (client as unknown as MiddlewareClient).middlewareStack.add(
    (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) => async (args: unknown) => {
      try {
        const out = await next(args);
        const failed = (out as { output?: { Failed?: Array<{ Code?: string }> } } | undefined)?.output?.Failed;
        if (Array.isArray(failed)) for (const f of failed) metrics.awsError(service, context.commandName?.replace(/Command$/, '') ?? 'unknown', f.Code || 'Error');
        return out;
      } catch (err) {
        metrics.awsError(service, context.commandName?.replace(/Command$/, '') ?? 'unknown', (err as Error).name || 'Error');
        throw err;
      }
    },
    { step: 'initialize', name: 'mailroomErrorMetrics' },
  );
  return client;
}

/**
 * One client per service and region, built the way every mailroom command builds them (AWS_REGION,
 * AWS_ENDPOINT_URL[_S3|_KMS|_SNS], the standard credential chain).
 *
 * S3 gets a single SDK attempt: a streamed body is one-shot, so a retry inside the SDK could not resend it. The
 * job's own retries (fresh stream, backoff) cover S3; a small message in memory goes up by s3-put-object.ts, which
 * retries itself. KMS and SNS requests are small and keep their retries.
 *
 * `iamRoleArn` is not assumed: SES assumes it as ses.amazonaws.com, and its trust policy admits only that service.
 * The gateway writes with its own credentials (the infra's gatewayWriter policy grants the same actions).
 */
export class AwsClients {
  private readonly s3s = new Map<string, S3Client>();
  private readonly kmss = new Map<string, KMSClient>();
  private readonly snss = new Map<string, SNSClient>();

  constructor(
    private readonly upload: GatewaySettings['upload'],
    private readonly metrics?: DeliveryMetrics,
  ) {}

  s3(region: string): S3Client {
    let c = this.s3s.get(region);
    if (!c) this.s3s.set(region, (c = countErrors(s3Client({ region, requestTimeoutMs: this.upload.requestTimeoutMs, maxAttempts: 1, checksums: this.upload.checksums }), 's3', this.metrics)));
    return c;
  }

  /** The key's region comes from its ARN (SES requires it to be the receiving region). */
  kms(keyArn: string, fallbackRegion: string): KMSClient {
    const region = parseArn(keyArn)?.region || fallbackRegion;
    let c = this.kmss.get(region);
    if (!c) this.kmss.set(region, (c = countErrors(kmsClient({ region, requestTimeoutMs: this.upload.requestTimeoutMs }), 'kms', this.metrics)));
    return c;
  }

  sns(topicArn: string, fallbackRegion: string): SNSClient {
    const region = parseArn(topicArn)?.region || fallbackRegion;
    let c = this.snss.get(region);
    if (!c) this.snss.set(region, (c = countErrors(snsClient({ region, requestTimeoutMs: this.upload.requestTimeoutMs }), 'sns', this.metrics)));
    return c;
  }

  destroy(): void {
    for (const m of [this.s3s, this.kmss, this.snss]) for (const c of m.values()) c.destroy();
  }
}
