/**
 * "Nothing accepted is ever lost", with a sealed spool: `mailroom gateway` (KMS key in moto, deliveries in their
 * thread) is killed with SIGKILL in the middle of a load and started again. Every message that got a 250 is in the
 * bucket exactly once, holding what was sent; the spool as the kill left it — files half written included — holds
 * no byte of any message in plaintext.
 */
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { createTransport } from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import type { Started } from '../support/process.js';
import { spooledFiles } from '../support/spool.js';
import { killHard, startMailroom, writeConfig } from '../gateway/child.js';
import { ACCOUNT, createBuckets, createKey, listKeys, MESSAGE_ID_RE, REGION, startBackends, waitFor, type Backends } from '../gateway/helpers.js';
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

    const acked = new Map<number, string>();
    const token = (i: number) => `sealed-crash-body-${i}-token`;
    const from = (i: number) => `sender-${i}@origin.example`;
    let next = 0;
    let killed = false;
    let found: string[] | undefined;
    let filesAtKill = 0;
    let restarted: Promise<void> | undefined;
    const transport = createTransport({ host: '127.0.0.1', port, pool: true, maxConnections: SENDERS, maxMessages: Infinity, ignoreTLS: true, name: 'load.example.net', connectionTimeout: 5_000, socketTimeout: 30_000 });
    const sender = async () => {
      for (;;) {
        const i = next++;
        if (i >= TOTAL) return;
        const raw = `From: ${from(i)}\r\nTo: user@example.com\r\nSubject: load ${i}\r\nX-Load-Id: ${i}\r\n\r\n${token(i)}\r\n`;
        for (let attempt = 0; ; attempt++) {
          try {
            const info = await transport.sendMail({ envelope: { from: from(i), to: ['user@example.com'] }, raw });
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
            // The spool as the kill left it: torn files and all, sealed.
            filesAtKill = (await spooledFiles(spoolDir)).length;
            found = await plaintextFound(spoolDir, [...Array.from({ length: next }, (_, k) => token(k)), ...Array.from({ length: next }, (_, k) => from(k))]);
            proc = await startMailroom('gateway', configFile, env, port);
          })();
        }
      }
    };
    await Promise.all(Array.from({ length: SENDERS }, sender));
    await restarted;
    transport.close();
    expect(killed).toBe(true);
    expect(filesAtKill, 'mail was waiting in the spool at the kill').toBeGreaterThan(0);
    expect(found, 'no plaintext under spoolDir at the kill').toEqual([]);
    expect(acked.size).toBe(TOTAL);

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
    const loadIdOf = async (key: string) => {
      const r = await backends.aws.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: 'bytes=0-2047' }));
      const text = await r.Body!.transformToString('latin1');
      const id = Number(/X-Load-Id: (\d+)/.exec(text)?.[1]);
      return text.includes(token(id)) && text.includes(`Return-Path: <${from(id)}>`) ? id : NaN;
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
    for (const k of extra) expect(acked.has(byKey.get(k)!)).toBe(true);
    await waitFor('spool drained', async () => (await spooledFiles(spoolDir)).length === 0, 60_000, 500);
  }, 240_000);
});
