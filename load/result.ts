/**
 * The figures of a finished run, as one object: what `--json` prints, what the final table and the HTML report show.
 * Latencies are milliseconds (to the microsecond), rates messages per second.
 */
import { performance } from 'node:perf_hooks';
import type { ErrorClass } from './errors.js';
import type { LatencyName, LatencySummary, LatencyTimeline, Recorder } from './recorder.js';

export const RESULT_FORMAT = 1;

export interface LoadResult {
  mailroomLoad: typeof RESULT_FORMAT;
  command: 'smtp' | 'upload';
  startedAt: string;
  endedAt: string;
  endedBy: 'count' | 'duration' | 'interrupted';
  /** What was asked for, as given (and the defaults filled in). */
  parameters: Record<string, string | number | boolean | string[] | null>;
  seconds: { run: number; sending: number };
  counts: {
    /** Messages whose time came (open loop) or that were started (closed loop). */
    scheduled: number;
    sent: number;
    /** SMTP: answered 2xx. Upload: stored, and announced when the rule has a topic. */
    accepted: number;
    failed: number;
    /** Sent, and stopped by Ctrl-C / SIGTERM before an answer: neither accepted nor failed. */
    interrupted: number;
    /** Open loop: due, but no connection was free before the run ended. */
    unsent: number;
    /** Upload: objects written; and notifications published. */
    stored?: number;
    announced?: number;
    /** Copies (one per message and rule) the run waited for, and how many it saw. */
    deliveriesExpected: number;
    delivered: number;
    deliveriesMissing: number;
    duplicateNotifications: number;
    foreignNotifications: number;
    /** SMTP: recipients refused in messages that were still accepted (nodemailer reports them with the success). */
    recipientsRefused?: number;
    connectionsOpened?: number;
    bytesSent: number;
  };
  /** Per second of the sending phase (first message started → last answered). */
  throughput: { sent: number; accepted: number; delivered: number };
  latency: Partial<Record<LatencyName, LatencySummary>>;
  /** [percentile, ms] over the whole run. */
  distribution: Partial<Record<LatencyName, Array<[number, number]>>>;
  timeline: {
    seconds: number;
    sent: number[];
    accepted: number[];
    failed: number[];
    delivered: number[];
    latency: Partial<Record<LatencyName, LatencyTimeline>>;
    errors: Partial<Record<ErrorClass, number[]>>;
  };
  errors: {
    total: number;
    byClass: Partial<Record<ErrorClass, number>>;
    list: Array<{ class: ErrorClass; code: string; stage: string; count: number; message: string }>;
  };
  delivery: {
    /** topic: a temporary SQS queue on the rules' topics; object: HeadObject polling; none: not measured. */
    method: Array<'topic' | 'object'>;
    notes: string[];
    /** What could not be removed, with the command that removes it. */
    leftovers: Array<{ what: string; fix: string; error: string }>;
  };
}

/** What each latency means, for the table and the report. */
export const LATENCY_LABELS: Record<'smtp' | 'upload', Partial<Record<LatencyName, string>>> = {
  smtp: { accept: 'accept (end of DATA → reply)', response: 'response (due → reply, corrected for coordinated omission)', delivery: 'delivery (250 → notification or object)' },
  upload: { store: 'store (start → object written)', accept: 'upload (start → stored and announced)', response: 'response (due → announced, corrected for coordinated omission)', delivery: 'delivery (start → notification at the queue)' },
};

export interface ResultInput {
  command: 'smtp' | 'upload';
  recorder: Recorder;
  parameters: LoadResult['parameters'];
  endedBy: LoadResult['endedBy'];
  scheduled: number;
  unsent: number;
  extraCounts: Partial<LoadResult['counts']>;
  deliveriesExpected: number;
  duplicates: number;
  foreign: number;
  delivery: LoadResult['delivery'];
}

const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

export function buildResult(i: ResultInput): LoadResult {
  const r = i.recorder;
  r.tick(Number.POSITIVE_INFINITY);
  const now = performance.now();
  const runSeconds = (now - r.t0) / 1000;
  const sending = r.firstSend !== undefined && r.lastReply !== undefined ? Math.max(0.001, (r.lastReply - r.firstSend) / 1000) : 0;
  const seconds = Math.max(1, Math.ceil(runSeconds));
  const tl = r.timeline(seconds);
  const latency: LoadResult['latency'] = {};
  const distribution: LoadResult['distribution'] = {};
  const latencyTimeline: LoadResult['timeline']['latency'] = {};
  for (const name of ['accept', 'response', 'store', 'delivery'] as const) {
    const s = r.latency[name].summary();
    if (!s) continue;
    latency[name] = s;
    distribution[name] = r.latency[name].distribution();
    latencyTimeline[name] = r.latency[name].series(seconds);
  }
  const tallies = r.errorTallies();
  const byClass: LoadResult['errors']['byClass'] = {};
  for (const t of tallies) byClass[t.class] = (byClass[t.class] ?? 0) + t.count;
  const delivered = r.total('delivered');
  const rate = (n: number) => (sending > 0 ? round(n / sending, 1) : 0);
  return {
    mailroomLoad: RESULT_FORMAT,
    command: i.command,
    startedAt: r.startedAt.toISOString(),
    endedAt: new Date(r.startedAt.getTime() + (now - r.t0)).toISOString(),
    endedBy: i.endedBy,
    parameters: i.parameters,
    seconds: { run: round(runSeconds), sending: round(sending) },
    counts: {
      scheduled: i.scheduled,
      sent: r.total('sent'),
      accepted: r.total('accepted'),
      failed: r.total('failed'),
      interrupted: r.total('interrupted'),
      unsent: i.unsent,
      ...i.extraCounts,
      deliveriesExpected: i.deliveriesExpected,
      delivered,
      deliveriesMissing: Math.max(0, i.deliveriesExpected - delivered),
      duplicateNotifications: i.duplicates,
      foreignNotifications: i.foreign,
      bytesSent: r.bytesSent,
    },
    throughput: { sent: rate(r.total('sent')), accepted: rate(r.total('accepted')), delivered: rate(delivered) },
    latency,
    distribution,
    timeline: { seconds, ...tl.counts, latency: latencyTimeline, errors: tl.errors },
    errors: { total: r.errorTotal(), byClass, list: tallies.map((t) => ({ class: t.class, code: t.code, stage: t.stage, count: t.count, message: t.message })) },
    delivery: i.delivery,
  };
}
