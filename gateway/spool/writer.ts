import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { encodeRecordLine, spoolFileName, type SpoolFile, type SpoolRecord } from './format.js';

/**
 * Durable writes of whole small messages, in batch files, by one worker thread.
 *
 * Why batch files: the disk's cost is one journal commit per fdatasync'd file, whatever its size (about 0.5 ms per
 * file here, against 2 ms for twenty messages in one file), and that — not CPU — capped the accept rate. So every
 * message whose DATA ended while the previous batch was on disk goes into one file (up to MAX_FILE_ENTRIES /
 * MAX_FILE_BYTES; a bigger backlog makes several files in the same round): written in `incoming/`, fdatasync'd,
 * renamed into `messages/`, and `messages/` fsync'd once per round. A message is reported durable only after all of
 * that, so a `250` means exactly what it meant with one file per message.
 *
 * Why a thread: the round is a dozen blocking calls; done with synchronous calls in one thread that answers once,
 * they cost the event loop one message post each way instead of a libuv pool round trip per call.
 *
 * A file whose own step fails fails all its messages (and its incoming file is removed); a failed directory fsync
 * fails every file of the round — they are then in `messages/` but not known durable, the clients hear 451 and
 * resend, and recovery may also deliver the spooled copies (at-least-once, as when a Redis add times out).
 */

/** Messages per batch file at most: bounds what one failed delivery keeps on disk and what recovery re-reads. */
const MAX_FILE_ENTRIES = 128;
const MAX_FILE_BYTES = 8 * 1024 * 1024;

/** The thread's code, plain CommonJS so it runs the same under tsx and from dist/. */
const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { O_WRONLY, O_CREAT, O_EXCL } = fs.constants;
function writeAll(fd, chunks) {
  let total = 0;
  for (const c of chunks) total += c.length;
  let skip = fs.writevSync(fd, chunks);
  if (skip === total) return;
  for (const c of chunks) {
    if (skip >= c.length) { skip -= c.length; continue; }
    for (let off = skip; off < c.length; ) {
      const n = fs.writeSync(fd, c, off, c.length - off, null);
      if (n <= 0) throw new Error('spool write made no progress');
      off += n;
    }
    skip = 0;
  }
}
parentPort.on('message', ({ id, files }) => {
  const errors = files.map(() => null);
  const fds = files.map(() => -1);
  const fail = (i, err) => { if (!errors[i]) errors[i] = (err && err.message) || String(err); };
  for (let i = 0; i < files.length; i++) {
    try {
      fds[i] = fs.openSync(files[i].tmp, O_WRONLY | O_CREAT | O_EXCL, 0o666);
      writeAll(fds[i], files[i].chunks);
      fs.fdatasyncSync(fds[i]);
    } catch (err) { fail(i, err); }
  }
  let renamed = 0;
  for (let i = 0; i < files.length; i++) {
    if (errors[i]) continue;
    try { fs.renameSync(files[i].tmp, files[i].final); renamed++; } catch (err) { fail(i, err); }
  }
  for (let i = 0; i < files.length; i++) {
    if (fds[i] >= 0) { try { fs.closeSync(fds[i]); } catch {} }
    if (errors[i]) { try { fs.unlinkSync(files[i].tmp); } catch {} }
  }
  if (renamed > 0) {
    let dfd = -1;
    try {
      dfd = fs.openSync(workerData.messagesDir, 'r');
      fs.fsyncSync(dfd);
    } catch (err) {
      for (let i = 0; i < files.length; i++) fail(i, new Error('fsync of the messages directory failed: ' + ((err && err.message) || err)));
    } finally {
      if (dfd >= 0) { try { fs.closeSync(dfd); } catch {} }
    }
  }
  parentPort.postMessage({ id, errors });
});
`;

interface Pending {
  record: SpoolRecord;
  data: Buffer;
  resolve: (file: SpoolFile) => void;
  reject: (err: Error) => void;
}

interface FileJob {
  file: SpoolFile;
  members: Pending[];
  tmp: string;
  final: string;
  chunks: Uint8Array[];
}

export class SpoolWriter {
  private worker: Worker | undefined;
  private queue: Pending[] = [];
  private inFlight: FileJob[] | undefined;
  private roundId = 0;

  constructor(
    private readonly incomingDir: string,
    private readonly messagesDir: string,
  ) {}

  /** Resolves with the spool file that holds the message once that file is durable in `messages/`. */
  write(record: SpoolRecord, data: Buffer): Promise<SpoolFile> {
    return new Promise<SpoolFile>((resolve, reject) => {
      this.queue.push({ record, data, resolve, reject });
      if (!this.inFlight) this.send();
    });
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(THREAD, { eval: true, workerData: { messagesDir: this.messagesDir } });
    w.unref();
    w.on('message', (m: { id: number; errors: Array<string | null> }) => {
      const round = this.inFlight;
      this.inFlight = undefined;
      w.unref();
      if (round && m.id === this.roundId) {
        round.forEach((f, i) => {
          const e = m.errors[i];
          for (const p of f.members) {
            if (e) p.reject(new Error(e));
            else p.resolve(f.file);
          }
        });
      }
      if (this.queue.length > 0) this.send();
    });
    const broken = (err: Error) => {
      if (this.worker === w) this.worker = undefined;
      const round = this.inFlight ?? [];
      this.inFlight = undefined;
      for (const f of round) for (const p of f.members) p.reject(new Error(`spool writer thread failed: ${err.message}`));
      if (this.queue.length > 0) this.send();
    };
    w.on('error', broken);
    w.on('exit', (code) => broken(new Error(`exited with code ${code}`)));
    this.worker = w;
    return w;
  }

  /** Cuts the queue into batch files; each entry is its record line (with dataLength) and DATA in one private copy. */
  private files(pending: Pending[]): FileJob[] {
    const out: FileJob[] = [];
    let cur: FileJob | undefined;
    let bytes = 0;
    for (const p of pending) {
      const line = encodeRecordLine({ ...p.record, dataLength: p.data.length });
      const chunk = new Uint8Array(line.length + p.data.length);
      chunk.set(line, 0);
      chunk.set(p.data, line.length);
      if (!cur || cur.members.length >= MAX_FILE_ENTRIES || bytes + chunk.length > MAX_FILE_BYTES) {
        const id = p.record.envelope.messageId;
        cur = { file: { id, entries: [] }, members: [], tmp: join(this.incomingDir, spoolFileName(id)), final: join(this.messagesDir, spoolFileName(id)), chunks: [] };
        out.push(cur);
        bytes = 0;
      }
      cur.file.entries.push({ record: p.record, at: bytes });
      cur.members.push(p);
      cur.chunks.push(chunk);
      bytes += chunk.length;
    }
    return out;
  }

  private send(): void {
    const pending = this.queue;
    this.queue = [];
    let round: FileJob[];
    try {
      round = this.files(pending);
    } catch (err) {
      for (const p of pending) p.reject(err as Error);
      return;
    }
    this.inFlight = round;
    const id = ++this.roundId;
    try {
      const w = this.thread();
      // Referenced while a round is on its way to disk: the process must not exit under it.
      w.ref();
      w.postMessage(
        { id, files: round.map(({ tmp, final, chunks }) => ({ tmp, final, chunks })) },
        round.flatMap((f) => f.chunks.map((c) => c.buffer as ArrayBuffer)),
      );
    } catch (err) {
      this.inFlight = undefined;
      for (const f of round) for (const p of f.members) p.reject(err as Error);
    }
  }

  /** Stops the thread (pending writes are failed). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
