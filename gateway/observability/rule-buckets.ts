import { HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { s3Client } from '../aws/clients.js';
import { explainAwsError } from '../aws/explain-error.js';
import type { ReceivingConfig } from '../../shared/config/index.js';
import type { Logger } from '../runtime/log.js';

export interface RuleBucket {
  bucket: string;
  region: string;
  /** The enabled rules that deliver there. */
  rules: string[];
}

/** The buckets the enabled rules deliver to, one entry per bucket and region. */
export function ruleBuckets(config: ReceivingConfig): RuleBucket[] {
  const out = new Map<string, RuleBucket>();
  for (const r of config.rules.filter((r) => r.enabled)) {
    const region = r.s3Action.bucketRegion ?? config.region;
    const key = `${region}/${r.s3Action.bucketName}`;
    const entry = out.get(key) ?? { bucket: r.s3Action.bucketName, region, rules: [] };
    entry.rules.push(r.name);
    out.set(key, entry);
  }
  return [...out.values()];
}

/**
 * HeadBucket, bounded. A 403 counts as there: the gateway writer policy grants PutObject, not ListBucket, so S3
 * answering at all is what this can tell. Otherwise throws one line that says what is wrong.
 */
export async function headBucket(s3: S3Client, bucket: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: signal ? AbortSignal.any([timeout, signal]) : timeout });
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 403) return;
    if (status === 404) throw new Error(`HeadBucket answered 404: bucket "${bucket}" does not exist`);
    if (status === 301) throw new Error(`HeadBucket answered 301: bucket "${bucket}" is in another region (set the rule's s3Action.bucketRegion)`);
    const explained = explainAwsError(err);
    if (explained) throw new Error(explained);
    throw new Error(status ? `HeadBucket answered ${status} (${(err as Error).name})` : `HeadBucket failed: ${(err as Error).name}: ${(err as Error).message}`);
  }
}

/**
 * Once at start, when this process delivers: whether it can reach every rule bucket with its credentials. Mail is
 * still taken either way (the spool holds it and deliveries retry), but missing credentials or a missing bucket
 * would otherwise show only as a failed delivery per message for hours; this says it once, at start, with the fix.
 */
export async function checkRuleBuckets(config: ReceivingConfig, timeoutMs: number, log: Logger, signal: AbortSignal): Promise<void> {
  const clients = new Map<string, S3Client>();
  const client = (region: string) => clients.get(region) ?? clients.set(region, s3Client({ region, requestTimeoutMs: timeoutMs, maxAttempts: 1 })).get(region)!;
  try {
    const results = await Promise.all(
      ruleBuckets(config).map(async (b) => {
        try {
          await headBucket(client(b.region), b.bucket, timeoutMs, signal);
          return undefined;
        } catch (err) {
          return { ...b, problem: (err as Error).message };
        }
      }),
    );
    if (signal.aborted) return; // stopped meanwhile: nothing to warn about
    const failed = results.filter((r) => r !== undefined);
    for (const f of failed) {
      log.warn({ bucket: f.bucket, region: f.region, rules: f.rules, problem: f.problem }, `cannot reach rule bucket ${f.bucket}: ${f.problem}; mail is still accepted and spooled, and its deliveries retry until this is fixed`);
    }
    if (failed.length === 0) log.info({ buckets: results.length }, 'every rule bucket answered');
  } finally {
    for (const c of clients.values()) c.destroy();
  }
}
