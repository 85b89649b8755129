import { GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { cachedTarget, requestTo, resolveEndpoint, sendSigned, ServiceError, signerFor, type SigningConfig } from './signed-request.js';

/**
 * KMS GenerateDataKey as one signed HTTP request, sent through the KMS client's own configuration: its credentials
 * provider, the endpoint its rules resolve (custom, FIPS/dual-stack as configured) and HTTP handler (keep-alive,
 * timeouts). Why not `kms.send(new GenerateDataKeyCommand(…))`: every stored message with a key needs its own data
 * key (SES's format binds it to the message id), and the SDK's middleware stack cost several times the CPU of the same signed request — the largest single
 * cost of delivering an encrypted message (docs/performance.md#signed-requests).
 * What the stack gave that matters is kept: SigV4 (the SDK's own signer), retries of throttling and server errors
 * with backoff, errors named by their KMS exception (`NotFoundException`, …) with the HTTP status.
 */

export interface DataKey {
  plaintext: Uint8Array;
  ciphertextBlob: Uint8Array;
  keyId: string;
}

export class KmsError extends ServiceError {}


/** The KMS endpoint the client's rules resolve, and a signer for it. */
async function target(kms: KMSClient) {
  const c = kms.config as unknown as SigningConfig;
  const e = await resolveEndpoint(c, GenerateDataKeyCommand, {}, 'kms');
  return { url: e.url, signer: signerFor(c, e) };
}

const retryable = (status: number, name: string) => status === 429 || status >= 500 || /Throttl|LimitExceeded|KMSInternal|DependencyTimeout/.test(name);

/** KMS exception name from `__type` ("…#NotFoundException") or the x-amzn-errortype header ("NotFoundException:…"). */
function errorName(parsed: Record<string, unknown>, headers: Record<string, string>): string {
  const t = typeof parsed.__type === 'string' ? parsed.__type : headers['x-amzn-errortype'] ?? '';
  const name = t.split('#').pop()!.split(':')[0]!;
  return name || 'KMSError';
}

const parseJson = (text: string): Record<string, unknown> => {
  try {
    return (text ? JSON.parse(text) : {}) as Record<string, unknown>;
  } catch {
    return {};
  }
};

export async function generateDataKey(kms: KMSClient, input: { keyId: string; encryptionContext: Record<string, string> }, options: { abortSignal?: AbortSignal } = {}): Promise<DataKey> {
  const { signer, url } = await cachedTarget(kms, '', 'GenerateDataKey', () => target(kms));
  const body = JSON.stringify({ KeyId: input.keyId, KeySpec: 'AES_256', EncryptionContext: input.encryptionContext });
  return sendSigned({
    client: kms,
    operation: 'GenerateDataKey',
    signer,
    handler: (kms.config as unknown as SigningConfig).requestHandler,
    request: () => requestTo(url, 'POST', { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'TrentService.GenerateDataKey', 'content-length': String(Buffer.byteLength(body)) }, body),
    ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
    ok: (text) => {
      const parsed = parseJson(text);
      if (typeof parsed.Plaintext !== 'string' || typeof parsed.CiphertextBlob !== 'string') throw new KmsError('KMSError', 'KMS GenerateDataKey answered without a data key', { httpStatusCode: 200 });
      return { plaintext: Buffer.from(parsed.Plaintext, 'base64'), ciphertextBlob: Buffer.from(parsed.CiphertextBlob, 'base64'), keyId: typeof parsed.KeyId === 'string' ? parsed.KeyId : input.keyId };
    },
    failure: (text, status, headers) => {
      const parsed = parseJson(text);
      return { name: errorName(parsed, headers), message: String(parsed.message ?? parsed.Message ?? `HTTP ${status}`) };
    },
    retryable,
    errorClass: KmsError,
  });
}
