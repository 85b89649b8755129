import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { KMSClient } from '@aws-sdk/client-kms';
import { Readable } from 'node:stream';
import { explainAwsError } from '../../gateway/aws/explain-error.js';
import { EnvelopeError, ObjectNotFoundError, openStoredMessage, TAG_BYTES, type StoredMessage } from '../../shared/envelope/index.js';
import { readStoredHeaderBlock, type StoredHeaderBlock } from '../../shared/ses/header-block-read.js';
import { SETUP_NOTIFICATION_MESSAGE_ID } from '../../shared/ses/message-id.js';
import { tooBig } from './data-meter.js';
import { ReplayProblem, SourceNote, type PreparedMessage, type SourceItem, type SourceTime } from './source.js';

/**
 * `s3://bucket/prefix`: the messages SES or the gateway stored under a prefix, encrypted or not, listed a page at a
 * time and each read with one GET (decrypted as a stream with the project's envelope code). The header block at the
 * top of each object is read off (shared/ses/header-block-read.ts) — it gives the original envelope and receipt time
 * — and what follows it, the original DATA exactly as SES received it, is what is replayed (not normalised: it
 * already is what SMTP delivered). A tampered object fails its body stream at the end, when GCM's tag does not verify,
 * so whoever stores it stores nothing.
 *
 * An object's identity is its bucket and key; its content is named by the ETag the listing gave, and the GET asks for
 * exactly that version (If-Match), so the message id always belongs to the bytes replayed.
 */

export interface S3SourceOptions {
  bucket: string;
  prefix: string;
  s3: S3Client;
  /** The KMS client for a key's region (undefined: the default region), as `mailroom get` makes them. */
  kmsFor: (region: string | undefined) => KMSClient;
  maxBytes: number;
}

export function s3Location(bucket: string, key: string): string {
  return `s3://${bucket}/${key}`;
}

export async function* s3Source(o: S3SourceOptions): AsyncGenerator<SourceItem | ReplayProblem | SourceNote> {
  const where = s3Location(o.bucket, o.prefix);
  let token: string | undefined;
  let objects = 0;
  let setup = 0;
  do {
    let page;
    try {
      page = await o.s3.send(new ListObjectsV2Command({ Bucket: o.bucket, Prefix: o.prefix, ...(token ? { ContinuationToken: token } : {}) }));
    } catch (err) {
      yield new ReplayProblem('failed', where, `cannot be listed: ${awsReason(err)}`, { cause: err });
      return;
    }
    for (const object of page.Contents ?? []) {
      const key = object.Key!;
      if (key.endsWith('/') && !object.Size) continue; // a "folder" marker, no message
      if (key.slice(key.lastIndexOf('/') + 1) === SETUP_NOTIFICATION_MESSAGE_ID) {
        setup++;
        continue;
      }
      objects++;
      yield { location: s3Location(o.bucket, key), prepare: () => prepareObject(o, key, object.ETag) };
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  if (setup > 0) yield new SourceNote(where, `${setup} SES setup notification object(s) (${SETUP_NOTIFICATION_MESSAGE_ID}, SES's test write, no message) left alone`);
  if (objects === 0 && setup === 0) yield new ReplayProblem('failed', where, 'holds no objects: check the bucket and the object key prefix');
}

async function prepareObject(o: S3SourceOptions, key: string, etag: string | undefined): Promise<PreparedMessage> {
  const location = s3Location(o.bucket, key);
  let msg: StoredMessage;
  try {
    msg = await openStoredMessage(o.s3, o.kmsFor, o.bucket, key, etag ? { ifMatch: etag } : {});
  } catch (err) {
    throw objectProblem(location, err);
  }
  const chunks = (msg.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let block: StoredHeaderBlock;
  let head = Buffer.alloc(0);
  try {
    for (let atEnd = false; ; ) {
      const reading = readStoredHeaderBlock(head, atEnd);
      if (reading.state === 'block') {
        block = reading.block;
        break;
      }
      if (reading.state === 'not-stored-format') throw new ReplayProblem('malformed', location, `is not a message stored by SES or the gateway: ${reading.reason}`);
      const next = await chunks.next();
      if (next.done) atEnd = true;
      else head = Buffer.concat([head, next.value]);
    }
  } catch (err) {
    msg.body.destroy();
    throw objectProblem(location, err);
  }

  const plain = msg.length ?? (msg.storedLength === undefined ? undefined : msg.encrypted ? msg.storedLength - TAG_BYTES : msg.storedLength);
  const dataLength = plain === undefined ? undefined : plain - block.length;
  const rest = head.subarray(block.length);
  const times: SourceTime[] = [{ at: block.receivedAt, from: 'Received (SES header block)' }];
  if (msg.lastModified) times.push({ at: msg.lastModified, from: 'object LastModified' });
  const maxBytes = o.maxBytes;

  return {
    location,
    identity: location,
    contentTag: `etag:${etag ?? msg.etag ?? ''}`,
    ...(dataLength !== undefined ? { dataLength } : {}),
    headers: [],
    hints: { storedBlock: block },
    times,
    body(): Readable {
      async function* data() {
        let sent = rest.length;
        try {
          if (sent > maxBytes) throw tooBig(location, sent, maxBytes, true);
          if (rest.length) yield rest;
          for (;;) {
            const next = await chunks.next();
            if (next.done) break;
            sent += next.value.length;
            if (sent > maxBytes) throw tooBig(location, sent, maxBytes, true);
            yield next.value;
          }
        } catch (err) {
          throw objectProblem(location, err);
        } finally {
          msg.body.destroy();
        }
      }
      return Readable.from(data(), { objectMode: false });
    },
    discard: () => msg.body.destroy(),
  };
}

function awsReason(err: unknown): string {
  return explainAwsError(err) ?? (err instanceof Error ? `${err.name}: ${err.message}` : String(err));
}

/** Why an object cannot be replayed, in the words of ReplayProblem. */
function objectProblem(location: string, err: unknown): ReplayProblem {
  if (err instanceof ReplayProblem) return err;
  if (err instanceof EnvelopeError) {
    switch (err.code) {
      case 'authentication-failed':
      case 'length-mismatch':
        return new ReplayProblem('malformed', location, `is tampered or damaged: ${err.message}; nothing was stored from it`, { cause: err });
      case 'kms-refused':
        return (err.cause as Error | undefined)?.name === 'AccessDeniedException'
          ? new ReplayProblem('failed', location, `cannot be decrypted: ${err.message}`, { cause: err })
          : new ReplayProblem('malformed', location, `is tampered, or encrypted under another key: ${err.message}`, { cause: err });
      default:
        return new ReplayProblem('malformed', location, `is not a message stored by SES or the gateway: ${err.message}`, { cause: err });
    }
  }
  if (err instanceof ObjectNotFoundError) return new ReplayProblem('failed', location, 'is gone (deleted since it was listed)', { cause: err });
  if ((err as Error).name === 'PreconditionFailed') return new ReplayProblem('failed', location, 'changed since it was listed (another ETag): run the replay again', { cause: err });
  return new ReplayProblem('failed', location, `could not be read: ${awsReason(err)}`, { cause: err });
}
