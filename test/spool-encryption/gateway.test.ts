/**
 * Spool encryption in a running gateway, against moto (KMS, S3) and a real Redis: mail accepted over SMTP is sealed
 * under a KMS key with one data key for all of it, nothing of it readable under spoolDir or in Redis, and delivered
 * byte for byte; a tampered or moved file fails its job naming the message and stores nothing; a key KMS refuses
 * fails the jobs (kept, retried) until it is back; encryption turned off and on again with mail waiting.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewaySpoolEncryption } from '../../shared/config/gateway.js';
import type { ReceivingConfigInput } from '../../shared/config/index.js';
import { startGateway, type GatewayParts, type RunningGateway } from '../../gateway/gateway.js';
import { QueueAdmin } from '../../gateway/queue/admin.js';
import { encodeSealedLine, parseFirstLine } from '../../gateway/spool/format.js';
import { freePort } from '../support/ports.js';
import { spooledFiles } from '../support/spool.js';
import { ACCOUNT, capturedLog, createBuckets, createKey, listKeys, REGION, runtimeFor, sendRaw, startBackends, storedBytes, waitFor, type Backends } from '../gateway/helpers.js';
import { DATA_KEY_DEFAULTS, plaintextFound, redisDump } from './support.js';

const BUCKET = 'sealed-spool';
let backends: Backends;
let kmsKeyArn: string;

beforeAll(async () => {
  backends = await startBackends('mailroom-sealed-gw-', { motoEnv: true });
  await createBuckets(backends.aws, BUCKET);
  kmsKeyArn = await createKey(backends.aws);
}, 120_000);

afterAll(async () => {
  await backends?.stop();
});

let n = 0;

function config(spoolDir: string, encryption: Partial<GatewaySpoolEncryption> | undefined, prefix: string): ReceivingConfigInput {
  return {
    region: REGION,
    accountId: ACCOUNT,
    ruleSetName: 'sealed',
    rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: BUCKET, objectKeyPrefix: `${prefix}/` } }],
    gateway: {
      hostname: 'mx.sealed.test',
      spoolDir,
      smtp: { port: 0, reverseDns: false, greetingDelayMs: 0 },
      redis: { url: backends.redis.url, prefix },
      worker: { concurrency: 4, backoffBaseMs: 100, backoffMaxMs: 500, recoveryIntervalMs: 60_000 },
      ...(encryption ? { spool: { encryption: { ...DATA_KEY_DEFAULTS, ...encryption } as GatewaySpoolEncryption } } : {}),
    },
  };
}

interface Started {
  gw: RunningGateway;
  lines: Array<Record<string, unknown> & { msg: string }>;
}

async function start(cfg: ReceivingConfigInput, parts: GatewayParts): Promise<Started> {
  const { log, lines } = capturedLog('debug');
  const gw = await startGateway(runtimeFor(cfg), parts, log);
  return { gw, lines };
}

/** A message whose addresses and body are its own, so that any trace of it on disk or in Redis can be found. */
function letter(size = 0) {
  const tag = randomBytes(6).toString('hex');
  const from = `from-${tag}@sender.example`;
  const to = `rcpt-${tag}@example.com`;
  const helo = `helo-${tag}.client.example`;
  const token = `body-${tag}`;
  let raw = `From: <${from}>\r\nTo: <${to}>\r\nSubject: sealed ${tag}\r\n\r\n${token}\r\n`;
  if (size > 0) raw += `${token} ${'x'.repeat(70)}\r\n`.repeat(Math.ceil(size / 80));
  return { from, to, helo, token, raw, secrets: [from, to, helo, token] };
}

async function send(port: number, l: ReturnType<typeof letter>): Promise<string> {
  const r = await sendRaw(port, { from: l.from, to: [l.to] }, l.raw, { name: l.helo });
  expect(r.response).toMatch(/^250 /);
  return r.messageId;
}

/** The stored message's bytes, waited for. */
async function stored(prefix: string, messageId: string): Promise<Buffer> {
  await waitFor(`${messageId} stored`, async () => (await listKeys(backends.aws, BUCKET, `${prefix}/`)).includes(`${prefix}/${messageId}`), 60_000, 200);
  return (await storedBytes(backends.aws, BUCKET, `${prefix}/${messageId}`)).body;
}

async function failedJobs(prefix: string) {
  const admin = new QueueAdmin({ url: backends.redis.url, cluster: false }, prefix);
  try {
    await admin.ready();
    return await admin.failed();
  } finally {
    await admin.close();
  }
}

describe('a gateway with a sealed spool (KMS key in moto)', () => {
  it('keeps no byte of the mail readable under spoolDir nor any address in Redis; one data key for all; delivers each message as sent', async () => {
    const prefix = `seal${n++}`;
    const spoolDir = join(backends.dir.path, prefix);
    const cfg = config(spoolDir, { kmsKeyArn }, prefix);
    // Accept only: the mail waits in the spool, where it is looked for.
    const front = await start(cfg, { smtp: true, workers: false });
    const letters = [...Array.from({ length: 24 }, () => letter()), letter(600_000), letter(300_000)];
    let ids: string[];
    try {
      ids = await Promise.all(letters.map((l) => send(front.gw.smtpAddress!.port, l)));
    } finally {
      await front.gw.stop();
    }
    expect((await spooledFiles(spoolDir)).length).toBeGreaterThan(0);
    expect(await plaintextFound(spoolDir, letters.flatMap((l) => l.secrets))).toEqual([]);
    const redis = await redisDump(backends.redis.url, prefix);
    expect(redis).toContain(ids[0]!); // the jobs are there: by message id
    expect(letters.flatMap((l) => l.secrets).filter((s) => redis.includes(s)), 'no address or body in Redis').toEqual([]);
    // One data key for all of it — the sealing thread's for the batch files, and one on the SMTP thread for the
    // streamed messages (each made at start, before the first message).
    const made = front.lines.filter((l) => l.msg.startsWith('spool data key made'));
    expect(made.map((l) => l.thread ?? 'smtp').sort()).toEqual(availableParallelism() > 1 ? ['seal', 'smtp'] : ['smtp']);

    // Delivered from the sealed spool: header block (with the envelope from the spool) + DATA, byte for byte.
    const back = await start(cfg, { smtp: false, workers: true });
    try {
      for (const [i, l] of letters.entries()) {
        const body = await stored(prefix, ids[i]!);
        expect(body.subarray(body.length - Buffer.byteLength(l.raw)).toString('latin1')).toBe(l.raw);
        const head = body.subarray(0, body.length - Buffer.byteLength(l.raw)).toString('latin1');
        expect(head).toContain(`Return-Path: <${l.from}>`);
        expect(head).toContain(`for ${l.to};`);
        expect(head).toContain(`Received: from ${l.helo} (`);
      }
      await waitFor('spool drained', async () => (await spooledFiles(spoolDir)).length === 0, 30_000, 200);
    } finally {
      await back.gw.stop();
    }
    // KMS on the delivering side: one Decrypt per data key, however many files each sealed.
    expect(back.lines.filter((l) => l.msg === 'spool data key opened')).toHaveLength(made.length);
  });

  it('a tampered file fails its job naming the message and stores nothing; a file moved over another fails that one; both are kept', async () => {
    const prefix = `seal${n++}`;
    const spoolDir = join(backends.dir.path, prefix);
    const cfg = config(spoolDir, { kmsKeyArn }, prefix);
    const front = await start(cfg, { smtp: true, workers: false });
    const [a, b, c] = [letter(), letter(), letter()];
    let ids: string[];
    try {
      ids = [];
      // One at a time: a file each.
      for (const l of [a, b, c]) ids.push(await send(front.gw.smtpAddress!.port, l));
    } finally {
      await front.gw.stop();
    }
    const files = await spooledFiles(spoolDir);
    expect(files).toHaveLength(3);
    // Each file is named by a spare's id or its message's; the job says which file holds which message.
    const admin = new Redis(backends.redis.url);
    const fileOf = new Map<string, string>();
    try {
      for (const key of await admin.keys(`${prefix}:*:deliveries:*`)) {
        if ((await admin.type(key)) !== 'hash') continue;
        const data = await admin.hget(key, 'data');
        if (!data) continue;
        const job = JSON.parse(data) as { spoolFile: string; messages: Array<{ envelope: { messageId: string } }> };
        for (const m of job.messages) fileOf.set(m.envelope.messageId, join(spoolDir, 'messages', job.spoolFile));
      }
    } finally {
      admin.disconnect();
    }
    const [fa, fb, fc] = ids.map((id) => fileOf.get(id)!);
    // a: one bit of its ciphertext flipped, its checksum made to match (so it is the authentication that refuses it).
    const bytes = await readFile(fa!);
    const lf = bytes.indexOf(0x0a);
    const first = parseFirstLine(bytes.subarray(0, lf));
    if (!first.sealed) throw new Error('not sealed');
    const ciphertext = Buffer.from(bytes.subarray(lf + 1));
    ciphertext[ciphertext.length - 20]! ^= 0x04;
    await writeFile(fa!, Buffer.concat([encodeSealedLine({ ...first.header, crc32: crc32(ciphertext) }), ciphertext]));
    // b's file replaced by a copy of c's: sealed for c's file, read where b's job looks.
    await copyFile(fc!, fb!);

    const back = await start(cfg, { smtp: false, workers: true });
    try {
      const c3 = await stored(prefix, ids[2]!);
      expect(c3.toString('latin1')).toContain(c.token);
      const failed = await waitFor('two failed jobs', async () => {
        const f = await failedJobs(prefix);
        return f.length === 2 ? f : undefined;
      }, 30_000, 200);
      const byMessage = new Map(failed.map((f) => [f.messageIds[0]!, f]));
      expect(byMessage.get(ids[0]!)!.reason).toMatch(new RegExp(`first: ${ids[0]}: SpoolSealError: spool file .* does not open: .*\\(tampered, cut short or damaged\\); not delivered`));
      expect(byMessage.get(ids[1]!)!.reason).toMatch(new RegExp(`first: ${ids[1]}: SpoolSealError: spool file .* holds a ciphertext sealed for spool file .* of node .*: it was moved or copied here`));
      // Unrecoverable: failed at once, not after 60 attempts.
      expect(failed.every((f) => f.attemptsMade === 1)).toBe(true);
    } finally {
      await back.gw.stop();
    }
    const keys = await listKeys(backends.aws, BUCKET, `${prefix}/`);
    expect(keys).toEqual([`${prefix}/${ids[2]}`]);
    expect((await spooledFiles(spoolDir)).sort()).toEqual([fa!, fb!].map((p) => p.split('/').at(-1)!).sort());
  });

  it('with KMS out of reach the jobs fail with the cause, kept and retried; once KMS answers they are delivered', async () => {
    const prefix = `seal${n++}`;
    const spoolDir = join(backends.dir.path, prefix);
    const cfg = config(spoolDir, { kmsKeyArn }, prefix);
    const front = await start(cfg, { smtp: true, workers: false });
    const l = letter();
    let id: string;
    try {
      id = await send(front.gw.smtpAddress!.port, l);
    } finally {
      await front.gw.stop();
    }
    // KMS (only KMS) at a port nobody listens on: what a firewall or an outage between the gateway and KMS looks like.
    // (moto does not refuse a disabled key, so "access denied" cannot be had here.)
    const closed = await freePort();
    process.env.AWS_ENDPOINT_URL_KMS = `http://127.0.0.1:${closed}`;
    let back: Started;
    try {
      back = await start(cfg, { smtp: false, workers: true });
      const line = await waitFor('a failed attempt logged', async () => back.lines.find((x) => x.msg === 'message not delivered in this attempt' && x.messageId === id), 30_000, 100);
      expect(line.errName).toBe('SpoolKeyError');
      expect(line.unrecoverable).toBe(false);
      expect(String(line.err)).toMatch(new RegExp(`cannot be opened: KMS Decrypt on ${kmsKeyArn} failed: ECONNREFUSED: .* \\(KMS unreachable or refusing: check AWS_ENDPOINT_URL / AWS_REGION and the network\\)`));
      await back.gw.stop();
    } finally {
      delete process.env.AWS_ENDPOINT_URL_KMS;
    }
    expect(await spooledFiles(spoolDir), 'kept').toHaveLength(1);
    expect(await listKeys(backends.aws, BUCKET, `${prefix}/`)).toEqual([]);
    const again = await start(cfg, { smtp: false, workers: true });
    try {
      expect((await stored(prefix, id)).toString('latin1')).toContain(l.token);
    } finally {
      await again.gw.stop();
    }
  });

  it('encryption on, off ("enabled": false), on again with mail waiting: every message delivered; without the key, sealed mail waits, said', async () => {
    const prefix = `seal${n++}`;
    const spoolDir = join(backends.dir.path, prefix);
    const on = config(spoolDir, { kmsKeyArn }, prefix);
    const off = config(spoolDir, { kmsKeyArn, enabled: false }, prefix);
    const none = config(spoolDir, undefined, prefix);
    const sent: Array<{ id: string; l: ReturnType<typeof letter>; sealed: boolean }> = [];
    for (const [cfg, sealed] of [[on, true], [off, false], [on, true], [none, false]] as const) {
      const front = await start(cfg, { smtp: true, workers: false });
      try {
        for (let i = 0; i < 2; i++) {
          const l = letter(i === 1 ? 400_000 : 0);
          sent.push({ id: await send(front.gw.smtpAddress!.port, l), l, sealed });
        }
      } finally {
        await front.gw.stop();
      }
    }
    const files = await spooledFiles(spoolDir);
    const firstLines = await Promise.all(files.map(async (f) => (await readFile(join(spoolDir, 'messages', f), 'latin1')).slice(0, 7)));
    expect(firstLines.filter((x) => x === '{"v":2,').length, 'sealed files').toBe(4);
    expect(firstLines.filter((x) => x === '{"v":1,').length, 'plaintext files').toBe(4);
    expect(await plaintextFound(spoolDir, sent.filter((s) => s.sealed).flatMap((s) => s.l.secrets))).toEqual([]);

    // No key configured: the plaintext mail is delivered; the sealed mail fails its jobs with the fix, and waits.
    const keyless = await start(none, { smtp: true, workers: true });
    try {
      for (const s of sent.filter((x) => !x.sealed)) expect((await stored(prefix, s.id)).toString('latin1')).toContain(s.l.token);
      await waitFor('sealed jobs failing', async () => keyless.lines.filter((x) => x.msg === 'message not delivered in this attempt' && x.errName === 'SpoolKeyError').length >= 4, 30_000, 100);
      const why = keyless.lines.find((x) => x.errName === 'SpoolKeyError')!;
      expect(String(why.err)).toMatch(new RegExp(`is sealed under KMS key ${kmsKeyArn} and gateway.spool.encryption is not set: set it again with that key`));
    } finally {
      await keyless.gw.stop();
    }
    expect((await spooledFiles(spoolDir)).length).toBe(4);

    // The key back, sealing off: the sealed mail is delivered; the spool is empty.
    const back = await start(off, { smtp: true, workers: true });
    try {
      for (const s of sent) {
        const body = await stored(prefix, s.id);
        expect(body.subarray(body.length - Buffer.byteLength(s.l.raw)).toString('latin1')).toBe(s.l.raw);
      }
      await waitFor('spool drained', async () => (await spooledFiles(spoolDir)).length === 0, 30_000, 200);
    } finally {
      await back.gw.stop();
    }
  });
});
