import { PublishBatchCommand, type SNSClient } from '@aws-sdk/client-sns';
import { cachedTarget, encodeRfc3986, reportError, requestTo, resolveEndpoint, sendSigned, ServiceError, signerFor, xmlText, type SigningConfig } from './signed-request.js';

/**
 * SNS PublishBatch as one signed request (the Query protocol: a form-encoded POST, an XML answer), sent through the
 * SNS client's own configuration: the endpoint its rules resolve, its credentials provider and HTTP handler. Why:
 * every stored message is announced, and the SDK spent more CPU per PublishBatch call than storing the message
 * (docs/performance.md#signed-requests). Kept from the SDK: SigV4 (its signer), retries of throttling, server errors and dropped
 * connections (3 attempts), errors named by SNS's code with the HTTP status, and the per-entry outcome lists.
 */

export interface BatchEntry {
  Id: string;
  Message: string;
  Subject?: string;
}

export interface PublishBatchResult {
  Successful: Array<{ Id: string; MessageId?: string }>;
  Failed: Array<{ Id: string; Code?: string; Message?: string; SenderFault?: boolean }>;
}

export class SnsError extends ServiceError {}



/** The SNS endpoint the client's rules resolve, and a signer for it. */
async function target(sns: SNSClient) {
  const c = sns.config as unknown as SigningConfig;
  const e = await resolveEndpoint(c, PublishBatchCommand, {}, 'sns');
  return { url: e.url, signer: signerFor(c, e) };
}

/** The form body: Action, Version, TopicArn, then PublishBatchRequestEntries.member.N.{Id,Message,Subject}. */
export function publishBatchForm(topicArn: string, entries: BatchEntry[]): string {
  const fields: Array<[string, string]> = [
    ['Action', 'PublishBatch'],
    ['Version', '2010-03-31'],
    ['TopicArn', topicArn],
  ];
  entries.forEach((e, i) => {
    const m = `PublishBatchRequestEntries.member.${i + 1}`;
    fields.push([`${m}.Id`, e.Id], [`${m}.Message`, e.Message]);
    if (e.Subject !== undefined) fields.push([`${m}.Subject`, e.Subject]);
  });
  return fields.map(([k, v]) => `${encodeRfc3986(k)}=${encodeRfc3986(v)}`).join('&');
}

const members = (xml: string, list: string): string[] => {
  const section = new RegExp(`<${list}>([\\s\\S]*?)</${list}>`).exec(xml)?.[1] ?? '';
  return [...section.matchAll(/<member>([\s\S]*?)<\/member>/g)].map((m) => m[1]!);
};

/** Reads a PublishBatchResponse: who was published (with SNS's message id) and who failed (with code and fault). */
export function parsePublishBatchResponse(xml: string): PublishBatchResult {
  const out: PublishBatchResult = { Successful: [], Failed: [] };
  for (const m of members(xml, 'Successful')) {
    const Id = xmlText(m, 'Id');
    if (Id === undefined) continue;
    const MessageId = xmlText(m, 'MessageId');
    out.Successful.push({ Id, ...(MessageId !== undefined ? { MessageId } : {}) });
  }
  for (const m of members(xml, 'Failed')) {
    const Id = xmlText(m, 'Id');
    if (Id === undefined) continue;
    const Code = xmlText(m, 'Code');
    const Message = xmlText(m, 'Message');
    const fault = xmlText(m, 'SenderFault');
    out.Failed.push({ Id, ...(Code !== undefined ? { Code } : {}), ...(Message !== undefined ? { Message } : {}), ...(fault !== undefined ? { SenderFault: fault === 'true' } : {}) });
  }
  return out;
}

/**
 * SNS answers with a Query error code ("NotFound"); the SDK names the error by its modeled exception
 * ("NotFoundException"), and callers and metrics know those names. The codes SNS models (client-sns 3.1169.0's
 * awsQueryError traits): all are the exception's name without "Exception", except these three.
 */
const MODELED_CODES = new Set(
  'AuthorizationError BatchEntryIdsNotDistinct BatchRequestTooLong ConcurrentAccess EmptyBatchRequest EndpointDisabled FilterPolicyLimitExceeded InternalError InvalidBatchEntryId InvalidParameter InvalidSecurity InvalidState KMSAccessDenied KMSDisabled KMSInvalidState KMSNotFound KMSThrottling NotFound OptedOut PlatformApplicationDisabled ReplayLimitExceeded ResourceNotFound StaleTag SubscriptionLimitExceeded TagLimitExceeded TagPolicy Throttled TooManyEntriesInBatchRequest TopicLimitExceeded UserError'.split(' '),
);
const IRREGULAR: Record<string, string> = { ParameterValueInvalid: 'InvalidParameterValueException', KMSOptInRequired: 'KMSOptInRequired', ValidationException: 'ValidationException' };

/** The SDK's name for an SNS Query error code; an unmodeled code (e.g. "SignatureDoesNotMatch") stays as it is. */
export function snsErrorName(code: string): string {
  return IRREGULAR[code] ?? (MODELED_CODES.has(code) ? `${code}Exception` : code);
}

const retryable = (status: number, name: string) => status >= 500 || status === 429 || /Throttl|InternalError|ServiceUnavailable/.test(name);

export async function publishBatch(sns: SNSClient, input: { topicArn: string; entries: BatchEntry[] }, options: { abortSignal?: AbortSignal } = {}): Promise<PublishBatchResult> {
  const { url, signer } = await cachedTarget(sns, '', 'PublishBatch', () => target(sns));
  const body = publishBatchForm(input.topicArn, input.entries);
  const handler = (sns.config as unknown as SigningConfig).requestHandler;
  return sendSigned({
    client: sns,
    operation: 'PublishBatch',
    signer,
    handler,
    request: () => requestTo(url, 'POST', { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) }, body),
    ...(options.abortSignal ? { abortSignal: options.abortSignal } : {}),
    ok: (text) => {
      const result = parsePublishBatchResponse(text);
      for (const f of result.Failed) reportError(sns, 'PublishBatch', Object.assign(new Error(f.Message ?? ''), { name: f.Code || 'Error' }));
      return result;
    },
    failure: (text, status) => {
      const code = xmlText(text, 'Code');
      return { name: code ? snsErrorName(code) : `Http${status}`, message: xmlText(text, 'Message') ?? `SNS answered HTTP ${status} to PublishBatch` };
    },
    retryable,
    errorClass: SnsError,
  });
}
