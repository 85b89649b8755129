import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { KMSClient } from '@aws-sdk/client-kms';
import { Readable } from 'node:stream';
import { prepareEncryption, type PreparedEncryption } from '../../shared/envelope/encrypt.js';
import { sesEncryptionContext } from '../../shared/envelope/context.js';
import { generateDataKey } from '../aws/kms-data-key.js';
import type { SesEncryptionContext } from '../../shared/envelope/context.js';
import { TAG_BYTES } from '../../shared/envelope/metadata.js';
import { putObject } from '../aws/s3-put-object.js';
import { DEFAULT_UPLOAD_TUNING, type UploadTuning } from './upload-tuning.js';

export { DEFAULT_UPLOAD_TUNING, type UploadTuning };

/**
 * Content-Type of stored messages. SES's is UNCONFIRMED (docs/ses-format.md#content-type-and-checksums); SES writes through the Java S3 client,
 * whose default for an unset type is application/octet-stream, so we set that explicitly.
 */
export const STORED_CONTENT_TYPE = 'application/octet-stream';

export interface PutMessageInput {
  s3: S3Client;
  bucket: string;
  key: string;
  /**
   * The stored message (SES header block + DATA): streamed, never buffered whole — or, for a small message that is
   * in memory already (a spool batch entry), that one buffer, which goes up as one signed request (s3-put-object.ts).
   */
  body: Readable | Buffer;
  /** Exact byte length of `body`. */
  length: number;
  /** When set, the message is encrypted as SES does with KmsKeyArn (docs/ses-format.md#client-side-encryption). */
  encryption?: { kms: KMSClient; context: SesEncryptionContext };
  tuning?: Partial<UploadTuning>;
  abortSignal?: AbortSignal;
}

export interface PutMessageResult {
  /** Bytes written to S3 (ciphertext + tag when encrypted). */
  storedBytes: number;
  multipart: boolean;
  etag?: string;
}

/**
 * lib-storage gathers each part in memory (and copies it once more when it joins the chunks), so a multipart upload
 * holds about partSize × (queueSize + 2). Multipart uploads share this process-wide budget: with the default 5 MiB
 * parts (20 MiB per upload) big messages go up two at a time, each with its parts in parallel, instead of eight at
 * once holding ~160 MB together; the price is that a burst of big messages is delivered one after another. An
 * upload that needs more than the whole budget (a big partSize in the config) runs alone. Single PUTs stream and
 * need none of it.
 */
export const MULTIPART_MEMORY_BUDGET_BYTES = 48 * 1024 * 1024;

class ByteBudget {
  private used = 0;
  private readonly waiting: Array<{ bytes: number; grant: () => void }> = [];

  constructor(private readonly total: number) {}

  /** Resolves with a release function once `bytes` (capped at the total) fit; rejects if `signal` aborts first. */
  async acquire(bytes: number, signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    const need = Math.min(bytes, this.total);
    if (this.waiting.length === 0 && this.used + need <= this.total) {
      this.used += need;
      return this.releaser(need);
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal?.reason instanceof Error ? signal.reason : new Error('upload aborted'));
        this.pump();
      };
      const entry = {
        bytes: need,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
    });
    return this.releaser(need);
  }

  private releaser(bytes: number): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= bytes;
      this.pump();
    };
  }

  private pump(): void {
    while (this.waiting.length > 0 && this.used + this.waiting[0]!.bytes <= this.total) {
      const next = this.waiting.shift()!;
      this.used += next.bytes;
      next.grant();
    }
  }
}

const multipartBudget = new ByteBudget(MULTIPART_MEMORY_BUDGET_BYTES);

/** A fresh data key for one object, asked for as SES asks (its encryption context names the message), ready to encrypt with. */
export async function encryptionFor(encryption: NonNullable<PutMessageInput['encryption']>, plaintextLength: number, abortSignal?: AbortSignal): Promise<PreparedEncryption> {
  const { kms, context } = encryption;
  const key = await generateDataKey(kms, { keyId: context.kmsKeyArn, encryptionContext: sesEncryptionContext(context) }, abortSignal ? { abortSignal } : {});
  return prepareEncryption(key, context, plaintextLength);
}

/** Writes one message to S3 the way SES's S3 action does: same key, same metadata, same encryption. */
export async function putMessage(input: PutMessageInput): Promise<PutMessageResult> {
  const tuning = { ...DEFAULT_UPLOAD_TUNING, ...input.tuning };
  const multipart = input.length + (input.encryption ? TAG_BYTES : 0) >= tuning.multipartThresholdBytes;
  const release = multipart ? await multipartBudget.acquire(tuning.partSizeBytes * (tuning.queueSize + 2), input.abortSignal) : undefined;
  try {
    return await put(input, tuning);
  } finally {
    release?.();
  }
}

async function put(input: PutMessageInput, tuning: UploadTuning): Promise<PutMessageResult> {
  if (Buffer.isBuffer(input.body)) {
    if (input.body.length + (input.encryption ? TAG_BYTES : 0) < tuning.multipartThresholdBytes) return putInMemory(input, input.body);
    return put({ ...input, body: Readable.from([input.body]) }, tuning);
  }
  let body: Readable = input.body;
  let storedBytes = input.length;
  let metadata: Record<string, string> | undefined;
  if (input.encryption) {
    const enc = await encryptionFor(input.encryption, input.length, input.abortSignal);
    const cipher = enc.createCipherStream();
    input.body.on('error', (e) => cipher.destroy(e));
    body = input.body.pipe(cipher);
    storedBytes = enc.encryptedLength;
    metadata = enc.metadata;
  }
  const params = {
    Bucket: input.bucket,
    Key: input.key,
    Body: body,
    ContentType: STORED_CONTENT_TYPE,
    ...(metadata ? { Metadata: metadata } : {}),
  };
  const opts = input.abortSignal ? { abortSignal: input.abortSignal } : {};
  if (storedBytes < tuning.multipartThresholdBytes) {
    const out = await input.s3.send(new PutObjectCommand({ ...params, ContentLength: storedBytes }), opts);
    return { storedBytes, multipart: false, ...(out.ETag ? { etag: out.ETag } : {}) };
  }
  const upload = new Upload({
    client: input.s3,
    params,
    partSize: tuning.partSizeBytes,
    queueSize: tuning.queueSize,
    leavePartsOnError: false,
  });
  const abort = () => void upload.abort();
  input.abortSignal?.addEventListener('abort', abort, { once: true });
  try {
    const out = await upload.done();
    return { storedBytes, multipart: true, ...(out.ETag ? { etag: out.ETag } : {}) };
  } finally {
    input.abortSignal?.removeEventListener('abort', abort);
  }
}

/** A message in memory: encrypted in one call when the rule has a key, then one PUT. */
async function putInMemory(input: PutMessageInput, plaintext: Buffer): Promise<PutMessageResult> {
  if (plaintext.length !== input.length) throw new Error(`message is ${plaintext.length} bytes, not the ${input.length} declared`);
  let body = plaintext;
  let metadata: Record<string, string> | undefined;
  if (input.encryption) {
    const enc = await encryptionFor(input.encryption, input.length, input.abortSignal);
    body = enc.encrypt(plaintext);
    metadata = enc.metadata;
  }
  const out = await putObject(input.s3, {
    bucket: input.bucket,
    key: input.key,
    body,
    contentType: STORED_CONTENT_TYPE,
    ...(metadata ? { metadata } : {}),
    ...(input.abortSignal ? { abortSignal: input.abortSignal } : {}),
  });
  return { storedBytes: body.length, multipart: false, ...(out.etag ? { etag: out.etag } : {}) };
}
