/**
 * "Nothing accepted is ever lost": the gateway (SMTP + workers, one child process) is killed with SIGKILL in the
 * middle of a 2,000-message load and started again. Every message that got a 250 must be in the bucket exactly
 * once, holding the message that 250 acknowledged.
 */
import { join } from 'node:path';
import { spooledFiles } from '../support/spool.js';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { freePort } from '../support/ports.js';
import type { Started } from '../support/process.js';
import { killHard, startMailroom, writeConfig } from './child.js';
import { ACCOUNT, createBuckets, REGION, waitFor, startBackends, type Backends } from './helpers.js';
import { expectStoredOnce, loadWithKill } from './kill-mid-load.js';

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

    const acked = await loadWithKill({
      port,
      total: TOTAL,
      senders: SENDERS,
      killAfter: KILL_AFTER,
      message: (i) => ({ from: 'load@origin.example', raw: `From: load@origin.example\r\nTo: user@example.com\r\nSubject: load ${i}\r\nX-Load-Id: ${i}\r\n\r\nmessage ${i}\r\n` }),
      killAndRestart: async () => {
        await killHard(proc!);
        // Restart right away: recovery re-enqueues spooled messages without jobs; stalled jobs are taken over.
        proc = await startMailroom('gateway', configFile, env, port);
      },
    });
    const loadDone = Date.now();
    const extra = await expectStoredOnce(backends.aws, BUCKET, 'in/', acked, SENDERS, (head) => Number(/X-Load-Id: (\d+)/.exec(head)?.[1]), 1024);
    const delivered = Date.now();

    // Everything delivered ⇒ the spool is released (after the restart's recovery and stalled-job takeover).
    await waitFor('spool drained', async () => (await spooledFiles(join(backends.dir.path, 'spool'))).length === 0, 60_000, 500);
    console.log(`crash test: ${TOTAL} messages accepted in ${((loadDone - started) / 1000).toFixed(1)} s (kill + restart included), all delivered ${((delivered - started) / 1000).toFixed(1)} s after start; ${extra} resent duplicates from the kill`);
  }, 240_000);
});
