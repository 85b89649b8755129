import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { resolveParams } from '@smithy/core/endpoints';
import { SignatureV4 } from '@smithy/signature-v4';

/**
 * What the hand-signed AWS requests (kms-data-key.ts, s3-put-object.ts, sns-publish-batch.ts) share: the endpoint as
 * the SDK resolves it and a signer for it (kept per client), the send loop with retries, error naming and
 * reporting, and the small XML/encoding helpers.
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

/** A request to `url`'s host (and `path`, else `url`'s own path), with `host` set as SigV4 signs it. */
export function requestTo(url: URL, method: string, headers: Record<string, string>, body: string | Buffer, path = url.pathname): HttpRequestLike {
  return {
    method,
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    path,
    query: {},
    headers: { host: url.host, ...headers },
    body,
  };
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

const observers = new WeakMap<object, ErrorObserver>();

/**
 * Who hears of a client's failed hand-signed requests (after retries) — they bypass the SDK's middleware stack, where
 * failed commands are otherwise counted: the gateway counts them in its metrics.
 */
export function observeErrors(client: object, observer: ErrorObserver): void {
  observers.set(client, observer);
}

/** Tells the client's observer, and hands the error back for throwing. */
export function reportError(client: object, operation: string, err: Error): Error {
  observers.get(client)?.(operation, err.name || 'Error');
  return err;
}

/** What the hand-signed requests take from an SDK client's resolved config. */
export interface SigningConfig {
  credentials: () => Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken?: string }>;
  requestHandler: RequestHandlerLike;
}

/** Text of the first `<tag>…</tag>` in an AWS XML answer, entities decoded; undefined when absent. */
export function xmlText(xml: string, tag: string): string | undefined {
  const raw = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)?.[1];
  return raw
    ?.replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&#x([0-9a-fA-F]+);/g, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&amp;/g, '&');
}

/** RFC 3986 percent-encoding (what AWS's query protocol and S3 paths expect; encodeURIComponent leaves !'()*). */
export function encodeRfc3986(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
}

interface EndpointConfig {
  endpointProvider: (params: Record<string, unknown>) => { url: URL; properties?: { authSchemes?: Array<{ name: string; signingName?: string; signingRegion?: string }> } };
}

export interface ResolvedEndpoint {
  url: URL;
  /** The auth scheme the endpoint rules chose ('sigv4' unless S3 Express, multi-Region access points…). */
  scheme: string;
  signingName: string;
  signingRegion: string;
}

/**
 * The endpoint the SDK itself would call for `command` with `input`, from the client's resolved config: the same
 * parameter instructions and endpoint rules (custom endpoint, FIPS, dual-stack, S3 addressing style).
 */
export async function resolveEndpoint(config: unknown, command: { getEndpointParameterInstructions(): unknown }, input: Record<string, unknown>, defaultSigningName: string): Promise<ResolvedEndpoint> {
  const params = await resolveParams(input, command as never, config as never);
  const endpoint = (config as EndpointConfig).endpointProvider(params);
  const scheme = endpoint.properties?.authSchemes?.[0];
  return {
    url: new URL(endpoint.url.href),
    scheme: scheme?.name ?? 'sigv4',
    signingName: scheme?.signingName ?? defaultSigningName,
    signingRegion: scheme?.signingRegion ?? (params.Region as string),
  };
}

export interface SignedCall<T> {
  /** The SDK client whose handler carries the request, and the operation: errors are reported under both. */
  client: object;
  operation: string;
  signer: { sign(request: never): Promise<unknown> };
  handler: RequestHandlerLike;
  /** The request, built afresh for each attempt (the signer adds its headers to it). */
  request: () => HttpRequestLike;
  abortSignal?: AbortSignal;
  /** Reads a 2xx answer; a ServiceError it throws is final (not retried). */
  ok: (text: string, headers: Record<string, string>) => T;
  /** Names an error answer by the service's code. */
  failure: (text: string, status: number, headers: Record<string, string>) => { name: string; message: string };
  retryable: (status: number, name: string) => boolean;
  errorClass: new (name: string, message: string, $metadata: { httpStatusCode: number }) => ServiceError;
}

/**
 * Signs and sends a request through the client's HTTP handler, up to MAX_ATTEMPTS times: retryable answers and
 * dropped connections are tried again after a pause; the final error carries the service's name for it and the HTTP
 * status (599: no answer), and is reported to the client's observer.
 */
export async function sendSigned<T>(call: SignedCall<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    call.abortSignal?.throwIfAborted();
    let status = 0;
    let name: string;
    let message: string;
    try {
      const signed = await call.signer.sign(call.request() as never);
      const { response } = await call.handler.handle(signed, call.abortSignal ? { abortSignal: call.abortSignal } : {});
      status = response.statusCode;
      const text = (await readBody(response.body)).toString('utf8');
      if (status >= 200 && status < 300) return call.ok(text, response.headers);
      ({ name, message } = call.failure(text, status, response.headers));
    } catch (err) {
      if (err instanceof ServiceError || call.abortSignal?.aborted) throw reportError(call.client, call.operation, err as Error);
      // Connection trouble (reset, timeout): as retryable as a 5xx.
      name = (err as Error).name || 'Error';
      message = (err as Error).message;
      status = 599;
    }
    const err = new call.errorClass(name, message, { httpStatusCode: status });
    if (attempt >= MAX_ATTEMPTS || !call.retryable(status, name)) throw reportError(call.client, call.operation, err);
    await retryPause(attempt);
  }
}

/** Where requests go and how they are signed. */
export interface Target {
  url: URL;
  signer: SignatureV4;
}

/** A SigV4 signer for `endpoint` with the client's credentials provider (S3 passes `uriEscapePath: false`). */
export function signerFor(config: SigningConfig, endpoint: ResolvedEndpoint, options: { uriEscapePath?: boolean } = {}): SignatureV4 {
  return new SignatureV4({ credentials: config.credentials, region: endpoint.signingRegion, service: endpoint.signingName, sha256: NodeSha256, ...options });
}

const targets = new WeakMap<object, Map<string, Promise<unknown>>>();

/**
 * `make()`'s target for `client` (and `key`, e.g. S3's bucket), made once and kept; a failed one is not kept (made
 * again next call) and is reported under `operation`.
 */
export async function cachedTarget<T>(client: object, key: string, operation: string, make: () => Promise<T>): Promise<T> {
  let perClient = targets.get(client);
  if (!perClient) targets.set(client, (perClient = new Map()));
  let t = perClient.get(key) as Promise<T> | undefined;
  if (!t) {
    const made = make();
    perClient.set(key, (t = made));
    made.catch(() => perClient.delete(key));
  }
  try {
    return await t;
  } catch (err) {
    throw reportError(client, operation, err as Error);
  }
}
