/**
 * "Nothing accepted is ever lost": the gateway (SMTP + workers, one child process) is killed with SIGKILL in the
 * middle of a 2,000-message load and started again. Every message that got a 250 must be in the bucket exactly
 * once, holding the message that 250 acknowledged.
 */
import { join } from 'node:path';
import { spooledFiles } from '../support/spool.js';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { createTransport } from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import type { Started } from '../support/process.js';
import { killHard, startMailroom, writeConfig } from './child.js';
import { ACCOUNT, createBuckets, listKeys, MESSAGE_ID_RE, REGION, waitFor, startBackends, type Backends } from './helpers.js';

const TOTAL = 2_000;
const SENDERS = 20;
const KILL_AFTER = 700;
const BUCKET = 'crash';

let backends: Backends;
let proc: Started | undefined;

beforeAll(async () => {
  backends = await startBackends('mailroom-crash-');
  await createBuckets(backends.aws, BUCKET);
}, 120_000);

afterAll(async () => {
  if (proc) await killHard(proc);
  await backends?.stop();
});

describe('SIGKILL mid-load', () => {
  it(`loses none of ${TOTAL} acknowledged messages and stores each once`, async () => {
    const port = await freePort();
    const configFile = await writeConfig(backends.dir.path, 'crash.json', {
      region: REGION,
      accountId: ACCOUNT,
      ruleSetName: 'crash',
      rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: BUCKET, objectKeyPrefix: 'in/' } }],
      gateway: {
        hostname: 'mx.crash.test',
        spoolDir: join(backends.dir.path, 'spool'),
        smtp: { port, reverseDns: false, maxConnections: 100 },
        redis: { url: backends.redis.url, prefix: 'crash' },
        // Short locks so deliveries the killed process held are taken over within seconds, not the default 30 s.
        worker: { concurrency: 16, lockDurationMs: 4_000, stalledIntervalMs: 1_000, backoffBaseMs: 200, backoffMaxMs: 2_000, recoveryIntervalMs: 2_000 },
      },
    });
    const env = { ...backends.moto.env };
    const started = Date.now();
    proc = await startMailroom('gateway', configFile, env, port);

    // The load: SENDERS pooled connections; a message whose send fails is sent again (as an MTA would) until it
    // gets a 250. acked: load id → the SES message id its 250 named.
    const acked = new Map<number, string>();
    let next = 0;
    let killed = false;
    let restarted: Promise<void> | undefined;
    const transport = createTransport({ host: '127.0.0.1', port, pool: true, maxConnections: SENDERS, maxMessages: Infinity, ignoreTLS: true, name: 'load.example.net', connectionTimeout: 5_000, socketTimeout: 30_000 });
    const sender = async () => {
      for (;;) {
        const i = next++;
        if (i >= TOTAL) return;
        const raw = `From: load@origin.example\r\nTo: user@example.com\r\nSubject: load ${i}\r\nX-Load-Id: ${i}\r\n\r\nmessage ${i}\r\n`;
        for (let attempt = 0; ; attempt++) {
          try {
            const info = await transport.sendMail({ envelope: { from: 'load@origin.example', to: ['user@example.com'] }, raw });
            const m = MESSAGE_ID_RE.exec(info.response);
            if (!m) throw new Error(`unexpected reply ${info.response}`);
            acked.set(i, m[1]!);
            break;
          } catch {
            if (attempt > 200) throw new Error(`message ${i} never accepted`);
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        if (!killed && acked.size >= KILL_AFTER) {
          killed = true;
          const victim = proc!;
          restarted = (async () => {
            await killHard(victim);
            // Restart right away: recovery re-enqueues spooled messages without jobs; stalled jobs are taken over.
            proc = await startMailroom('gateway', configFile, env, port);
          })();
        }
      }
    };
    await Promise.all(Array.from({ length: SENDERS }, sender));
    await restarted;
    transport.close();
    const loadDone = Date.now();
    expect(killed).toBe(true);
    expect(acked.size).toBe(TOTAL);

    // Every acknowledged message id is in the bucket.
    const wanted = new Set([...acked.values()].map((id) => `in/${id}`));
    const keys = await waitFor(
      'all acknowledged messages in the bucket',
      async () => {
        const k = await listKeys(backends.aws, BUCKET);
        return [...wanted].every((w) => k.includes(w)) ? k : undefined;
      },
      150_000,
      1_000,
    );
    const delivered = Date.now();

    // Each object holds the message its 250 acknowledged, and no acknowledged message is stored twice. Objects
    // beyond the acknowledged ones can only be messages in flight at the kill (spooled, 250 never received, sent
    // again by the client): at most one per connection.
    const loadIdOf = async (key: string) => {
      const r = await backends.aws.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: 'bytes=0-1023' }));
      return Number(/X-Load-Id: (\d+)/.exec(await r.Body!.transformToString('latin1'))?.[1]);
    };
    const byKey = new Map<string, number>();
    for (let i = 0; i < keys.length; i += 50) {
      const batch = keys.slice(i, i + 50);
      const ids = await Promise.all(batch.map(loadIdOf));
      batch.forEach((k, j) => byKey.set(k, ids[j]!));
    }
    for (const [loadId, messageId] of acked) expect(byKey.get(`in/${messageId}`), `load ${loadId}`).toBe(loadId);
    const extra = keys.filter((k) => !wanted.has(k));
    expect(extra.length).toBeLessThanOrEqual(SENDERS);
    const ackedLoadIds = new Set(acked.keys());
    for (const k of extra) expect(ackedLoadIds.has(byKey.get(k)!)).toBe(true); // a resent message, not a stray

    // Everything delivered ⇒ the spool is released (after the restart's recovery and stalled-job takeover).
    await waitFor('spool drained', async () => (await spooledFiles(join(backends.dir.path, 'spool'))).length === 0, 60_000, 500);
    console.log(`crash test: ${TOTAL} messages accepted in ${((loadDone - started) / 1000).toFixed(1)} s (kill + restart included), all delivered ${((delivered - started) / 1000).toFixed(1)} s after start; ${extra.length} resent duplicates from the kill`);
  }, 240_000);
});
