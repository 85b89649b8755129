/**
 * The "kill -9 mid-load" harness of the crash tests: pooled SMTP senders that send each message again until it gets
 * a 250 (as an MTA would), a kill and restart once enough are acknowledged, and the check that every acknowledged
 * message is stored exactly once.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { createTransport } from 'nodemailer';
import { expect } from 'vitest';
import { listKeys, MESSAGE_ID_RE, waitFor, type AwsFixture } from './helpers.js';

export interface KillMidLoad {
  port: number;
  total: number;
  senders: number;
  /** After this many 250s, `killAndRestart` runs once (the senders go on meanwhile). */
  killAfter: number;
  /** Load message `i`: its MAIL FROM and its DATA, which carries `X-Load-Id: i`. */
  message(i: number): { from: string; raw: string };
  killAndRestart(): Promise<void>;
}

/** Runs the load; resolves with load id → the SES message id its 250 named, once every message has one. */
export async function loadWithKill(o: KillMidLoad): Promise<Map<number, string>> {
  const acked = new Map<number, string>();
  let next = 0;
  let restarted: Promise<void> | undefined;
  const transport = createTransport({ host: '127.0.0.1', port: o.port, pool: true, maxConnections: o.senders, maxMessages: Infinity, ignoreTLS: true, name: 'load.example.net', connectionTimeout: 5_000, socketTimeout: 30_000 });
  const sender = async () => {
    for (;;) {
      const i = next++;
      if (i >= o.total) return;
      const { from, raw } = o.message(i);
      for (let attempt = 0; ; attempt++) {
        try {
          const info = await transport.sendMail({ envelope: { from, to: ['user@example.com'] }, raw });
          const m = MESSAGE_ID_RE.exec(info.response);
          if (!m) throw new Error(`unexpected reply ${info.response}`);
          acked.set(i, m[1]!);
          break;
        } catch {
          if (attempt > 200) throw new Error(`message ${i} never accepted`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      if (!restarted && acked.size >= o.killAfter) restarted = o.killAndRestart();
    }
  };
  try {
    await Promise.all(Array.from({ length: o.senders }, sender));
    await restarted;
  } finally {
    transport.close();
  }
  expect(restarted, 'the kill happened during the load').toBeDefined();
  expect(acked.size).toBe(o.total);
  return acked;
}

/**
 * Waits until every acknowledged message is under `prefix` in `bucket`, then checks each object holds the message its
 * 250 acknowledged (`loadIdOf` reads the id from the object's first bytes, NaN when the object is not what was sent)
 * and nothing acknowledged is stored twice. Objects beyond the acknowledged ones can only be messages in flight at
 * the kill (spooled, 250 never received, sent again): at most one per connection. Resolves with their number.
 */
export async function expectStoredOnce(aws: AwsFixture, bucket: string, prefix: string, acked: Map<number, string>, senders: number, loadIdOf: (head: string) => number, headBytes: number): Promise<number> {
  const wanted = new Set([...acked.values()].map((id) => `${prefix}${id}`));
  const keys = await waitFor(
    'all acknowledged messages in the bucket',
    async () => {
      const k = await listKeys(aws, bucket);
      return [...wanted].every((w) => k.includes(w)) ? k : undefined;
    },
    150_000,
    1_000,
  );
  const idOf = async (key: string) => {
    const r = await aws.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=0-${headBytes - 1}` }));
    return loadIdOf(await r.Body!.transformToString('latin1'));
  };
  const byKey = new Map<string, number>();
  for (let i = 0; i < keys.length; i += 50) {
    const batch = keys.slice(i, i + 50);
    const ids = await Promise.all(batch.map(idOf));
    batch.forEach((k, j) => byKey.set(k, ids[j]!));
  }
  for (const [loadId, messageId] of acked) expect(byKey.get(`${prefix}${messageId}`), `load ${loadId}`).toBe(loadId);
  const extra = keys.filter((k) => !wanted.has(k));
  expect(extra.length).toBeLessThanOrEqual(senders);
  for (const k of extra) expect(acked.has(byKey.get(k)!), `${k}: a resent message, not a stray`).toBe(true);
  return extra.length;
}
