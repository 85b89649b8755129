import { GetObjectCommand, NoSuchKey, type S3Client } from '@aws-sdk/client-s3';
import type { KMSClient } from '@aws-sdk/client-kms';
import { pipeline } from 'node:stream/promises';
import type { Readable, Writable } from 'node:stream';
import { createDecipherStream, parseEnvelope, unwrapDataKey } from './decrypt.js';
import { hasEnvelope } from './metadata.js';

export interface StoredMessage {
  /** The message as SES stored it: decrypted when the object carries the envelope. */
  body: Readable;
  encrypted: boolean;
  /** Plaintext length when known. */
  length?: number;
  metadata: Record<string, string>;
  /** The object as S3 describes it: its ETag, last change and stored (ciphertext) length. */
  etag?: string;
  lastModified?: Date;
  storedLength?: number;
}

export class ObjectNotFoundError extends Error {
  constructor(bucket: string, key: string) {
    super(`s3://${bucket}/${key} does not exist (check the bucket, the object key prefix and the message id)`);
    this.name = 'ObjectNotFoundError';
  }
}

/**
 * Opens a stored message with one GET. `kmsFor(region)` supplies the KMS client for the key's region (taken from
 * the matdesc's kms_cmk_id, or undefined for the default region).
 */
export async function openStoredMessage(
  s3: S3Client,
  kmsFor: (region: string | undefined) => KMSClient,
  bucket: string,
  key: string,
  /** `ifMatch`: read this version of the object only (S3 answers 412 PreconditionFailed if it changed). */
  options: { ifMatch?: string } = {},
): Promise<StoredMessage> {
  let res;
  try {
    res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...(options.ifMatch ? { IfMatch: options.ifMatch } : {}) }));
  } catch (err) {
    if (err instanceof NoSuchKey || (err as Error).name === 'NoSuchKey') throw new ObjectNotFoundError(bucket, key);
    throw err;
  }
  const raw = res.Body as Readable;
  const metadata = res.Metadata ?? {};
  const described = {
    ...(res.ETag !== undefined ? { etag: res.ETag } : {}),
    ...(res.LastModified !== undefined ? { lastModified: res.LastModified } : {}),
    ...(res.ContentLength !== undefined ? { storedLength: res.ContentLength } : {}),
  };
  if (!hasEnvelope(metadata)) {
    return { body: raw, encrypted: false, ...(res.ContentLength !== undefined ? { length: res.ContentLength } : {}), metadata, ...described };
  }
  try {
    const env = parseEnvelope(metadata);
    const dataKey = await unwrapDataKey(kmsFor(env.keyRegion), env);
    const decipher = createDecipherStream(dataKey, env);
    raw.on('error', (e) => decipher.destroy(e));
    raw.pipe(decipher);
    return { body: decipher, encrypted: true, ...(env.unencryptedLength !== undefined ? { length: env.unencryptedLength } : {}), metadata, ...described };
  } catch (err) {
    raw.destroy();
    throw err;
  }
}

/** Copies a stored message to `out`; rejects (after partial output) if authentication fails at the end. */
export async function copyStoredMessage(msg: StoredMessage, out: Writable): Promise<void> {
  await pipeline(msg.body, out);
}
