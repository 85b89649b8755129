import { createHash } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { cachedTarget, encodeRfc3986, requestTo, resolveEndpoint, sendSigned, ServiceError, signerFor, xmlText, type SigningConfig, type Target } from './signed-request.js';

/**
 * S3 PutObject of a body held in memory as one signed HTTP request, sent through the S3 client's own configuration:
 * the endpoint the SDK itself would resolve for this bucket and key (its endpoint rules: virtual-hosted or path
 * style, FIPS, dual-stack, a custom endpoint), its credentials provider and HTTP handler (keep-alive, timeouts).
 * Why: a stored message is one PUT, and the SDK's middleware stack cost more CPU than the rest of a delivery
 * (docs/performance.md#signed-requests).
 *
 * Kept from the SDK path: SigV4 with the signed payload hash (the SDK's own signer), error names from S3's XML
 * (`NoSuchBucket`, `AccessDenied`, …) with the HTTP status, a metrics hook. Better than it: the body is in memory,
 * so throttling, server errors and dropped connections are retried here (3 attempts, backoff), where the SDK path
 * cannot resend a one-shot stream. Whatever this path does not cover goes through `PutObjectCommand` unchanged:
 * an endpoint whose auth scheme is not plain SigV4 (S3 Express, multi-Region access points) and clients that add
 * request checksums (`requestChecksumCalculation: WHEN_SUPPORTED`).
 */

export interface PutObjectInput {
  bucket: string;
  key: string;
  body: Buffer;
  contentType: string;
  /** User metadata, sent as `x-amz-meta-<name>` (names lowercase, as S3 stores them). */
  metadata?: Record<string, string>;
  abortSignal?: AbortSignal;
}

export class S3Error extends ServiceError {}


interface ResolvedConfig extends SigningConfig {
  requestChecksumCalculation?: () => Promise<string>;
}

/**
 * The bucket's URL as the SDK resolves it (a key's path is appended to its pathname) and a signer for it; undefined:
 * leave the bucket to the SDK.
 */
export async function putTarget(s3: S3Client, bucket: string): Promise<Target | undefined> {
  const c = s3.config as unknown as ResolvedConfig;
  if ((await c.requestChecksumCalculation?.()) === 'WHEN_SUPPORTED') return undefined;
  // The key does not move the endpoint of a plain bucket; a neutral one keeps the cache per bucket.
  const e = await resolveEndpoint(c, PutObjectCommand, { Bucket: bucket, Key: 'k' }, 's3');
  if (e.scheme !== 'sigv4') return undefined;
  return {
    url: e.url,
    // S3 signs the path as sent (never a second encoding) and wants the payload hash in x-amz-content-sha256.
    signer: signerFor(c, e, { uriEscapePath: false }),
  };
}

/** RFC 3986 encoding of each key segment, '/' kept: how the SDK puts a greedy `{Key+}` label in the path. */
export function encodeKeyPath(key: string): string {
  return key.split('/').map(encodeRfc3986).join('/');
}

/** Throttling, server errors and dropped connections: worth the same request again. */
export const retryable = (status: number, name: string) => status >= 500 || status === 429 || /^(SlowDown|RequestTimeout|InternalError|ServiceUnavailable|Throttling)$/.test(name);

/** Stores `body` at `bucket`/`key`; resolves with the ETag S3 returned. */
export async function putObject(s3: S3Client, input: PutObjectInput): Promise<{ etag?: string }> {
  const target = await cachedTarget(s3, input.bucket, 'PutObject', () => putTarget(s3, input.bucket));
  if (!target) return viaSdk(s3, input);
  const c = s3.config as unknown as ResolvedConfig;
  const base = target.url.pathname.replace(/\/$/, '');
  const headers: Record<string, string> = {
    'content-type': input.contentType,
    'content-length': String(input.body.length),
    'x-amz-content-sha256': createHash('sha256').update(input.body).digest('hex'),
  };
  for (const [name, value] of Object.entries(input.metadata ?? {})) headers[`x-amz-meta-${name.toLowerCase()}`] = value;
  return sendSigned({
    client: s3,
    operation: 'PutObject',
    signer: target.signer,
    handler: c.requestHandler,
    request: () => requestTo(target.url, 'PUT', headers, input.body, `${base}/${encodeKeyPath(input.key)}`),
    ...(input.abortSignal ? { abortSignal: input.abortSignal } : {}),
    ok: (_text, h) => {
      const etag = h.etag ?? h.ETag;
      return etag ? { etag } : {};
    },
    failure: (text, status) => ({ name: xmlText(text, 'Code') ?? `Http${status}`, message: xmlText(text, 'Message') ?? `S3 answered HTTP ${status} to PutObject` }),
    retryable,
    errorClass: S3Error,
  });
}

async function viaSdk(s3: S3Client, input: PutObjectInput): Promise<{ etag?: string }> {
  const out = await s3.send(
    new PutObjectCommand({ Bucket: input.bucket, Key: input.key, Body: input.body, ContentLength: input.body.length, ContentType: input.contentType, ...(input.metadata ? { Metadata: input.metadata } : {}) }),
    input.abortSignal ? { abortSignal: input.abortSignal } : {},
  );
  return out.ETag ? { etag: out.ETag } : {};
}
