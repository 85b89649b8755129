/**
 * The three places the gateway leans on a pinned library's internals, each kept for a measured gain or a real bug
 * and listed here so that a dependency upgrade that changes one fails loudly, naming the file to review, instead of
 * passing while the gateway quietly misbehaves. Each check fingerprints exactly the internal code relied upon; the
 * behaviour itself is tested where the feature is (named below).
 */
import { createHash } from 'node:crypto';
import { FlowProducer } from 'bullmq';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { describe, expect, it } from 'vitest';

const fingerprint = (f: unknown) => createHash('sha256').update(String(f)).digest('hex').slice(0, 16);

describe('library internals the gateway relies on (pinned versions)', () => {
  it('smtp-server: a session starts as SMTPConnection.init() starts it — _setListeners, then connectionReady after a fixed 100 ms (gateway/smtp/session.ts re-does this with a per-client delay)', () => {
    // Why: the fixed delay caps a relay that opens a connection per message at ~10 messages/s per connection
    // (docs/performance.md#the-greeting-delay); no public option sets it. Behaviour: edge-connection.test.ts (greeting,
    // early talker, trusted relays without delay, limits).
    const c = SMTPConnection.prototype as unknown as Record<string, unknown>;
    expect(typeof c._setListeners, 'SMTPConnection._setListeners').toBe('function');
    expect(typeof c.connectionReady, 'SMTPConnection.connectionReady').toBe('function');
    expect(typeof (SMTPServer.prototype as unknown as Record<string, unknown>).connect, 'SMTPServer.connect').toBe('function');
    expect(fingerprint(c.init), 'smtp-server changed SMTPConnection.init: review gateway/smtp/session.ts').toBe('1265a7d7ca8f5510');
    expect(fingerprint(c._setListeners), 'smtp-server changed SMTPConnection._setListeners: review gateway/smtp/session.ts').toBe('cf07ab6f47db09ac');
  });

  it("smtp-server: SMTPStream.continue() clears the continuation that a transaction parsed inside it may just have set (gateway/smtp/server.ts answers such a MAIL FROM on the next turn)", () => {
    // Why: a client that pipelines whole transactions hung after its second message. Behaviour: bad-input.test.ts
    // "gets every transaction of one write accepted and its QUIT answered".
    expect(fingerprint((SMTPStream.prototype as unknown as Record<string, unknown>).continue), 'smtp-server changed SMTPStream.continue: review the MAIL FROM deferral in gateway/smtp/server.ts').toBe('ce5856923c797749');
  });

  it('bullmq: FlowProducer.addBulk ignores per-flow errors of its MULTI, read from backend.addFlow (gateway/queue/enqueue.ts makes any such error fail the add)', () => {
    // Why: without it a flow whose add failed inside the MULTI would be answered 250. Behaviour: the intake's
    // refusal when Redis refuses jobs (accept-overlap.test.ts) and the cluster NOSCRIPT path (redis-cluster.test.ts).
    const flows = new FlowProducer({ connection: { host: '127.0.0.1', port: 1, lazyConnect: true, maxRetriesPerRequest: 0 } as never });
    try {
      const backend = (flows as unknown as { backend?: { addFlow?: unknown } }).backend;
      expect(typeof backend?.addFlow, 'FlowProducer.backend.addFlow').toBe('function');
      expect(fingerprint(FlowProducer.prototype.addBulk), 'bullmq changed FlowProducer.addBulk: review strictFlowResults in gateway/queue/enqueue.ts').toBe('7ac713abe6a1a133');
    } finally {
      void flows.close().catch(() => undefined);
    }
  });
});
