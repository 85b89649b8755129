import { setTimeout as sleep } from 'node:timers/promises';
import { tooBig } from './data-meter.js';
import type { ReplayPlan } from './plan.js';
import { ReplayProblem, SourceNote, type PreparedMessage, type ProblemKind, type Source, type SourceItem } from './source.js';
import type { AcceptOutcome, RefusalKind, ReplayTarget, StoredBy } from './target.js';

/**
 * The replay loop: reads the sources in order, keeps up to `concurrency` messages in hand (each prepared, planned
 * and handed to the target in its own slot), starts at most `rate` messages a second, and counts every outcome. A
 * problem with one message is counted and reported and nothing else is affected.
 */

export interface ReplayCounters {
  /** Messages found (every source item, whatever became of it). */
  messages: number;
  /** DATA bytes of the messages done. */
  bytes: number;
  stored: number;
  alreadyStored: number;
  unmatched: number;
  malformed: number;
  failed: number;
  /** Messages in the slots right now. */
  inFlight: number;
  /** The run was stopped (`signal`) before every source was read. */
  interrupted: boolean;
}

export interface ReplayEvents {
  /** A message handed on (stored, or read through in a dry run). */
  message?(plan: ReplayPlan, outcome: Extract<AcceptOutcome, { accepted: true }>): void;
  /** Every rule of the message has its object already: nothing handed on. */
  skipped?(plan: ReplayPlan, there: ReadonlyMap<string, StoredBy>): void;
  problem?(problem: ReplayProblem): void;
  note?(note: SourceNote): void;
}

export interface DriverOptions {
  concurrency: number;
  /** Messages started per second at most; undefined: no limit. */
  rate?: number;
  maxBytes: number;
  plan: (m: PreparedMessage) => ReplayPlan;
  target: ReplayTarget;
  events?: ReplayEvents;
  /** Updated in place as the run goes (for the progress display). */
  counters?: ReplayCounters;
  /** Stops the run: no further message is read; those in hand finish. */
  signal?: AbortSignal;
}

export function newCounters(): ReplayCounters {
  return { messages: 0, bytes: 0, stored: 0, alreadyStored: 0, unmatched: 0, malformed: 0, failed: 0, inFlight: 0, interrupted: false };
}

/** Spaces message starts 1/rate seconds apart. */
class Pacer {
  private next = 0;
  constructor(private readonly rate: number | undefined) {}
  async wait(): Promise<void> {
    if (!this.rate) return;
    const now = performance.now();
    const at = Math.max(now, this.next);
    this.next = at + 1000 / this.rate;
    if (at > now) await sleep(at - now);
  }
}

const OUTCOME_KIND: Record<RefusalKind, ProblemKind> = {
  'too-big': 'malformed',
  malformed: 'malformed',
  'no-space': 'failed',
  unavailable: 'failed',
  'body-failed': 'failed',
  'no-rule': 'unmatched',
};

/** The plan for the rules still to store: the others have their objects (`there`) already. */
function narrowed(plan: ReplayPlan, there: ReadonlyMap<string, StoredBy>): ReplayPlan {
  const rules = plan.accept.rules.filter((r) => !there.has(r.name));
  const left = new Set(rules.flatMap((r) => r.recipients));
  return { ...plan, accept: { ...plan.accept, rules, recipients: plan.accept.recipients.filter((a) => left.has(a)) }, alreadyThere: there };
}

export async function runReplay(sources: Source[], o: DriverOptions): Promise<ReplayCounters> {
  const c = o.counters ?? newCounters();
  const events = o.events ?? {};
  const pacer = new Pacer(o.rate);
  const inFlight = new Set<Promise<void>>();

  const problem = (p: ReplayProblem) => {
    c[p.kind]++;
    events.problem?.(p);
  };

  const handle = async (item: SourceItem): Promise<void> => {
    let m: PreparedMessage;
    try {
      m = await item.prepare();
    } catch (err) {
      problem(asProblem(err, item.location));
      return;
    }
    let plan: ReplayPlan;
    try {
      if (m.dataLength !== undefined && m.dataLength > o.maxBytes) throw tooBig(m.location, m.dataLength, o.maxBytes);
      plan = o.plan(m);
      const there = o.target.alreadyStored ? await o.target.alreadyStored(plan.accept) : undefined;
      if (there && there.size > 0) {
        if (plan.accept.rules.every((r) => there.has(r.name))) {
          m.discard();
          c.alreadyStored++;
          c.bytes += m.dataLength ?? 0;
          events.skipped?.({ ...plan, alreadyThere: there }, there);
          return;
        }
        plan = narrowed(plan, there);
      }
    } catch (err) {
      m.discard();
      problem(asProblem(err, m.location));
      return;
    }

    const body = m.body();
    // The source's own verdict on its bytes (a tag that does not verify, a changed file) decides over the target's.
    let sourceError: unknown;
    body.on('error', (err) => (sourceError ??= err));
    let outcome: AcceptOutcome | undefined;
    let thrown: unknown;
    try {
      outcome = await o.target.accept(plan.accept, body);
    } catch (err) {
      thrown = err;
    } finally {
      body.destroy();
    }
    if (sourceError instanceof ReplayProblem) {
      problem(sourceError);
      if (outcome?.accepted) problem(new ReplayProblem('failed', m.location, `was taken by the accept path as message ${plan.accept.messageId} although its source failed: check that message's objects`));
      return;
    }
    if (thrown !== undefined || !outcome) {
      problem(new ReplayProblem('failed', m.location, `could not be handed on: ${(thrown as Error)?.message ?? String(thrown)}`, { cause: thrown }));
      return;
    }
    if (!outcome.accepted) {
      problem(new ReplayProblem(OUTCOME_KIND[outcome.kind], m.location, `was refused by the accept path (${outcome.kind}): ${outcome.reason}`));
      return;
    }
    c.stored++;
    c.bytes += outcome.dataLength;
    events.message?.(plan, outcome);
  };

  const start = (item: SourceItem) => {
    c.messages++;
    c.inFlight++;
    const task: Promise<void> = handle(item)
      .catch((err: unknown) => problem(asProblem(err, item.location)))
      .finally(() => {
        c.inFlight--;
        inFlight.delete(task);
      });
    inFlight.add(task);
  };

  const stopped = () => {
    if (o.signal?.aborted) c.interrupted = true;
    return c.interrupted;
  };
  try {
    for (const source of sources) {
      if (stopped()) break;
      for await (const entry of source) {
        if (stopped()) break;
        if (entry instanceof ReplayProblem) {
          problem(entry);
          continue;
        }
        if (entry instanceof SourceNote) {
          events.note?.(entry);
          continue;
        }
        while (inFlight.size >= o.concurrency) await Promise.race(inFlight);
        await pacer.wait();
        // Leaving the loop closes the source (its iterator's return): the item is never prepared.
        if (stopped()) break;
        start(entry);
      }
    }
  } finally {
    await Promise.all(inFlight);
  }
  return c;
}

function asProblem(err: unknown, location: string): ReplayProblem {
  if (err instanceof ReplayProblem) return err;
  return new ReplayProblem('failed', location, `could not be replayed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
