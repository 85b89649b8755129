/**
 * The replay loop: concurrency and rate honoured, every outcome counted, one message's problem affecting nothing
 * else. The target is the seam to the accept path (gateway/replay/target.ts); here it is the dry run or a recording
 * stand-in, since what is tested is the loop, not the store.
 */
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newCounters, runReplay, type DriverOptions } from '../../gateway/replay/driver.js';
import { Planner } from '../../gateway/replay/plan.js';
import { ReplayProblem, type PreparedMessage, type Source, type SourceItem } from '../../gateway/replay/source.js';
import { openSource } from '../../gateway/replay/sources.js';
import { dryRunTarget, type AcceptOutcome, type ReplayAcceptMessage, type ReplayTarget } from '../../gateway/replay/target.js';
import { parseConfig } from '../../shared/config/index.js';
import { tempDir } from '../support/files.js';
import { sourceOptions, writeArchives, type Archives } from './helpers.js';

const config = parseConfig({
  region: 'us-east-1',
  accountId: '123456789012',
  ruleSetName: 'replay-test',
  rules: [{ name: 'inbox', recipients: ['example.com'], s3Action: { bucketName: 'mail', objectKeyPrefix: 'inbox' } }],
}).config;
const planner = new Planner({ config, envelope: {}, timestamp: 'source' });

function memoryMessage(i: number, over: Partial<PreparedMessage> = {}, body?: () => Readable): SourceItem {
  const data = Buffer.from(`From: a@sender.example\r\nTo: user${i}@example.com\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`);
  const m: PreparedMessage = {
    location: `memory:${i}`,
    identity: `memory:${i}`,
    contentTag: `n:${i}`,
    dataLength: data.length,
    headers: [{ name: 'To', value: `user${i}@example.com` }],
    hints: {},
    times: [],
    body: body ?? (() => Readable.from([data])),
    discard: () => {},
    ...over,
  };
  return { location: m.location, prepare: async () => m };
}

async function* items(list: Array<SourceItem | ReplayProblem>): Source {
  yield* list;
}

function options(target: ReplayTarget, over: Partial<DriverOptions> = {}): DriverOptions {
  return { concurrency: 4, maxBytes: 40 * 1024 * 1024, plan: (m) => planner.plan(m), target, ...over };
}

/** A target that reads each body, takes `delayMs`, and records what it saw. */
function recordingTarget(delayMs: number, answer?: (m: ReplayAcceptMessage) => AcceptOutcome | undefined) {
  const seen: ReplayAcceptMessage[] = [];
  let active = 0;
  let maxActive = 0;
  const target: ReplayTarget = {
    async accept(message, body) {
      active++;
      maxActive = Math.max(maxActive, active);
      try {
        let length = 0;
        for await (const c of body as AsyncIterable<Buffer>) length += c.length;
        await sleep(delayMs);
        seen.push(message);
        return answer?.(message) ?? { accepted: true, messageId: message.messageId, dataLength: length };
      } finally {
        active--;
      }
    },
    async close() {},
  };
  return { target, seen, maxActive: () => maxActive };
}

describe('runReplay', () => {
  it('keeps at most --concurrency messages in hand, and uses them', async () => {
    for (const concurrency of [1, 3, 8]) {
      const t = recordingTarget(20);
      const c = await runReplay([items(Array.from({ length: 30 }, (_, i) => memoryMessage(i)))], options(t.target, { concurrency }));
      expect(c.stored).toBe(30);
      expect(t.maxActive()).toBe(concurrency);
    }
  });

  it('starts at most --rate messages a second', async () => {
    const t = recordingTarget(0);
    const started = performance.now();
    await runReplay([items(Array.from({ length: 11 }, (_, i) => memoryMessage(i)))], options(t.target, { rate: 25 }));
    expect(performance.now() - started).toBeGreaterThanOrEqual(390); // 10 gaps of 40 ms
    const fast = performance.now();
    await runReplay([items(Array.from({ length: 11 }, (_, i) => memoryMessage(i)))], options(recordingTarget(0).target));
    expect(performance.now() - fast).toBeLessThan(300);
  });

  it('counts each outcome; a problem with one message leaves the others stored', async () => {
    const failing = memoryMessage(1, {}, () =>
      Readable.from(
        (async function* () {
          yield Buffer.from('From: a@sender.example\r\n');
          throw new ReplayProblem('malformed', 'memory:1', 'is tampered or damaged: test');
        })(),
      ),
    );
    const list = [
      memoryMessage(0),
      failing,
      memoryMessage(2, { headers: [{ name: 'To', value: 'x@elsewhere.example' }] }),
      memoryMessage(3, { dataLength: 50 * 1024 * 1024 }),
      { location: 'memory:4', prepare: async () => Promise.reject(new ReplayProblem('failed', 'memory:4', 'is gone')) },
      new ReplayProblem('failed', 'memory:source', 'does not exist'),
      memoryMessage(5),
      memoryMessage(6),
      memoryMessage(7),
    ];
    const t = recordingTarget(0, (m) => (m.recipients[0] === 'user6@example.com' ? { accepted: false, kind: 'no-space', reason: 'the spool is full' } : m.recipients[0] === 'user7@example.com' ? { accepted: false, kind: 'too-big', reason: 'over' } : undefined));
    const problems: ReplayProblem[] = [];
    const c = await runReplay([items(list)], options(t.target, { events: { problem: (p) => problems.push(p) } }));
    expect(c).toMatchObject({ messages: 8, stored: 2, unmatched: 1, malformed: 3, failed: 3, alreadyStored: 0, inFlight: 0 });
    expect(problems.map((p) => [p.kind, p.location])).toEqual(
      expect.arrayContaining([
        ['malformed', 'memory:1'],
        ['unmatched', 'memory:2'],
        ['malformed', 'memory:3'],
        ['failed', 'memory:4'],
        ['failed', 'memory:source'],
        ['failed', 'memory:6'],
        ['malformed', 'memory:7'],
      ]),
    );
    expect(problems.find((p) => p.location === 'memory:3')!.reason).toBe('is 52428800 bytes, over the limit of 41943040 bytes (maxMessageSize; SES takes at most 40 MB): not replayed');
    expect(problems.find((p) => p.location === 'memory:6')!.reason).toBe('was refused by the accept path (no-space): the spool is full');
    expect(t.seen.map((m) => m.recipients[0])).not.toContain('user3@example.com'); // too big: never handed on
  });

  it("a target that takes a message whose source failed is called out, not counted as stored", async () => {
    const failing = memoryMessage(1, {}, () =>
      Readable.from(
        (async function* () {
          yield Buffer.from('x');
          throw new ReplayProblem('failed', 'memory:1', 'changed while it was being replayed');
        })(),
      ),
    );
    const careless: ReplayTarget = {
      async accept(m, body) {
        body.resume();
        await new Promise((r) => body.once('error', r));
        return { accepted: true, messageId: m.messageId, dataLength: 1 };
      },
      async close() {},
    };
    const problems: ReplayProblem[] = [];
    const c = await runReplay([items([failing])], options(careless, { events: { problem: (p) => problems.push(p) } }));
    expect(c.stored).toBe(0);
    expect(problems.map((p) => p.reason)).toEqual(['changed while it was being replayed', expect.stringMatching(/^was taken by the accept path as message \S+ although its source failed/)]);
  });

  it('skips what the target says is stored already, and counts it; hands on the rules that lack their object', async () => {
    const twoRules = new Planner({
      config: parseConfig({
        region: 'us-east-1',
        accountId: '123456789012',
        ruleSetName: 'replay-test',
        rules: [
          { name: 'inbox', recipients: ['example.com'], s3Action: { bucketName: 'mail', objectKeyPrefix: 'inbox' } },
          { name: 'archive', recipients: ['user2@example.com'], s3Action: { bucketName: 'archive' } },
        ],
      }).config,
      envelope: {},
      timestamp: 'source',
    });
    const t = recordingTarget(0);
    const skipping: ReplayTarget = {
      ...t.target,
      alreadyStored: async (m) =>
        new Map(m.recipients[0] === 'user1@example.com' ? [['inbox', 'checkpoint' as const]] : m.recipients[0] === 'user2@example.com' ? [['inbox', 'bucket' as const]] : []),
    };
    const skipped: Array<[string, string[]]> = [];
    const handed: Array<[string, string[], string[]]> = [];
    const c = await runReplay(
      [items([memoryMessage(0), memoryMessage(1), memoryMessage(2)])],
      options(skipping, {
        plan: (m) => twoRules.plan(m),
        events: { skipped: (p, there) => skipped.push([p.message.location, [...there.keys()]]), message: (p) => handed.push([p.message.location, p.accept.rules.map((r) => r.name), [...(p.alreadyThere?.keys() ?? [])]]) },
      }),
    );
    expect(c).toMatchObject({ stored: 2, alreadyStored: 1 });
    expect(skipped).toEqual([['memory:1', ['inbox']]]);
    // user2@ matches both rules; inbox has its object: only archive is handed on.
    expect(handed.sort()).toEqual([
      ['memory:0', ['inbox'], []],
      ['memory:2', ['archive'], ['inbox']],
    ]);
    expect(t.seen.find((m) => m.recipients.includes('user2@example.com'))!.rules.map((r) => r.name)).toEqual(['archive']);
  });

  it('stops reading when its signal is aborted: the messages in hand finish, no other is prepared', async () => {
    const stop = new AbortController();
    const prepared: number[] = [];
    const list = Array.from({ length: 20 }, (_, i) => {
      const item = memoryMessage(i);
      return { location: item.location, prepare: () => (prepared.push(i), i === 5 && stop.abort(), item.prepare()) };
    });
    const t = recordingTarget(30);
    const c = await runReplay([items(list)], options(t.target, { concurrency: 2, signal: stop.signal }));
    expect(c.interrupted).toBe(true);
    expect(prepared.length).toBeLessThanOrEqual(7);
    expect(c.stored).toBe(prepared.length);
    expect(c.inFlight).toBe(0);
  });
});

describe('runReplay over real archives (dry run)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let a: Archives;
  beforeAll(async () => {
    dir = await tempDir('mailroom-replay-');
    a = await writeArchives(dir.path);
  }, 120_000);
  afterAll(async () => {
    await dir?.remove();
  });

  it('reads every source through; an over-limit message is reported under its From line, the rest go on', async () => {
    const counters = newCounters();
    const problems: ReplayProblem[] = [];
    const locations: string[] = [];
    const sources = [a.manifest.mboxrd.path, a.manifest.maildir.path, a.manifest.emldir.path, 'cut-midline.mbox'].map((p) => openSource(join(a.dir, p), sourceOptions({ maxBytes: 1024 * 1024 })));
    const c = await runReplay(sources, {
      ...options(dryRunTarget(), { maxBytes: 1024 * 1024, plan: (m) => new Planner({ config, rule: 'inbox', envelope: {}, timestamp: 'source' }).plan(m) }),
      counters,
      events: { problem: (p) => problems.push(p), message: (p) => locations.push(p.message.location) },
    });
    const big = a.manifest.mboxrd.messages.find((e) => e.name === 'big')!;
    expect(problems.map((p) => [p.kind, p.location])).toEqual(
      expect.arrayContaining([
        ['malformed', `${join(a.dir, a.manifest.mboxrd.path)}:${big.line} (byte ${big.offset})`],
        ['malformed', join(a.dir, a.manifest.maildir.notMail[0]!)],
        ['malformed', `${join(a.dir, 'cut-midline.mbox')}:${a.manifest.truncated.line} (byte ${a.manifest.truncated.offset})`],
      ]),
    );
    // cut-midline.mbox holds its own copy of "big" too: reported over the limit under its own location.
    expect(c).toMatchObject({ malformed: 4, unmatched: 0, failed: 0 });
    expect(c.stored).toBe(a.manifest.mboxrd.messages.length - 1 + a.manifest.maildir.messages.length + a.manifest.emldir.messages.length + a.manifest.truncated.before.length - 1);
    expect(counters).toBe(c);
    expect(new Set(locations).size).toBe(locations.length);
  });
});
