import { Worker } from 'node:worker_threads';

/**
 * Creates empty files in a thread of its own, a group per request: one hand-over each way for the whole group.
 * Created through the thread pool, each file cost a wake-up of a pool thread and one of the event loop, and on this
 * project's machine kind (a VM) a cross-thread wake-up costs more than the create itself — that share of the accept
 * path's CPU is gone (docs/performance.md#spare-files). A create that waits for the disk stalls only this thread.
 */
const THREAD = `
const { parentPort } = require('node:worker_threads');
const { openSync } = require('node:fs');
parentPort.on('message', ({ seq, paths }) => {
  const fds = [];
  let error;
  for (const p of paths) {
    try {
      fds.push(openSync(p, 'wx'));
    } catch (e) {
      error = { message: e.message, code: e.code };
      break;
    }
  }
  parentPort.postMessage({ seq, fds, error });
});
`;

export interface MadeFiles {
  /** Descriptors, open for writing, of the first `fds.length` paths asked for. */
  fds: number[];
  /** Why the next path could not be created (the rest were not tried). */
  error?: NodeJS.ErrnoException;
}

export class SpareMaker {
  private thread: Worker | undefined;
  private seq = 0;
  private readonly waiting = new Map<number, (made: MadeFiles) => void>();

  /** Creates each path exclusively (`wx`), in order, stopping at the first failure. */
  make(paths: string[]): Promise<MadeFiles> {
    const thread = this.start();
    const seq = ++this.seq;
    return new Promise<MadeFiles>((resolve) => {
      this.waiting.set(seq, resolve);
      thread.postMessage({ seq, paths });
    });
  }

  private start(): Worker {
    if (this.thread) return this.thread;
    // The descriptors belong to the main thread once handed over: untracked, the thread neither warns when a closed
    // one's number comes back nor closes, when it exits, numbers the main thread has since reused.
    const thread = new Worker(THREAD, { eval: true, trackUnmanagedFds: false });
    // Idle, it must not keep the process alive; while a group is being made, the caller's promise does.
    thread.unref();
    thread.on('message', ({ seq, fds, error }: { seq: number; fds: number[]; error?: { message: string; code?: string } }) => {
      const resolve = this.waiting.get(seq);
      this.waiting.delete(seq);
      resolve?.({ fds, ...(error ? { error: Object.assign(new Error(error.message), { code: error.code }) } : {}) });
    });
    const fail = (err: Error) => {
      this.thread = undefined;
      for (const resolve of this.waiting.values()) resolve({ fds: [], error: err });
      this.waiting.clear();
    };
    thread.on('error', fail);
    thread.on('exit', (code) => fail(new Error(`the spare file thread exited (code ${code})`)));
    this.thread = thread;
    return thread;
  }

  async close(): Promise<void> {
    const thread = this.thread;
    this.thread = undefined;
    await thread?.terminate();
  }
}
