import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';

/**
 * What the hand-signed AWS requests (kms-data-key.ts, s3-put-object.ts) share: the signer's hash on node:crypto, the
 * response body read whole (they are small: a JSON key, an XML error), and the retry pause.
 */

type SourceData = string | ArrayBuffer | ArrayBufferView;
const bytes = (d: SourceData): string | Uint8Array => (typeof d === 'string' ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength));

/** The hash @smithy/signature-v4 asks for (SHA-256, or HMAC-SHA-256 with a secret), on node:crypto. */
export class NodeSha256 {
  private readonly h: Hash | Hmac;
  constructor(secret?: SourceData) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: SourceData): void {
    this.h.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
}

export async function readBody(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

export const MAX_ATTEMPTS = 3;

/** Full-jitter-ish exponential pause before attempt `attempt + 1`: about 100 ms, 200 ms, … */
export function retryPause(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.round(100 * 2 ** (attempt - 1) * (0.5 + Math.random()))));
}

/** The request shape the SDK's signer and HTTP handler take. */
export interface HttpRequestLike {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: string | Buffer;
}

export interface RequestHandlerLike {
  handle(request: unknown, options: { abortSignal?: AbortSignal }): Promise<{ response: { statusCode: number; headers: Record<string, string>; body: AsyncIterable<Uint8Array> } }>;
}

/** An error a service answered (or the connection to it failed with), named by the service's own code. */
export class ServiceError extends Error {
  constructor(
    name: string,
    message: string,
    readonly $metadata: { httpStatusCode: number },
  ) {
    super(message);
    this.name = name;
  }
}

export type ErrorObserver = (operation: string, errorName: string) => void;

/** Who hears of a client's failed hand-signed requests (after retries): the gateway counts them in its metrics. */
export class ErrorObservers {
  private readonly byClient = new WeakMap<object, ErrorObserver>();

  set(client: object, observer: ErrorObserver): void {
    this.byClient.set(client, observer);
  }

  /** Tells the client's observer, and hands the error back for throwing. */
  report(client: object, operation: string, err: Error): Error {
    this.byClient.get(client)?.(operation, err.name || 'Error');
    return err;
  }
}
