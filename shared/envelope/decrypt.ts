import { createDecipheriv } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DecryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import { parseArn } from '../ses/arn.js';
import { EnvelopeError } from './errors.js';
import { CEK_ALG_GCM, CONTEXT_CEK_ALG, IV_BYTES, META, META_KEY_V1, TAG_BYTES, WRAP_KMS, WRAP_KMS_CONTEXT } from './metadata.js';

export interface Envelope {
  wrapAlg: typeof WRAP_KMS | typeof WRAP_KMS_CONTEXT;
  encryptedDataKey: Buffer;
  iv: Buffer;
  /** The parsed x-amz-matdesc: for both wrap algorithms, exactly the KMS encryption context. */
  context: Record<string, string>;
  /** Declared plaintext length, when the writer recorded it (SES always does). */
  unencryptedLength?: number;
  /** Region of the KMS key when the context names it (`kms_cmk_id`), so Decrypt goes to the right region. */
  keyRegion?: string;
}

function malformed(what: string): EnvelopeError {
  return new EnvelopeError('malformed-metadata', `the object's encryption metadata is malformed: ${what}`);
}

/** Reads and checks the S3 Encryption Client metadata; throws EnvelopeError saying what is unsupported or wrong. */
export function parseEnvelope(metadata: Record<string, string>): Envelope {
  if (!(META.keyV2 in metadata)) {
    if (META_KEY_V1 in metadata) {
      throw new EnvelopeError('unsupported-envelope', 'the object uses the V1 S3 Encryption Client format (x-amz-key, AES-CBC), which SES never writes; decrypt it with an official client in legacy mode');
    }
    throw malformed(`${META.keyV2} is missing`);
  }
  const wrap = metadata[META.wrapAlg];
  if (wrap !== WRAP_KMS && wrap !== WRAP_KMS_CONTEXT) {
    throw new EnvelopeError('unsupported-envelope', `the data key is wrapped with "${wrap ?? '(none)'}"; only KMS-wrapped keys ("kms" as SES writes, "kms+context") are supported`);
  }
  const cek = metadata[META.cekAlg];
  if (cek !== CEK_ALG_GCM) {
    throw new EnvelopeError('unsupported-envelope', `content is encrypted with "${cek ?? '(none)'}"; only ${CEK_ALG_GCM} (what SES writes) is supported`);
  }
  if (metadata[META.tagLen] !== String(TAG_BYTES * 8)) throw malformed(`${META.tagLen} is "${metadata[META.tagLen]}", expected "128"`);
  const iv = Buffer.from(metadata[META.iv] ?? '', 'base64');
  if (iv.length !== IV_BYTES) throw malformed(`${META.iv} is ${iv.length} bytes, expected ${IV_BYTES}`);
  const encryptedDataKey = Buffer.from(metadata[META.keyV2]!, 'base64');
  if (encryptedDataKey.length === 0) throw malformed(`${META.keyV2} is empty`);

  let context: Record<string, string>;
  try {
    const parsed: unknown = JSON.parse(metadata[META.matdesc] ?? '');
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== 'string')) throw new Error('not a string map');
    context = parsed as Record<string, string>;
  } catch (err) {
    throw malformed(`${META.matdesc} is not a JSON object of strings (${(err as Error).message})`);
  }
  if (wrap === WRAP_KMS_CONTEXT && context[CONTEXT_CEK_ALG] !== cek) {
    // The v2 clients bind the content algorithm into the context; a mismatch means someone edited the metadata.
    throw malformed(`${CONTEXT_CEK_ALG} in ${META.matdesc} does not match ${META.cekAlg}`);
  }

  const env: Envelope = { wrapAlg: wrap, encryptedDataKey, iv, context };
  const declared = metadata[META.unencryptedLength];
  if (declared !== undefined) {
    if (!/^\d+$/.test(declared)) throw malformed(`${META.unencryptedLength} is "${declared}", not a byte count`);
    env.unencryptedLength = Number(declared);
  }
  const keyArn = context.kms_cmk_id ? parseArn(context.kms_cmk_id) : undefined;
  if (keyArn?.region) env.keyRegion = keyArn.region;
  return env;
}

/**
 * Unwraps the data key. The context passed to KMS is the matdesc unchanged (docs/ses-format.md#encryption-context), so any edit to the matdesc
 * or to the wrapped key makes KMS refuse.
 */
export async function unwrapDataKey(kms: KMSClient, env: Envelope, options: { abortSignal?: AbortSignal } = {}): Promise<Uint8Array> {
  try {
    const out = await kms.send(
      new DecryptCommand({ CiphertextBlob: env.encryptedDataKey, EncryptionContext: env.context }),
      options.abortSignal ? { abortSignal: options.abortSignal } : {},
    );
    if (!out.Plaintext || out.Plaintext.length !== 32) throw new Error('KMS returned no 256-bit key');
    return out.Plaintext;
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'InvalidCiphertextException' || name === 'IncorrectKeyException') {
      throw new EnvelopeError(
        'kms-refused',
        `KMS refused to unwrap the data key (${name}): ${META.matdesc} or ${META.keyV2} was altered, or the key is not the one the object was encrypted under`,
        { cause: err },
      );
    }
    if (name === 'AccessDeniedException') {
      throw new EnvelopeError('kms-refused', `KMS denied Decrypt (${(err as Error).message}); grant kms:Decrypt on the key to these credentials`, { cause: err });
    }
    throw err;
  }
}

/**
 * AES-256-GCM decryption of `ciphertext || tag` as a stream. The last 16 bytes are held back as the tag, so one
 * sequential read of the object suffices. Output is released before the tag is checked (the object may be 40 MB);
 * the stream errors at the end if authentication fails, so consumers must treat output as valid only once the
 * stream has finished without error.
 */
export function createDecipherStream(dataKey: Uint8Array, env: Pick<Envelope, 'iv' | 'unencryptedLength'>): Transform {
  return new GcmDecryptStream(dataKey, env.iv, env.unencryptedLength);
}

class GcmDecryptStream extends Transform {
  private readonly decipher;
  private tail: Buffer = Buffer.alloc(0);
  private produced = 0;

  constructor(
    key: Uint8Array,
    iv: Buffer,
    private readonly expectedLength: number | undefined,
  ) {
    super();
    this.decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (chunk.length >= TAG_BYTES) {
      // Decrypt the held-back tail and the chunk separately: GCM takes any split, and this avoids copying the chunk.
      if (this.tail.length) this.emit_(this.decipher.update(this.tail));
      if (chunk.length > TAG_BYTES) this.emit_(this.decipher.update(chunk.subarray(0, chunk.length - TAG_BYTES)));
      this.tail = Buffer.from(chunk.subarray(chunk.length - TAG_BYTES));
    } else {
      const joined = Buffer.concat([this.tail, chunk]);
      const cut = Math.max(0, joined.length - TAG_BYTES);
      if (cut) this.emit_(this.decipher.update(joined.subarray(0, cut)));
      this.tail = joined.subarray(cut);
    }
    done();
  }

  private emit_(out: Buffer): void {
    if (!out.length) return;
    this.produced += out.length;
    this.push(out);
  }

  override _flush(done: TransformCallback): void {
    if (this.tail.length < TAG_BYTES) {
      done(new EnvelopeError('authentication-failed', `the object is ${this.tail.length} bytes, shorter than a GCM tag: truncated or not encrypted`));
      return;
    }
    this.decipher.setAuthTag(this.tail);
    let last: Buffer;
    try {
      last = this.decipher.final();
    } catch (err) {
      done(new EnvelopeError('authentication-failed', 'message authentication failed: the ciphertext or its tag was altered (or the IV/data key does not belong to it); discard any output', { cause: err }));
      return;
    }
    this.produced += last.length;
    if (this.expectedLength !== undefined && this.produced !== this.expectedLength) {
      done(new EnvelopeError('length-mismatch', `decrypted ${this.produced} bytes, but ${META.unencryptedLength} says ${this.expectedLength}`));
      return;
    }
    done(null, last.length ? last : undefined);
  }
}
