import { parentPort, workerData } from 'node:worker_threads';
import { spoolSealFor } from './seal-keys.js';
import { ownBuffer, type FromSealThread, type SealThreadData, type ToSealThread } from './seal-thread.js';

/** Runs inside the spool sealing thread (seal-thread.ts): seals what it is sent, touches no file. */

const port = parentPort;
if (!port) throw new Error('gateway/spool/seal-thread-entry.ts runs only as a worker thread');
const data = workerData as SealThreadData;
const post = (m: FromSealThread, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

try {
  const seal = spoolSealFor(data.encryption, { source: data.source, requestTimeoutMs: data.requestTimeoutMs, nodeId: data.nodeId, onDataKey: (op) => post({ t: 'data-key', op }) })!;
  // Its first data key now, not in the first round's way; each next one before the current one is too old.
  await seal.check();
  seal.renewAhead((err) => post({ t: 'renew-failed', message: err.message }));
  port.on('message', (m: ToSealThread) => {
    if (m.t !== 'seal') return;
    const plaintext = Buffer.from(m.plaintext.buffer, m.plaintext.byteOffset, m.plaintext.byteLength);
    seal.seal(m.fileId, [plaintext], plaintext.length).then(
      (s) => {
        const ciphertext = ownBuffer(s.ciphertext, s.bytes - s.line.length);
        const line = ownBuffer([s.line], s.line.length);
        post({ t: 'sealed', id: m.id, line, ciphertext }, [ciphertext.buffer as ArrayBuffer, line.buffer as ArrayBuffer]);
      },
      (err: Error) => post({ t: 'failed', id: m.id, name: err.name, message: err.message }),
    );
  });
  post({ t: 'ready' });
} catch (err) {
  post({ t: 'start-failed', message: (err as Error).message });
}
