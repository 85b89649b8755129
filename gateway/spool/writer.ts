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
    const head = await gatherHead(data, limitBytes, check);
    if (!head.ended) return this.stream(record, data, head, limitBytes);
    if (head.why !== undefined) return { ok: false, reason: 'refused', why: head.why, dataLength: head.dataLength };
    if (head.dropped) return { ok: false, reason: 'oversized', dataLength: head.dataLength };
    // The whole message is in memory: into a batch file with the others that ended meanwhile (batch.ts).
    const { file, durable } = await this.batches.write(record, head.chunks, head.bytes);
    return { ok: true, dataLength: head.dataLength, file, durable };
  }

  /** The rest of a message too big to gather: into a file of its own in incoming/, fsync'd, renamed into messages/. */
  private async stream(record: SpoolRecord, data: Readable, head: Head, limitBytes: number): Promise<Received> {
    const id = record.envelope.messageId;
    const tmp = join(this.directory.incomingDir, spoolFileName(id));
    let fh: FileHandle | undefined;
    let created = false;
    // A streamed message's file sealed as it streams, when encryption is on.
    let sealing: SealingFile | undefined;
    const recordLine = encodeRecordLine(record);
    let pending: Buffer[] = [recordLine, ...head.chunks];
    let dataLength = head.dataLength;
    let dropped = false;
    const flush = async () => {
      if (!fh) {
        fh = await open(tmp, 'wx');
        created = true;
        if (this.seal) sealing = await this.seal.sealInto(fh, id, recordLine.length + limitBytes);
      }
      const buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
      pending = [];
      if (sealing) await sealing.write(buf);
      else await writeAll(fh, buf);
    };
    const drop = async () => {
      dropped = true;
      pending = [];
      const f = fh;
      fh = undefined;
      sealing?.destroy();
      sealing = undefined;
      if (f) await f.close();
      if (created) await unlink(tmp);
      created = false;
    };
    // The disk's failures are told from the stream's (a BodyError): the intake refuses the two differently.
    let diskFailed = false;
    const disk = async <T>(step: () => Promise<T>): Promise<T> => {
      try {
        return await step();
      } catch (err) {
        diskFailed = true;
        throw err;
      }
    };
    try {
      await disk(flush);
      let pendingBytes = 0;
      for await (const chunk of data as AsyncIterable<Buffer>) {
        dataLength += chunk.length;
        if (dropped) continue;
        if (dataLength > limitBytes) {
          await disk(drop);
          continue;
        }
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= SMALL_MESSAGE_BYTES) {
          pendingBytes = 0;
          await disk(flush);
        }
      }
      // A client that vanished mid-DATA can end the stream without an error; never spool a truncated message.
      if (!data.readableEnded) throw new BodyError('DATA ended before its terminating dot');
      if (dropped) return { ok: false, reason: 'oversized', dataLength };
      await disk(async () => {
        await flush();
        await sealing?.end();
        await fh!.sync();
        // Renamed while still open (the descriptor needs no name); the close runs alongside the directory fsync.
        await rename(tmp, this.directory.path(id));
        created = false;
        const f = fh!;
        fh = undefined;
        // Bytes are durable and the name is in place: a failing close can no longer lose or corrupt anything.
        await Promise.all([f.close().catch(() => undefined), this.directory.messagesDirSync.sync()]);
      });
      return { ok: true, dataLength, file: { id, entries: [{ record, at: 0 }], ...(sealing ? { sealed: true } : {}) }, durable: DURABLE };
    } catch (err) {
      sealing?.destroy();
      if (fh) await fh.close().catch(() => undefined);
      if (created) await rm(tmp, { force: true });
      throw diskFailed || err instanceof BodyError ? err : new BodyError((err as Error).message);
    }
  }
}

/** The first bytes of a message: all of it when it is small (`ended`), else the first SMALL_MESSAGE_BYTES or more. */
type Head = { ended: boolean; chunks: Buffer[]; bytes: number; dataLength: number; dropped: boolean; why?: string };

/**
 * Reads DATA by its events until it ends or SMALL_MESSAGE_BYTES are in hand (then pauses it for the streamed path).
 * Most mail ends here: events cost less per message than an async iterator over the stream.
 */
function gatherHead(data: Readable, limitBytes: number, check?: (head: Buffer) => string | undefined): Promise<Head> {
  return new Promise<Head>((resolve, reject) => {
    const head: Head = { ended: false, chunks: [], bytes: 0, dataLength: 0, dropped: false };
    const drop = () => {
      head.dropped = true;
      head.chunks = [];
      head.bytes = 0;
    };
    const onData = (chunk: Buffer) => {
      const first = head.dataLength === 0 && chunk.length > 0;
      head.dataLength += chunk.length;
      if (head.dropped) return;
      if (first && check && (head.why = check(chunk)) !== undefined) return drop();
      if (head.dataLength > limitBytes) return drop();
      head.chunks.push(chunk);
      head.bytes += chunk.length;
      if (head.bytes >= SMALL_MESSAGE_BYTES) {
        data.pause();
        finish();
        resolve(head);
      }
    };
    const onEnd = () => {
      finish();
      head.ended = true;
      resolve(head);
    };
    const onError = (err: Error) => {
      finish();
      reject(new BodyError(err.message));
    };
    // A client that vanished mid-DATA can end the stream without an error; never spool a truncated message.
    const onClose = () => {
      if (data.readableEnded) return;
      finish();
      reject(new BodyError('DATA ended before its terminating dot'));
    };
    const finish = () => {
      data.off('data', onData);
      data.off('end', onEnd);
      data.off('error', onError);
      data.off('close', onClose);
    };
    data.on('data', onData);
    data.once('end', onEnd);
    data.once('error', onError);
    data.once('close', onClose);
  });
}
