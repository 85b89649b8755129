import { open, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { BatchWriter, type BatchEvents, type Sealer } from './batch.js';
import type { SpoolDirectory } from './directory.js';
import { encodeRecordLine, spoolFileName, type SpoolFile, type SpoolRecord } from './format.js';
import type { SpareEvents } from './spares.js';
import type { SealingFile, SpoolSeal } from './seal.js';

/** Gathered in memory before the first write (per message being received): most mail is one write. */
export const SMALL_MESSAGE_BYTES = 256 * 1024;

/** For logs and metrics; called synchronously from the spool's paths, so they must be cheap and must not throw. */
export interface SpoolEvents extends SpareEvents, BatchEvents {}

/**
 * A received message's bytes are in `file` (shared with the other messages of its batch); `durable` settles once the
 * disk has them and the file's name. For a streamed message both happened before `receive` resolved.
 */
export type Received =
  | { ok: true; dataLength: number; file: SpoolFile; durable: Promise<void> }
  | { ok: false; reason: 'oversized'; dataLength: number }
  /** `check` found the first bytes unfit to store: `why` says how. */
  | { ok: false; reason: 'refused'; why: string; dataLength: number };

/** Writes all of `buf` (a short write on a regular file is rare but allowed). */
async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  for (let off = 0; off < buf.length; ) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, null);
    if (bytesWritten <= 0) throw new Error('spool write made no progress');
    off += bytesWritten;
  }
}

const DURABLE = Promise.resolve();

/** The message's own stream failed or ended early (a client gone mid-DATA, a replay source that turned out bad). */
export class BodyError extends Error {
  override name = 'BodyError';
}

/**
 * The accepting side of the spool: a message's DATA onto disk behind its record line, never held whole.
 *
 * The first SMALL_MESSAGE_BYTES are gathered in memory, so a typical message is written whole into a batch file with
 * the others that ended meanwhile (batch.ts: one disk flush for all of them). A bigger one streams on from there into
 * a file of its own in `incoming/`, is fsync'd, renamed into `messages/`, and shares a directory fsync with the renames
 * that finished before it started (GroupSync); whatever is left in `incoming/` after a crash was never acknowledged
 * and is dropped at the next start.
 */
export class SpoolWriter {
  private readonly batches: BatchWriter;

  /** Seals new files when spool encryption is on (seal.ts); undefined: files hold plaintext. */
  private readonly seal: SpoolSeal | undefined;

  constructor(
    private readonly directory: SpoolDirectory,
    events: BatchEvents = {},
    seal?: SpoolSeal,
    /** Seals batch files instead of `seal` itself (on the sealing thread, seal-thread.ts). */
    sealBatch?: Sealer,
  ) {
    this.seal = seal?.sealsNewFiles ? seal : undefined;
    const s = this.seal;
    const sealer = s ? (sealBatch ?? ((id, plaintext, bytes) => s.seal(id, plaintext, bytes))) : undefined;
    this.batches = new BatchWriter(directory.messagesDir, () => directory.messagesDirSync.sync(), directory.spares, events, sealer);
  }

  /** True for a file of this writer that has no jobs yet by design: a spare, or one on its way to disk. */
  owns(fileId: string): boolean {
    return this.batches.owns(fileId);
  }

  /**
   * Streams DATA to disk behind the record line; resolves once its bytes are in a file. Past `limitBytes` writing
   * stops and the rest of DATA is drained and dropped, so an oversized message never costs more than the limit in
   * disk and nothing in memory. `check` judges DATA by its first bytes (the first chunk); what it finds refuses the
   * message the same way. Rejects (nothing kept) when the stream fails or ends without its end of data (BodyError),
   * or when the disk fails.
   */
  async receive(record: SpoolRecord, data: Readable, limitBytes: number, check?: (head: Buffer) => string | undefined): Promise<Received> {
    const id = record.envelope.messageId;
    // Named only for a message that turns out to need streaming: most never do.
    let tmp = '';
    let fh: FileHandle | undefined;
    let created = false;
    // A streamed message's file sealed as it streams, when encryption is on.
    let sealing: SealingFile | undefined;
    // DATA gathered in memory; the record line is written first only if the message turns out to need streaming.
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let dataLength = 0;
    let dropped = false;
    let why: string | undefined;
    const flush = async () => {
      if (!fh) {
        tmp = join(this.directory.incomingDir, spoolFileName(id));
        fh = await open(tmp, 'wx');
        created = true;
        pending.unshift(encodeRecordLine(record));
        pendingBytes += pending[0]!.length;
        if (this.seal) sealing = await this.seal.sealInto(fh, id, pending[0]!.length + limitBytes);
      }
      const buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      if (sealing) await sealing.write(buf);
      else await writeAll(fh, buf);
    };
    const drop = async () => {
      dropped = true;
      pending = [];
      pendingBytes = 0;
      const f = fh;
      fh = undefined;
      sealing?.destroy();
      sealing = undefined;
      if (f) await f.close();
      if (created) await unlink(tmp);
      created = false;
    };
    // The stream's own failure is the body's, not the disk's: the intake refuses the two differently.
    let bodyFailed = false;
    const onError = () => (bodyFailed = true);
    data.once('error', onError);
    try {
      for await (const chunk of data as AsyncIterable<Buffer>) {
        const first = dataLength === 0 && chunk.length > 0;
        dataLength += chunk.length;
        if (dropped) continue;
        if (first && check && (why = check(chunk)) !== undefined) {
          await drop();
          continue;
        }
        if (dataLength > limitBytes) {
          await drop();
          continue;
        }
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= SMALL_MESSAGE_BYTES) await flush();
      }
      // A client that vanished mid-DATA can end the stream without an error; never spool a truncated message.
      if (!data.readableEnded) throw new BodyError('DATA ended before its terminating dot');
      if (why !== undefined) return { ok: false, reason: 'refused', why, dataLength };
      if (dropped) return { ok: false, reason: 'oversized', dataLength };
      if (!fh) {
        const { file, durable } = await this.batches.write(record, pending, pendingBytes);
        return { ok: true, dataLength, file, durable };
      }
      await flush();
      await sealing?.end();
      await fh.sync();
      // Renamed while still open (the descriptor needs no name); the close runs alongside the directory fsync.
      await rename(tmp, this.directory.path(id));
      created = false;
      const f = fh;
      fh = undefined;
      // Bytes are durable and the name is in place: a failing close can no longer lose or corrupt anything.
      await Promise.all([f.close().catch(() => undefined), this.directory.messagesDirSync.sync()]);
      return { ok: true, dataLength, file: { id, entries: [{ record, at: 0 }], ...(sealing ? { sealed: true } : {}) }, durable: DURABLE };
    } catch (err) {
      sealing?.destroy();
      if (fh) await fh.close().catch(() => undefined);
      if (created) await rm(tmp, { force: true });
      throw bodyFailed ? new BodyError((err as Error).message) : err;
    } finally {
      data.off('error', onError);
    }
  }
}
