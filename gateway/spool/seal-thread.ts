import type { Worker } from 'node:worker_threads';
import type { GatewaySpoolEncryption } from '../../shared/config/gateway.js';
import { SpoolKeyError, SpoolSealError, type SealedBytes } from './seal.js';
import { moduleThread } from '../runtime/module-thread.js';

/**
 * Batch files sealed on a thread of their own, so that sealing costs the SMTP thread a copy and a message instead of
 * the Encryption SDK's per-file work. That work (its streams, the cache's hashing, HKDF, about 0.5 ms of CPU per file
 * whatever its size) is paid per batch file, and batch files of a busy gateway hold only a few messages each: done on
 * the SMTP thread it took a third of the accept rate (docs/spool-encryption.md). A round trip here costs that thread
 * about 30 µs.
 *
 * The thread has a seal of its own (the same key and node, its own data key cache: a second data key, made at start);
 * nothing on disk is touched there. Should it die, the seals it held fail — their messages are refused with 451, as
 * for any failed write — and the next seal starts a new one.
 */

export interface SealThreadData {
  encryption: GatewaySpoolEncryption;
  /** The config file, for errors. */
  source: string;
  requestTimeoutMs: number;
  nodeId: string;
}

export type ToSealThread = { t: 'seal'; id: number; fileId: string; plaintext: Uint8Array };
export type FromSealThread =
  | { t: 'ready' }
  | { t: 'start-failed'; message: string }
  | { t: 'sealed'; id: number; line: Uint8Array; ciphertext: Uint8Array }
  | { t: 'failed'; id: number; name: string; message: string }
  | { t: 'data-key'; op: 'made' | 'opened' }
  | { t: 'renew-failed'; message: string };

/** `chunks` in one buffer of its own (never a slice of Node's shared pool, which a transfer would take away). */
export function ownBuffer(chunks: Buffer[], bytes: number): Buffer {
  const out = Buffer.allocUnsafeSlow(bytes);
  let at = 0;
  for (const c of chunks) at += c.copy(out, at);
  return out;
}

function entryWorker(data: SealThreadData): Worker {
  return moduleThread(import.meta.url, 'seal-thread-entry', data);
}

const ERRORS: Record<string, new (message: string) => Error> = { SpoolKeyError, SpoolSealError };

/** What the thread reports, for logs. */
export interface SealThreadEvents {
  dataKey?(op: 'made' | 'opened'): void;
  /** The next data key could not be made ahead (seal.ts renewAhead). */
  renewFailed?(why: string): void;
  /** The thread stopped unexpectedly (the next seal starts a new one). */
  died?(why: string): void;
}

export class SealThread {
  private worker: Worker | undefined;
  private ready: Promise<Worker> | undefined;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (s: SealedBytes) => void; reject: (err: Error) => void }>();
  private closed = false;

  private constructor(
    private readonly data: SealThreadData,
    private readonly events: SealThreadEvents,
  ) {}

  /** Resolves once the thread has its key and a first data key; rejects with its own start-up error. */
  static async start(data: SealThreadData, events: SealThreadEvents = {}): Promise<SealThread> {
    const t = new SealThread(data, events);
    await t.spawn();
    return t;
  }

  private spawn(): Promise<Worker> {
    const worker = entryWorker(this.data);
    this.worker = worker;
    this.ready = new Promise<Worker>((resolve, reject) => {
      let started = false;
      worker.on('message', (m: FromSealThread) => {
        switch (m.t) {
          case 'ready':
            started = true;
            resolve(worker);
            break;
          case 'start-failed':
            reject(new Error(m.message));
            void worker.terminate();
            break;
          case 'sealed': {
            const p = this.pending.get(m.id);
            this.pending.delete(m.id);
            const line = Buffer.from(m.line.buffer, m.line.byteOffset, m.line.byteLength);
            const ciphertext = Buffer.from(m.ciphertext.buffer, m.ciphertext.byteOffset, m.ciphertext.byteLength);
            p?.resolve({ line, ciphertext: [ciphertext], bytes: line.length + ciphertext.length });
            break;
          }
          case 'failed': {
            const p = this.pending.get(m.id);
            this.pending.delete(m.id);
            const E = ERRORS[m.name] ?? Error;
            p?.reject(Object.assign(new E(m.message), m.name in ERRORS ? {} : { name: m.name }));
            break;
          }
          case 'data-key':
            this.events.dataKey?.(m.op);
            break;
          case 'renew-failed':
            this.events.renewFailed?.(m.message);
            break;
        }
      });
      const lost = (why: string) => {
        if (this.worker === worker) {
          this.worker = undefined;
          this.ready = undefined;
        }
        if (!started) reject(new Error(`the spool sealing thread stopped before it was ready: ${why}`));
        for (const [id, p] of this.pending) {
          this.pending.delete(id);
          p.reject(new Error(`the spool sealing thread stopped: ${why}`));
        }
        if (!this.closed && started) this.events.died?.(why);
      };
      worker.on('error', (err) => lost(err.message));
      worker.on('exit', (code) => lost(`exit code ${code}`));
    });
    return this.ready;
  }

  /** A batch file's plaintext sealed for `fileId` on the thread (seal.ts SpoolSeal.seal). */
  async seal(fileId: string, plaintext: Buffer[], bytes: number): Promise<SealedBytes> {
    if (this.closed) throw new Error('the spool sealing thread is closed');
    const worker = await (this.ready ?? this.spawn());
    const id = this.nextId++;
    const whole = ownBuffer(plaintext, bytes);
    return new Promise<SealedBytes>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ t: 'seal', id, fileId, plaintext: whole } satisfies ToSealThread, [whole.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
}
