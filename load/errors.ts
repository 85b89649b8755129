/**
 * Error classes of a load run: what an operator acts on differently. SMTP refusals by reply code and enhanced code
 * (451 4.3.0 is a gateway that cannot queue, 421 4.7.0 one that has too many connections), connections that fail,
 * the AWS throttles that set an upload path's ceiling (S3 503 SlowDown, KMS and SNS throttling), other AWS errors by
 * service and name, and timeouts.
 */

export type ErrorClass = 'smtp-4xx' | 'smtp-5xx' | 'connection' | 'timeout' | 's3-slowdown' | 'kms-throttling' | 'sns-throttling' | 's3' | 'kms' | 'sns' | 'other';

export const ERROR_CLASSES: readonly ErrorClass[] = ['smtp-4xx', 'smtp-5xx', 'connection', 'timeout', 's3-slowdown', 'kms-throttling', 'sns-throttling', 's3', 'kms', 'sns', 'other'];

export interface ClassifiedError {
  class: ErrorClass;
  /** The reply code and enhanced code (`451 4.3.0`), or the error's name or errno (`SlowDown`, `ECONNREFUSED`). */
  code: string;
  /** Where it happened: the SMTP command (`RCPT TO`, `DATA`, `CONN`), or the AWS step (`store`, `publish`). */
  stage: string;
  /** One line, bounded: the server's reply or the error's message. */
  message: string;
}

const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim().slice(0, 300);

/** An error our own timer raised: the message took longer than --timeout, or was still unanswered at the run's end. */
export class LoadTimeoutError extends Error {
  override name = 'LoadTimeoutError';
  constructor(readonly stage: string, ms: number) {
    super(stage === 'run end' ? `still unanswered when the run ended (--timeout ${ms} ms after the last message was due)` : `no answer within ${ms} ms (--timeout)`);
  }
}

/** Why a lane's message stopped: its own timeout, the run's end (both timeouts), or the user's interrupt (neither). */
export function interrupted(signal: AbortSignal): boolean {
  return signal.aborted && !(signal.reason instanceof LoadTimeoutError);
}

interface NodemailerErrorLike {
  code?: string;
  originalCode?: string;
  responseCode?: number;
  response?: string;
  command?: string;
  message: string;
}

/** An SMTP reply's code and enhanced status code: `451 4.3.0 Try again later` → `451 4.3.0`. */
export function replyCode(reply: string): string {
  const m = /^(\d{3})[ -](?:([245]\.\d{1,3}\.\d{1,3})\b)?/.exec(reply.trim());
  if (!m) return reply.trim().slice(0, 3) || '???';
  return m[2] ? `${m[1]} ${m[2]}` : m[1]!;
}

/** Errors from nodemailer's SMTPConnection, and our own timeout. */
export function classifySmtpError(err: unknown, stage?: string): ClassifiedError {
  if (err instanceof LoadTimeoutError) return { class: 'timeout', code: err.stage, stage: err.stage, message: err.message };
  const e = (err ?? {}) as NodemailerErrorLike;
  const at = stage ?? e.command ?? 'CONN';
  if (typeof e.responseCode === 'number' && e.responseCode >= 400 && e.response) {
    return { class: e.responseCode >= 500 ? 'smtp-5xx' : 'smtp-4xx', code: replyCode(e.response), stage: at, message: oneLine(e.response) };
  }
  const code = e.originalCode ?? e.code ?? 'Error';
  if (e.code === 'ETIMEDOUT' || code === 'ETIMEDOUT') return { class: 'timeout', code: at, stage: at, message: oneLine(e.message ?? '') };
  if (['ECONNECTION', 'ESOCKET', 'EDNS', 'ETLS', 'EPROTOCOL'].includes(e.code ?? '') || /^E[A-Z]+$/.test(code)) {
    return { class: 'connection', code, stage: at, message: oneLine(e.message ?? String(err)) };
  }
  return { class: 'other', code, stage: at, message: oneLine(e.message ?? String(err)) };
}

interface AwsErrorLike {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const THROTTLE_RE = /Throttl|RequestLimitExceeded|TooManyRequests|SlowDown/;
const CONNECTION_RE = /^(ECONNREFUSED|ECONNRESET|EPIPE|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ECONNABORTED)$/;

/**
 * Errors of the upload path. `service` is the one the failing call went to (KMS's GenerateDataKey and S3's PUT both
 * happen inside the store step; the error's class tells them apart).
 */
export function classifyAwsError(err: unknown, service: 's3' | 'kms' | 'sns', stage: string): ClassifiedError {
  if (err instanceof LoadTimeoutError) return { class: 'timeout', code: stage, stage, message: err.message };
  const e = (err ?? {}) as AwsErrorLike;
  const name = e.name || e.code || 'Error';
  const status = e.$metadata?.httpStatusCode;
  const message = oneLine(`${name}${status && status !== 599 ? ` (HTTP ${status})` : ''}: ${e.message ?? ''}`);
  // The errno, wherever it is: the name, the code, or (a hand-signed request that got no answer, status 599) the message.
  const errno = [name, (err as NodeJS.ErrnoException).code ?? '', ...(/\b(E[A-Z_]{3,})\b/.exec(e.message ?? '')?.slice(1) ?? [])].find((x) => CONNECTION_RE.test(x) || x === 'ETIMEDOUT');
  if (name === 'TimeoutError' || name === 'RequestTimeout' || name === 'AbortError' || errno === 'ETIMEDOUT') return { class: 'timeout', code: `${service} ${name}`, stage, message };
  if (errno) return { class: 'connection', code: `${service} ${errno}`, stage, message };
  if (service === 's3' && (name === 'SlowDown' || status === 503)) return { class: 's3-slowdown', code: `${name}${status ? ` ${status}` : ''}`, stage, message };
  if (service === 'kms' && (THROTTLE_RE.test(name) || status === 429)) return { class: 'kms-throttling', code: name, stage, message };
  if (service === 'sns' && (THROTTLE_RE.test(name) || status === 429)) return { class: 'sns-throttling', code: name, stage, message };
  return { class: service, code: `${name}${status && status !== 599 ? ` ${status}` : ''}`, stage, message };
}
