import { Worker } from 'node:worker_threads';

/**
 * Durable writes of whole small spool files, done in batches by one worker thread.
 *
 * Why a thread: on the accept path each async fs call is a round trip through libuv's pool, and the profile showed
 * those dispatches (open, write, rename, close, and the directory's open/fsync/close) as the largest share of the
 * gateway's main-thread CPU. The thread does a whole batch with synchronous calls and answers once: one message
 * post each way per batch instead of five or more pool round trips per message.
 *
 * Per batch — every file whose DATA ended while the previous batch was on disk: create each file in `incoming/`
 * and write it; fdatasync each (the first forces the journal commit, the rest find little left to do); rename each
 * into `messages/`; fsync `messages/` once. A file is reported done only after all of that, so the durability of
 * a `250` is exactly the one-file-at-a-time path's. A file whose own step fails is reported failed (and its
 * incoming file removed); a failed directory fsync fails every file of the batch — they are then in `messages/`
 * but not known durable, the client hears 451 and resends, and recovery may also deliver the spooled copy
 * (at-least-once, as when a Redis add times out).
 */

interface Item {
  tmp: string;
  final: string;
  data: Uint8Array;
}

/** The thread's code, plain CommonJS so it runs the same under tsx and from dist/. */
const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { O_WRONLY, O_CREAT, O_EXCL } = fs.constants;
parentPort.on('message', ({ id, items }) => {
  const errors = items.map(() => null);
  const fds = items.map(() => -1);
  const fail = (i, err) => { if (!errors[i]) errors[i] = (err && err.message) || String(err); };
  for (let i = 0; i < items.length; i++) {
    try {
      fds[i] = fs.openSync(items[i].tmp, O_WRONLY | O_CREAT | O_EXCL, 0o666);
      const data = items[i].data;
      for (let off = 0; off < data.length; ) {
        const n = fs.writeSync(fds[i], data, off, data.length - off, null);
        if (n <= 0) throw new Error('spool write made no progress');
        off += n;
      }
    } catch (err) { fail(i, err); }
  }
  for (let i = 0; i < items.length; i++) {
    if (errors[i]) continue;
    try { fs.fdatasyncSync(fds[i]); } catch (err) { fail(i, err); }
  }
  let renamed = 0;
  for (let i = 0; i < items.length; i++) {
    if (errors[i]) continue;
    try { fs.renameSync(items[i].tmp, items[i].final); renamed++; } catch (err) { fail(i, err); }
  }
  for (let i = 0; i < items.length; i++) {
    if (fds[i] >= 0) { try { fs.closeSync(fds[i]); } catch {} }
    if (errors[i]) { try { fs.unlinkSync(items[i].tmp); } catch {} }
  }
  if (renamed > 0) {
    let dfd = -1;
    try {
      dfd = fs.openSync(workerData.messagesDir, 'r');
      fs.fsyncSync(dfd);
    } catch (err) {
      for (let i = 0; i < items.length; i++) fail(i, new Error('fsync of the messages directory failed: ' + ((err && err.message) || err)));
    } finally {
      if (dfd >= 0) { try { fs.closeSync(dfd); } catch {} }
    }
  }
  parentPort.postMessage({ id, errors });
});
`;

interface Pending extends Item {
  resolve: () => void;
  reject: (err: Error) => void;
}

export class SpoolWriter {
  private worker: Worker | undefined;
  private queue: Pending[] = [];
  private inFlight: Pending[] | undefined;
  private batchId = 0;

  constructor(private readonly messagesDir: string) {}

  /** Resolves once `data` is durable at `final` and `final`'s directory entry is fsync'd. */
  write(tmp: string, final: string, data: Buffer): Promise<void> {
    // A private copy, transferred to the thread: the caller's buffer may share memory with other data.
    const copy = new Uint8Array(data.length);
    copy.set(data);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ tmp, final, data: copy, resolve, reject });
      if (!this.inFlight) this.send();
    });
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(THREAD, { eval: true, workerData: { messagesDir: this.messagesDir } });
    w.unref();
    w.on('message', (m: { id: number; errors: Array<string | null> }) => {
      const batch = this.inFlight;
      this.inFlight = undefined;
      w.unref();
      if (batch && m.id === this.batchId) {
        batch.forEach((p, i) => {
          const e = m.errors[i];
          if (e) p.reject(new Error(e));
          else p.resolve();
        });
      }
      if (this.queue.length > 0) this.send();
    });
    const broken = (err: Error) => {
      if (this.worker === w) this.worker = undefined;
      const batch = this.inFlight ?? [];
      this.inFlight = undefined;
      for (const p of batch) p.reject(new Error(`spool writer thread failed: ${err.message}`));
      if (this.queue.length > 0) this.send();
    };
    w.on('error', broken);
    w.on('exit', (code) => broken(new Error(`exited with code ${code}`)));
    this.worker = w;
    return w;
  }

  private send(): void {
    const batch = this.queue;
    this.queue = [];
    this.inFlight = batch;
    const id = ++this.batchId;
    try {
      const w = this.thread();
      // Referenced while a batch is on its way to disk: the process must not exit under it.
      w.ref();
      w.postMessage(
        { id, items: batch.map(({ tmp, final, data }) => ({ tmp, final, data })) },
        batch.map((p) => p.data.buffer as ArrayBuffer),
      );
    } catch (err) {
      this.inFlight = undefined;
      for (const p of batch) p.reject(err as Error);
    }
  }

  /** Stops the thread (pending writes are failed). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
