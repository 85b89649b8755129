import type { DeliveryMetrics } from '../observability/metrics.js';
import type { GatewayRuntime } from '../runtime/settings.js';

/**
 * What the accepting thread and its delivery thread (worker/thread.ts) say to each other. The thread owns no
 * output of its own: its log lines and metric events travel here and leave through the process's one logger and
 * one /metrics registry, so operators see one gateway, whichever thread did the work.
 */

export interface DeliveryThreadData {
  runtime: GatewayRuntime;
  /** BullMQ prefix of this node's queues. */
  prefix: string;
  nodeId: string;
  log: { name: string; level: string };
}

/** A DeliveryMetrics call, as its method name and arguments. */
export type MetricEvent = { [K in keyof DeliveryMetrics]: [K, ...Parameters<DeliveryMetrics[K]>] }[keyof DeliveryMetrics];

export type FromThread =
  | { t: 'started' }
  | { t: 'start-failed'; message: string }
  | { t: 'log'; lines: string }
  | { t: 'metrics'; events: MetricEvent[] }
  | { t: 'stopped' };

export type ToThread = { t: 'stop' };
