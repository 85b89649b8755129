/**
 * "Nothing accepted is ever lost", with a sealed spool: `mailroom gateway` (KMS key in moto, deliveries in their
 * thread) is killed with SIGKILL in the middle of a load and started again. Every message that got a 250 is in the
 * bucket exactly once, holding what was sent; the spool as the kill left it — files half written included — holds
 * no byte of any message in plaintext.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import type { Started } from '../support/process.js';
import { spooledFiles } from '../support/spool.js';
import { killHard, startMailroom, writeConfig } from '../gateway/child.js';
import { ACCOUNT, createBuckets, createKey, REGION, startBackends, waitFor, type Backends } from '../gateway/helpers.js';
import { expectStoredOnce, loadWithKill } from '../gateway/kill-mid-load.js';
import { plaintextFound } from './support.js';

const TOTAL = 1_000;
const SENDERS = 16;
const KILL_AFTER = 400;
const BUCKET = 'sealed-crash';

let backends: Backends;
let proc: Started | undefined;

beforeAll(async () => {
  backends = await startBackends('mailroom-sealed-crash-');
  await createBuckets(backends.aws, BUCKET);
}, 120_000);

afterAll(async () => {
  if (proc) await killHard(proc);
  await backends?.stop();
});

describe('SIGKILL mid-load with a sealed spool', () => {
  it(`loses none of ${TOTAL} acknowledged messages, stores each once, and leaves nothing readable on disk`, async () => {
    const kmsKeyArn = await createKey(backends.aws);
    const port = await freePort();
    const spoolDir = join(backends.dir.path, 'spool');
    const configFile = await writeConfig(backends.dir.path, 'crash.json', {
      region: REGION,
      accountId: ACCOUNT,
      ruleSetName: 'crash',
      rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: BUCKET, objectKeyPrefix: 'in/' } }],
      gateway: {
        hostname: 'mx.crash.test',
        spoolDir,
        smtp: { port, reverseDns: false, maxConnections: 100 },
        redis: { url: backends.redis.url, prefix: 'sealed-crash' },
        worker: { concurrency: 16, thread: 'yes', lockDurationMs: 4_000, stalledIntervalMs: 1_000, backoffBaseMs: 200, backoffMaxMs: 2_000, recoveryIntervalMs: 2_000 },
        spool: { encryption: { kmsKeyArn } },
      },
    });
    const env = { ...backends.moto.env };
    proc = await startMailroom('gateway', configFile, env, port);

    const token = (i: number) => `sealed-crash-body-${i}-token`;
    const from = (i: number) => `sender-${i}@origin.example`;
    let found: string[] | undefined;
    let filesAtKill = 0;
    const acked = await loadWithKill({
      port,
      total: TOTAL,
      senders: SENDERS,
      killAfter: KILL_AFTER,
      message: (i) => ({ from: from(i), raw: `From: ${from(i)}\r\nTo: user@example.com\r\nSubject: load ${i}\r\nX-Load-Id: ${i}\r\n\r\n${token(i)}\r\n` }),
      killAndRestart: async () => {
        await killHard(proc!);
        // The spool as the kill left it: torn files and all, sealed. Every message of the load is searched for.
        filesAtKill = (await spooledFiles(spoolDir)).length;
        found = await plaintextFound(spoolDir, Array.from({ length: TOTAL }, (_, k) => [token(k), from(k)]).flat());
        proc = await startMailroom('gateway', configFile, env, port);
      },
    });
    expect(filesAtKill, 'mail was waiting in the spool at the kill').toBeGreaterThan(0);
    expect(found, 'no plaintext under spoolDir at the kill').toEqual([]);

    await expectStoredOnce(backends.aws, BUCKET, 'in/', acked, SENDERS, (head) => {
      const id = Number(/X-Load-Id: (\d+)/.exec(head)?.[1]);
      return head.includes(token(id)) && head.includes(`Return-Path: <${from(id)}>`) ? id : NaN;
    }, 2048);
    await waitFor('spool drained', async () => (await spooledFiles(spoolDir)).length === 0, 60_000, 500);
  }, 240_000);
});
