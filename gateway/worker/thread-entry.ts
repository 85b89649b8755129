import { parentPort, workerData } from 'node:worker_threads';
import { childLogger, lineLogger } from '../runtime/log.js';
import { SpoolDirectory } from '../spool/directory.js';
import { SpoolReader } from '../spool/reader.js';
import { spoolSealFor } from '../spool/seal-keys.js';
import type { DeliveryThreadData, FromThread, MetricEvent, ToThread } from './thread-protocol.js';
import { DeliveryWorkers } from './worker.js';

/**
 * Runs inside the delivery thread (started by worker/thread.ts): the same DeliveryWorkers `mailroom worker` runs,
 * on the same spool directory and node queues, with its log lines and metric events sent to the accepting thread.
 */

const port = parentPort;
if (!port) throw new Error('gateway/worker/thread-entry.ts runs only as a worker thread');
const data = workerData as DeliveryThreadData;
const post = (m: FromThread) => port.postMessage(m);

// Lines and events of one event-loop turn travel together: one message per turn, not one per line.
let lines = '';
let events: MetricEvent[] = [];
let flushing = false;
function flush(): void {
  flushing = false;
  if (lines) post({ t: 'log', lines });
  if (events.length) post({ t: 'metrics', events });
  lines = '';
  events = [];
}
function queue(): void {
  if (!flushing) {
    flushing = true;
    setImmediate(flush);
  }
}

const log = childLogger(lineLogger((line) => ((lines += line), queue()), data.log.name, data.log.level), { node: data.nodeId, thread: 'delivery' });
const record = (e: MetricEvent) => (events.push(e), queue());
const metrics = {
  deliveryStarted: () => record(['deliveryStarted']),
  deliveryFinished: (result: 'delivered' | 'retry' | 'failed') => record(['deliveryFinished', result]),
  uploaded: (bytes: number, seconds: number) => record(['uploaded', bytes, seconds]),
  awsError: (service: 's3' | 'kms' | 'sns', operation: string, error: string) => record(['awsError', service, operation, error]),
  notificationRefused: (error: string) => record(['notificationRefused', error]),
};

const spool = new SpoolDirectory(data.runtime.settings.spoolDir);
let workers: DeliveryWorkers | undefined;

port.on('message', (m: ToThread) => {
  if (m.t !== 'stop') return;
  void (async () => {
    try {
      await workers?.stop();
      await spool.close();
    } finally {
      flush();
      post({ t: 'stopped' });
      port.close();
    }
  })();
});

try {
  // The accepting thread owns incoming/: never clear it from here.
  await spool.init({ clearIncoming: false });
  const { settings, source } = data.runtime;
  const seal = spoolSealFor(settings.spool.encryption, { source, requestTimeoutMs: settings.upload.requestTimeoutMs, nodeId: data.nodeId, onDataKey: (op) => log.info(`spool data key ${op}`) });
  workers = new DeliveryWorkers(data.runtime, new SpoolReader(spool, seal), log, { prefix: data.prefix, metrics });
  workers.start();
  post({ t: 'started' });
} catch (err) {
  flush();
  post({ t: 'start-failed', message: (err as Error).message });
}
