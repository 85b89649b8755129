import { createCipheriv } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { sesEncryptionContext, type SesEncryptionContext } from './context.js';
import { CEK_ALG_GCM, IV_BYTES, META, TAG_BYTES, WRAP_KMS, canonicalMatdesc } from './metadata.js';
import { randomPool } from '../random-pool.js';

/** Each data key encrypts one object, so an IV only has to be fresh, which a forward-read pool guarantees. */
const nextIv = randomPool(IV_BYTES);

export interface PreparedEncryption {
  /** The seven user-metadata entries, ready for PutObject / CreateMultipartUpload `Metadata`. */
  metadata: Record<string, string>;
  /** Object size: plaintext + the 16-byte GCM tag. */
  encryptedLength: number;
  /**
   * The AES-256-GCM stream: plaintext in, ciphertext then tag out. Usable once (a second stream would reuse the
   * IV under the same key); it fails if the plaintext is not exactly the declared length, because the metadata
   * already promised that length.
   */
  createCipherStream(): Transform;
  /** The same encryption of a message held in memory (ciphertext then tag, one buffer). Usable once, as the stream. */
  encrypt(plaintext: Buffer): Buffer;
}

/** A data key from KMS GenerateDataKey (AES-256), asked for under the rule's key with `sesEncryptionContext`. */
export interface DataKey {
  plaintext: Uint8Array;
  ciphertextBlob: Uint8Array;
}

/**
 * The metadata and the cipher for one object encrypted as SES does with a rule's KMS key
 * (docs/ses-format.md#client-side-encryption), from a data key generated for it with `sesEncryptionContext(context)`.
 * The plaintext length must be known up front: S3 takes metadata before the body.
 */
export function prepareEncryption(out: DataKey, context: SesEncryptionContext, plaintextLength: number): PreparedEncryption {
  const ctx = sesEncryptionContext(context);
  if (out.plaintext.length !== 32 || out.ciphertextBlob.length === 0) {
    throw new Error(`KMS GenerateDataKey for ${context.kmsKeyArn} returned no usable 256-bit data key`);
  }
  const iv = nextIv();
  let dataKey: Uint8Array | undefined = out.plaintext;
  const takeKey = () => {
    if (!dataKey) throw new Error('this encryption was already used; prepare a new one (a fresh data key and IV) per upload');
    return dataKey;
  };
  const forget = () => {
    dataKey?.fill(0);
    dataKey = undefined;
  };
  const metadata: Record<string, string> = {
    [META.keyV2]: Buffer.from(out.ciphertextBlob).toString('base64'),
    [META.iv]: iv.toString('base64'),
    [META.matdesc]: canonicalMatdesc(ctx),
    [META.wrapAlg]: WRAP_KMS,
    [META.cekAlg]: CEK_ALG_GCM,
    [META.tagLen]: String(TAG_BYTES * 8),
    [META.unencryptedLength]: String(plaintextLength),
  };
  return {
    metadata,
    encryptedLength: plaintextLength + TAG_BYTES,
    createCipherStream() {
      const stream = createGcmEncryptStream(takeKey(), iv, plaintextLength);
      forget();
      return stream;
    },
    encrypt(plaintext) {
      if (plaintext.length !== plaintextLength) throw new Error(`message is ${plaintext.length} bytes, not the ${plaintextLength} declared in ${META.unencryptedLength}`);
      const out = gcmEncrypt(takeKey(), iv, plaintext);
      forget();
      return out;
    },
  };
}

/** AES-256-GCM of a buffer: ciphertext, then the tag — byte for byte what the stream below produces. */
export function gcmEncrypt(key: Uint8Array, iv: Buffer, plaintext: Buffer): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

/** The bare AES-256-GCM encrypting stream (ciphertext, then the tag); prepareEncryption is the way in for mail. */
export function createGcmEncryptStream(key: Uint8Array, iv: Buffer, plaintextLength: number): Transform {
  return new GcmEncryptStream(key, iv, plaintextLength);
}

class GcmEncryptStream extends Transform {
  private readonly cipher;
  private seen = 0;

  constructor(
    key: Uint8Array,
    iv: Buffer,
    private readonly expectedLength: number,
  ) {
    super();
    this.cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.expectedLength) {
      done(new Error(`message is longer than the ${this.expectedLength} bytes declared in ${META.unencryptedLength}`));
      return;
    }
    done(null, this.cipher.update(chunk));
  }

  override _flush(done: TransformCallback): void {
    if (this.seen !== this.expectedLength) {
      done(new Error(`message is ${this.seen} bytes, not the ${this.expectedLength} declared in ${META.unencryptedLength}`));
      return;
    }
    const last = this.cipher.final();
    if (last.length) this.push(last);
    done(null, this.cipher.getAuthTag());
  }
}
