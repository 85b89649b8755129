import { once } from 'node:events';
import type { FileHandle } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { crc32 } from 'node:zlib';
import {
  AlgorithmSuiteIdentifier,
  buildClient,
  CommitmentPolicy,
  getLocalCryptographicMaterialsCache,
  NodeCachingMaterialsManager,
  NodeDecryptionMaterial,
  NodeDefaultCryptographicMaterialsManager,
  NodeEncryptionMaterial,
  type EncryptionContext,
  type KeyringNode,
  NodeAlgorithmSuite,
  type NodeMaterialsManager,
} from '@aws-crypto/client-node';
import { encodeSealedLine, SpoolFormatError, type SealedFileHeader } from './format.js';

/**
 * Spool files sealed with the AWS Encryption SDK (docs/spool-encryption.md): a batch file is sealed whole in its round,
 * a streamed message as it streams; a reader opens either whole (a batch) or as a stream (a big message, so a 40 MB
 * message never sits in memory).
 *
 * Data keys. One data key seals many files: the SDK's caching materials manager hands out the same key until it is
 * `maxAgeMs` old or has sealed `maxFiles` files or `maxBytes` bytes — with KMS, one GenerateDataKey per key, not per
 * message. Each file still gets its own key, derived from the data key and the file's random message id (HKDF, in the
 * algorithm suite), and the suite commits to it.
 *
 * Encryption context. Each file is bound to where it belongs: this node, this spool file (`mailroom:node`,
 * `mailroom:spool-file`, with `mailroom:purpose` = `spool`), written in the SDK's message header and authenticated by
 * its header tag; a reader checks it against the file it reads, so a ciphertext moved or copied to another file or node
 * fails with an error saying so. The caching manager keys its cache on the context, so it (and the keyring, and KMS)
 * sees only the part that every file of this node shares; the file's own part goes into the header on top (`bound`).
 * That split is what lets one data key serve many files: the per-file binding is the header's authentication, not KMS's.
 *
 * Algorithm suite: AES-256-GCM, HKDF-SHA512, key commitment, no signature. The default suite adds an ECDSA P-384
 * signature per message; for a spool that both writes and reads its own files it proves nothing the GCM tags do not
 * (whoever can read the key can sign), and it cost more CPU than the rest of the sealing (docs/spool-encryption.md has
 * the measurement). Readers refuse signed messages (`decryptUnsignedMessageStream`), so plaintext is never used before
 * it is verified: each frame's tag checks it as it streams.
 */

export const SEAL_SUITE = AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY;
const SEAL_SUITE_NAME = AlgorithmSuiteIdentifier[SEAL_SUITE];
/**
 * Plaintext per frame: one frame (one GCM, one pass through the SDK's stream) for most batch files, and what a
 * streaming reader holds per file. 256 KiB frames and one write per batch file sealed a file of 20 messages in about
 * 40 % of the CPU 64 KiB frames and a write per chunk took (docs/spool-encryption.md).
 */
export const SEAL_FRAME_BYTES = 256 * 1024;
/** Width of a streamed file's line, written before its plaintext length is known (format.ts encodeSealedLine). */
const STREAMED_LINE_SLACK = 24;

const CONTEXT_PURPOSE = 'mailroom:purpose';
const CONTEXT_NODE = 'mailroom:node';
const CONTEXT_FILE = 'mailroom:spool-file';
/** The raw AES keyring's namespace, recorded in each file's encrypted data key. */
export const RAW_KEY_NAMESPACE = 'mailroom-spool';

const { encryptStream, decryptUnsignedMessageStream } = buildClient({ commitmentPolicy: CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT, maxEncryptedDataKeys: 1 });

/**
 * The ciphertext cannot be what was sealed here: it fails authentication (tampered, or damaged on disk), is cut short,
 * or was sealed for another spool file or node (moved or copied). No retry can fix it: never delivered, never deleted.
 */
export class SpoolSealError extends SpoolFormatError {
  override name = 'SpoolSealError';
}

/**
 * The key that opens a sealed file is not available here: encryption is not configured, the file names another key,
 * or KMS refused or could not be reached. Fixable (the config, a key policy, the network): a delivery retries.
 */
export class SpoolKeyError extends Error {
  override name = 'SpoolKeyError';
}

/** The key files are sealed under, with its keyring (seal-keys.ts builds it from the config). */
export interface SpoolKey {
  keyring: SealedFileHeader['sealed']['keyring'];
  /** The KMS key's ARN, or the raw key's fingerprint (`keyName` of its keyring). */
  keyId: string;
  node: KeyringNode;
  /** The key in words for errors: "KMS key arn:…", "the key in /etc/mailroom/spool.key (fingerprint …)". */
  describe: string;
  /**
   * Classifies a failure of the keyring to open a data key: `sealed` when the data key itself is bad (tampered), else
   * `key` with the cause in words (access denied, KMS unreachable).
   */
  explain(err: Error): { kind: 'sealed' | 'key'; why: string };
}

export interface SpoolSealOptions {
  key: SpoolKey;
  /** The node whose spool this is (cluster/node.ts): part of every file's context. */
  nodeId: string;
  /** False: the key only opens files already sealed; new mail is written in plaintext. */
  sealNewFiles: boolean;
  dataKey: { maxAgeMs: number; maxFiles: number; maxBytes: number };
  /** Called when a data key is made (with KMS: a GenerateDataKey) or opened (a Decrypt): for logs and counts. */
  onDataKey?(op: 'made' | 'opened'): void;
}

/** A file's ciphertext, as the writer puts it behind its line. */
export interface SealedBytes {
  line: Buffer;
  ciphertext: Buffer[];
  bytes: number;
}

/**
 * Material with the same keys under another encryption context (the cache's own clone, with the file's part added);
 * `m`'s copy of the data key is zeroed unless it is still needed (`keep`).
 */
function bound<M extends NodeEncryptionMaterial | NodeDecryptionMaterial>(m: M, context: EncryptionContext, keep = false): M {
  const [setTrace, ...traces] = m.keyringTrace;
  const key = m.getUnencryptedDataKey();
  const out = (m instanceof NodeEncryptionMaterial ? new NodeEncryptionMaterial(m.suite, context) : new NodeDecryptionMaterial(m.suite, context)) as M;
  out.setUnencryptedDataKey(key instanceof Uint8Array ? new Uint8Array(key) : key, setTrace!);
  if (m instanceof NodeEncryptionMaterial && out instanceof NodeEncryptionMaterial) m.encryptedDataKeys.forEach((edk, i) => out.addEncryptedDataKey(edk, traces[i]!.flags));
  if (!keep) m.zeroUnencryptedDataKey();
  return out;
}

/**
 * `chunk` cut where frames end, counting from plaintext byte `at`. The SDK's framed encrypt stream counts the part of
 * a chunk beyond a frame's end twice against `plaintextLength` (it subtracts the whole chunk, then the tail again when
 * it goes on with it), so a chunk that spans a frame boundary can fail "Encrypted data exceeded plaintextLength" with
 * an exact length. Chunks that end at a boundary leave an empty tail; views, no copies.
 */
function* atFrames(chunk: Buffer, at: number): Generator<Buffer> {
  for (let off = 0; off < chunk.length; ) {
    const n = Math.min(chunk.length - off, SEAL_FRAME_BYTES - ((at + off) % SEAL_FRAME_BYTES));
    yield chunk.subarray(off, off + n);
    off += n;
  }
}

/** The Encryption SDK's stream, driven by hand: its input in, its output out (chunks as the SDK emits them). */
async function run(stream: NodeJS.ReadWriteStream, input: Buffer[]): Promise<Buffer[]> {
  const out: Buffer[] = [];
  stream.on('data', (c: Buffer) => out.push(c));
  const ended = new Promise<void>((resolve, reject) => {
    stream.once('end', resolve);
    // `on`, not `once`: the SDK's pipeline can report one failure twice, and a second 'error' without a listener throws.
    stream.on('error', reject);
  });
  let at = 0;
  for (const chunk of input) {
    for (const part of atFrames(chunk, at)) stream.write(part);
    at += chunk.length;
  }
  stream.end();
  await ended;
  return out;
}

/** When the next data key is made ahead of the current one's age bound, and how soon a failed attempt is retried. */
const RENEW_AT = 0.8;
const RENEW_RETRY_MS = 10_000;

export class SpoolSeal {
  readonly sealsNewFiles: boolean;
  readonly key: SpoolKey;
  /** The data key sealing new files, cached within its bounds; replaced by a fresh cache ahead of its age (renewing). */
  private sealingMaterials: NodeCachingMaterialsManager;
  /** Data keys of files being opened, cached for their age bound. */
  private readonly openingMaterials: NodeCachingMaterialsManager;
  private readonly backing: NodeMaterialsManager;
  private renewTimer: NodeJS.Timeout | undefined;
  /** A file was sealed since the last renewal: an idle gateway makes no data key ahead. */
  private sealedSinceRenewal = false;
  /** The context every file of this node shares: what the cache, the keyring and KMS see. */
  private readonly keyContext: EncryptionContext;

  constructor(private readonly opts: SpoolSealOptions) {
    this.key = opts.key;
    this.sealsNewFiles = opts.sealNewFiles;
    this.keyContext = { [CONTEXT_PURPOSE]: 'spool', [CONTEXT_NODE]: opts.nodeId };
    const backing = new NodeDefaultCryptographicMaterialsManager(opts.key.node);
    const onDataKey = opts.onDataKey;
    // Misses for the same data key at once (a worker's deliveries starting together) share one opening: the cache
    // does not coalesce them, and each would be a KMS Decrypt. Each gets a copy of its own (the cache zeroes the
    // material of an entry it replaces); the shared one is zeroed once every copy is made.
    const opening = new Map<string, Promise<NodeDecryptionMaterial>>();
    // Counted on its way to the keyring: a cache miss is a data key made or opened (with KMS, one call).
    this.backing = {
      getEncryptionMaterials: (req) => (onDataKey?.('made'), backing.getEncryptionMaterials(req)),
      decryptMaterials: (req) => {
        const id = `${req.suite.id}:${req.encryptedDataKeys.map((k) => `${k.providerId}/${k.providerInfo}/${Buffer.from(k.encryptedDataKey).toString('base64')}`).join(',')}`;
        let shared = opening.get(id);
        if (!shared) {
          onDataKey?.('opened');
          const p = backing.decryptMaterials(req);
          opening.set(id, (shared = p));
          p.then(
            (m) => setImmediate(() => m.zeroUnencryptedDataKey()),
            () => undefined,
          ).finally(() => opening.delete(id));
        }
        return shared.then((m) => bound(m, m.encryptionContext, true));
      },
    };
    this.sealingMaterials = this.cache(4);
    this.openingMaterials = this.cache(1000);
  }

  /** The SDK's caching materials manager over the keyring, within the data key bounds. */
  private cache(entries: number): NodeCachingMaterialsManager {
    const { dataKey } = this.opts;
    return new NodeCachingMaterialsManager({
      backingMaterials: this.backing,
      cache: getLocalCryptographicMaterialsCache(entries),
      maxAge: dataKey.maxAgeMs,
      maxMessagesEncrypted: dataKey.maxFiles,
      maxBytesEncrypted: dataKey.maxBytes,
      partition: 'mailroom-spool',
    });
  }

  /**
   * Makes each next data key before the current one is too old to seal (at 80 % of its age bound), so KMS is not
   * asked on the accept path when a key runs out of time — nor waited for, should it be slow or away: the current
   * key serves until its bound, and a failed attempt is tried again every 10 s meanwhile (`failed` is told). The
   * file and byte bounds still end a key when they are reached, and the next is then made in the round that needs it;
   * so does the first file after a time in which nothing was sealed (an idle gateway asks KMS for nothing).
   */
  renewAhead(failed?: (err: Error) => void): void {
    const after = (ms: number) => {
      clearTimeout(this.renewTimer);
      this.renewTimer = setTimeout(renew, ms);
      this.renewTimer.unref();
    };
    const renew = () => {
      if (!this.sealedSinceRenewal) return after(this.opts.dataKey.maxAgeMs * RENEW_AT);
      this.sealedSinceRenewal = false;
      const fresh = this.cache(4);
      fresh.getEncryptionMaterials({ suite: new NodeAlgorithmSuite(SEAL_SUITE), encryptionContext: this.keyContext, plaintextLength: 0, commitmentPolicy: CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT }).then(
        (m) => {
          m.zeroUnencryptedDataKey();
          this.sealingMaterials = fresh;
          after(this.opts.dataKey.maxAgeMs * RENEW_AT);
        },
        (err: Error) => {
          failed?.(err);
          after(Math.min(RENEW_RETRY_MS, this.opts.dataKey.maxAgeMs * (1 - RENEW_AT)));
        },
      );
    };
    after(this.opts.dataKey.maxAgeMs * RENEW_AT);
  }

  /** Stops renewing (the process is stopping). */
  close(): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
  }

  private contextOf(fileId: string): EncryptionContext {
    return { ...this.keyContext, [CONTEXT_FILE]: fileId };
  }

  /** The materials manager for sealing one file: the cached data key, bound to the file's context. */
  private sealing(fileId: string): NodeMaterialsManager {
    const context = this.contextOf(fileId);
    this.sealedSinceRenewal = true;
    return {
      getEncryptionMaterials: async (req) => bound(await this.sealingMaterials.getEncryptionMaterials({ ...req, encryptionContext: this.keyContext }), context),
      decryptMaterials: () => Promise.reject(new Error('a sealing materials manager does not decrypt')),
    };
  }

  private header(plaintextLength: number, sealed?: { length: number; crc32: number }): SealedFileHeader {
    return { v: 2, sealed: { by: 'aws-encryption-sdk', suite: SEAL_SUITE_NAME, keyring: this.key.keyring, keyId: this.key.keyId }, ...(sealed ? { length: sealed.length, crc32: sealed.crc32 } : {}), plaintextLength };
  }

  /** A batch file's plaintext (its entries) sealed in one Encryption SDK message, with the line that goes before it. */
  async seal(fileId: string, plaintext: Buffer[], bytes: number): Promise<SealedBytes> {
    // One copy of the batch (at most MAX_FILE_BYTES) costs less than the SDK's stream handling each chunk on its own.
    const whole = plaintext.length === 1 ? plaintext : [Buffer.concat(plaintext, bytes)];
    const ciphertext = await run(encryptStream(this.sealing(fileId), { suiteId: SEAL_SUITE, frameLength: SEAL_FRAME_BYTES, plaintextLength: bytes }), whole);
    let length = 0;
    let sum = 0;
    for (const c of ciphertext) {
      length += c.length;
      sum = crc32(c, sum);
    }
    const line = encodeSealedLine(this.header(bytes, { length, crc32: sum }));
    return { line, ciphertext, bytes: line.length + length };
  }

  /**
   * Seals a file written as a stream (a big message) straight into `fh`: its line first (with room for the plaintext
   * length, known only at the end), then the ciphertext as the plaintext comes. `maxPlaintextBytes` bounds it (the
   * record line and the size limit): the cache counts a file by it.
   */
  async sealInto(fh: FileHandle, fileId: string, maxPlaintextBytes: number): Promise<SealingFile> {
    const placeholder = encodeSealedLine(this.header(0));
    const width = placeholder.length + STREAMED_LINE_SLACK;
    await writeAt(fh, encodeSealedLine(this.header(0), width), 0);
    const stream = encryptStream(this.sealing(fileId), { suiteId: SEAL_SUITE, frameLength: SEAL_FRAME_BYTES, plaintextLength: Math.min(maxPlaintextBytes, Number.MAX_SAFE_INTEGER) });
    return new SealingFile(fh, stream, width, (n) => encodeSealedLine(this.header(n), width));
  }

  /** Checks what a file's line says against this seal, before any decryption. */
  private usable(header: SealedFileHeader, path: string): void {
    if (header.sealed.suite !== SEAL_SUITE_NAME) throw new SpoolSealError(`spool file ${path} is sealed with algorithm suite ${header.sealed.suite}, which the gateway never writes: not opened`);
    if (header.sealed.keyring !== this.key.keyring || header.sealed.keyId !== this.key.keyId) {
      throw new SpoolKeyError(
        `spool file ${path} is sealed under ${describeSealedKey(header)}, and gateway.spool.encryption names ${this.key.describe}: configure that key again (with "enabled": false to keep new mail in plaintext under it, or until this mail is delivered)`,
      );
    }
  }

  /**
   * The materials manager for opening one file: checks the header's context against the file being read before any
   * key is touched (a moved ciphertext fails here, naming where it belongs), then opens the data key through the
   * cache (a key seen before costs nothing) and binds it to the header's context for the SDK.
   */
  private opening(fileId: string, path: string): NodeMaterialsManager {
    const expected = this.contextOf(fileId);
    return {
      getEncryptionMaterials: () => Promise.reject(new Error('an opening materials manager does not encrypt')),
      decryptMaterials: async (req) => {
        const got = req.encryptionContext;
        const keys = Object.keys(got);
        if (keys.length !== Object.keys(expected).length || keys.some((k) => got[k] !== expected[k])) {
          const node = got[CONTEXT_NODE];
          const file = got[CONTEXT_FILE];
          throw new SpoolSealError(
            file === undefined || node === undefined
              ? `spool file ${path} holds a ciphertext that was not sealed for a spool file (encryption context ${JSON.stringify(got)}): not delivered`
              : `spool file ${path} holds a ciphertext sealed for spool file ${file} of node "${node}", not for ${fileId} of node "${expected[CONTEXT_NODE]}": it was moved or copied here; not delivered`,
          );
        }
        let m: NodeDecryptionMaterial;
        try {
          m = await this.openingMaterials.decryptMaterials({ ...req, encryptionContext: this.keyContext });
        } catch (err) {
          const { kind, why } = this.key.explain(err as Error);
          if (kind === 'sealed') throw new SpoolSealError(`spool file ${path}: its data key does not open with ${this.key.describe} (${why}): tampered or damaged; not delivered`);
          throw new SpoolKeyError(`spool file ${path} cannot be opened: ${why}`);
        }
        return bound(m, got);
      },
    };
  }

  /** The plaintext of a sealed batch file, whose ciphertext (after its line) is in memory. */
  async open(fileId: string, header: SealedFileHeader, ciphertext: Buffer, path: string): Promise<Buffer> {
    this.usable(header, path);
    if (header.length !== undefined && ciphertext.length !== header.length) throw new SpoolSealError(`spool file ${path} is torn: its ciphertext is ${ciphertext.length} bytes, its line says ${header.length}`);
    if (header.crc32 !== undefined && crc32(ciphertext) !== header.crc32) {
      throw new SpoolSealError(`spool file ${path} is torn or damaged: its ciphertext does not match its checksum (a machine crash before its flush completed — its clients were never answered 250 — or damage by the disk)`);
    }
    let chunks: Buffer[];
    try {
      chunks = await run(decryptUnsignedMessageStream(this.opening(fileId, path)), [ciphertext]);
    } catch (err) {
      throw openFailure(err, path);
    }
    const plaintext = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    if (plaintext.length !== header.plaintextLength) throw new SpoolSealError(`spool file ${path} opened to ${plaintext.length} bytes, its line says ${header.plaintextLength}: not delivered`);
    return plaintext;
  }

  /**
   * The plaintext of a sealed file as a stream, from its ciphertext as a stream: memory stays at a frame or two
   * whatever the size. Fails (SpoolSealError) when a frame does not authenticate or the plaintext is not the length
   * the line says — before any byte of a bad frame is passed on.
   */
  openStream(fileId: string, header: SealedFileHeader, ciphertext: Readable, path: string): Readable {
    this.usable(header, path);
    const decrypting = decryptUnsignedMessageStream(this.opening(fileId, path)) as unknown as NodeJS.ReadWriteStream;
    let seen = 0;
    const out = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        seen += chunk.length;
        if (seen > header.plaintextLength) return cb(new SpoolSealError(`spool file ${path} opens to more than the ${header.plaintextLength} bytes its line says: not delivered`));
        cb(null, chunk);
      },
      flush(cb) {
        cb(seen === header.plaintextLength ? null : new SpoolSealError(`spool file ${path} opened to ${seen} bytes, its line says ${header.plaintextLength}: cut short or damaged; not delivered`));
      },
    });
    const fail = (err: unknown) => out.destroy(openFailure(err, path));
    ciphertext.on('error', fail);
    decrypting.on('error', fail);
    out.once('close', () => {
      ciphertext.destroy();
      (decrypting as unknown as { destroy(): void }).destroy();
    });
    ciphertext.pipe(decrypting as unknown as NodeJS.WritableStream);
    decrypting.pipe(out);
    return out;
  }

  /**
   * A round trip at start: a data key made and opened, so a key that cannot be used (KMS access, a key disabled) is
   * said before any mail depends on it — and the first message does not wait for KMS.
   */
  async check(): Promise<void> {
    const probe = Buffer.from('mailroom spool key check\n');
    let sealed: SealedBytes;
    try {
      sealed = await this.seal('key-check', [probe], probe.length);
    } catch (err) {
      throw new SpoolKeyError(`no data key from ${this.key.describe}: ${this.key.explain(err as Error).why}`);
    }
    const header = JSON.parse(sealed.line.toString('utf8')) as SealedFileHeader;
    let back: Buffer;
    try {
      back = await this.open('key-check', header, Buffer.concat(sealed.ciphertext), '(key check)');
    } catch (err) {
      // Said as the delivery would say it, less the file name a probe does not have.
      throw new SpoolKeyError(`a data key from ${this.key.describe} does not open again: ${(err as Error).message.replace(/^spool file \(key check\) (cannot be opened: )?/, '')}`);
    }
    if (!back.equals(probe)) throw new SpoolSealError('spool key check: the probe did not open to what was sealed');
  }
}

/** The key a sealed file's line names, in words. */
export function describeSealedKey(header: SealedFileHeader): string {
  return header.sealed.keyring === 'aws-kms' ? `KMS key ${header.sealed.keyId}` : `the raw AES key with fingerprint ${header.sealed.keyId}`;
}

/** What went wrong opening a file, as one of our errors: what ours already are, else the ciphertext did not verify. */
function openFailure(err: unknown, path: string): Error {
  if (err instanceof SpoolSealError || err instanceof SpoolKeyError) return err;
  return new SpoolSealError(`spool file ${path} does not open: ${(err as Error).message} (tampered, cut short or damaged); not delivered`);
}

async function writeAt(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let off = 0; off < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, position + off);
    if (bytesWritten <= 0) throw new Error('spool write made no progress');
    off += bytesWritten;
  }
}

/** A streamed file being sealed: plaintext in (`write`), ciphertext into the file; `end` writes the final line. */
export class SealingFile {
  private written = 0;
  private plaintext = 0;
  private failed: Error | undefined;
  private writing: Promise<void> = Promise.resolve();
  private readonly ended: Promise<void>;
  /** Rejects with the first failure: whoever waits on the stream waits on this too (a paused stream never drains). */
  private readonly broken: Promise<never>;
  private breakWith!: (err: Error) => void;

  constructor(
    private readonly fh: FileHandle,
    private readonly stream: NodeJS.ReadWriteStream,
    private readonly at: number,
    private readonly line: (plaintextLength: number) => Buffer,
  ) {
    this.broken = new Promise<never>((_, reject) => (this.breakWith = reject));
    this.broken.catch(() => undefined);
    // Each ciphertext chunk is written in order; the SDK's stream waits (paused) while the disk takes it.
    stream.on('data', (c: Buffer) => {
      // Given up (destroy): the rest is dropped so that the SDK's stream runs to its end.
      if (this.failed) return;
      stream.pause();
      const position = this.at + this.written;
      this.written += c.length;
      this.writing = this.writing.then(() => writeAt(fh, c, position)).then(
        () => void stream.resume(),
        (err: Error) => this.fail(err),
      );
    });
    this.ended = new Promise<void>((resolve, reject) => {
      stream.once('end', resolve);
      stream.on('error', reject);
    });
    this.ended.catch(() => undefined);
    stream.on('error', (err: Error) => this.fail(err));
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    this.breakWith(err);
  }

  /** Plaintext in; resolves when the SDK's stream can take more. */
  async write(buf: Buffer): Promise<void> {
    if (this.failed) throw this.failed;
    let room = true;
    for (const part of atFrames(buf, this.plaintext)) room = this.stream.write(part);
    this.plaintext += buf.length;
    if (!room) await Promise.race([once(this.stream as unknown as NodeJS.EventEmitter, 'drain'), this.ended, this.broken]);
    if (this.failed) throw this.failed;
  }

  /** The last frame, every ciphertext byte on its way to the file, then the line with the plaintext length. */
  async end(): Promise<void> {
    this.stream.end();
    await Promise.race([this.ended, this.broken]);
    await this.writing;
    if (this.failed) throw this.failed;
    await writeAt(this.fh, this.line(this.plaintext), 0);
  }

  /**
   * Gives up (the message was refused or failed); the file is the caller's. The SDK's stream is ended and drained, not
   * destroyed: it pipes its inner streams without a callback, so tearing them down mid-way throws 'Premature close'
   * out of the process.
   */
  destroy(): void {
    this.fail(new Error('sealing abandoned'));
    this.stream.resume();
    this.stream.end();
  }
}
