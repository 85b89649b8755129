import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { encodeKeyPath, putTarget, retryable, S3Error } from './s3-put-object.js';
import { cachedTarget, requestTo, sendSigned } from './signed-request.js';

/** SHA-256 of an empty payload: what SigV4 signs for a request without a body. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/**
 * Whether `bucket`/`key` exists: S3 HeadObject as one signed request through the S3 client's own configuration, the
 * way s3-put-object.ts sends a PUT (the same endpoint, signer and HTTP handler; the SDK's own command where that path
 * does not apply). Why: replay asks once per object before it stores, and the SDK's middleware stack, with the
 * exception it builds for every 404, cost more CPU than the request.
 *
 * Resolves false on 404; any other error (403 included: without s3:ListBucket S3 says 403 for a missing key) is
 * thrown with S3's status in `$metadata.httpStatusCode`. Throttling and server errors are retried.
 */
export async function objectExists(s3: S3Client, bucket: string, key: string, abortSignal?: AbortSignal): Promise<boolean> {
  const target = await cachedTarget(s3, bucket, 'PutObject', () => putTarget(s3, bucket));
  try {
    if (!target) {
      await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), abortSignal ? { abortSignal } : {});
      return true;
    }
    const base = target.url.pathname.replace(/\/$/, '');
    const c = s3.config as unknown as { requestHandler: Parameters<typeof sendSigned>[0]['handler'] };
    return await sendSigned({
      client: s3,
      operation: 'HeadObject',
      signer: target.signer,
      handler: c.requestHandler,
      request: () => requestTo(target.url, 'HEAD', { 'x-amz-content-sha256': EMPTY_SHA256 }, '', `${base}/${encodeKeyPath(key)}`),
      ...(abortSignal ? { abortSignal } : {}),
      ok: () => true,
      // A HEAD answer has no body: the status is all there is.
      failure: (_text, status) => ({ name: status === 404 ? 'NotFound' : status === 403 ? 'Forbidden' : `Http${status}`, message: `S3 answered HTTP ${status} to HeadObject` }),
      retryable,
      errorClass: S3Error,
    });
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw err;
  }
}
