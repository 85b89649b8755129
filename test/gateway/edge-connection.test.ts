/**
 * The SMTP edge with real sockets, Redis and moto: PROXY protocol v1/v2 (the real client address reaches the
 * filters and the stored Received header), SES-style receipt filters for IPv4 and IPv6, connection and message
 * rate limits with their replies, the greeting delay and who skips it, and LMTP's per-recipient replies.
 * Client addresses other than 127.0.0.1 come from binding to other 127/8 addresses or from PROXY headers.
 */
import { open, readdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway } from '../../gateway/gateway.js';
import { SpoolReader } from '../../gateway/spool/reader.js';
import { tempDir } from '../support/files.js';
import { spooledMessage } from '../support/spool.js';
import { canMountTmpfs, mountTmpfs } from '../support/tmpfs.js';
import { clientsBackAfterRestart, startRedis, type RedisServer } from '../support/redis.js';
import { LineClient, proxyV1, proxyV2 } from './edge-helpers.js';
import { ACCOUNT, capturedLog, createBuckets, rawObject, REGION, runtimeFor, startTestGateway, waitFor, type AwsFixture, startBackends, type Backends } from './helpers.js';

const BUCKET = 'edge';
const LB = '127.0.0.2'; // the "load balancer": its connections must start with a PROXY header
let backends: Backends;
let redis: RedisServer;
let aws: AwsFixture;
let dir: Awaited<ReturnType<typeof tempDir>>;
type Gw = Awaited<ReturnType<typeof startTestGateway>>;
let proxied: Gw; // PROXY + filters + LMTP, with workers
let limited: Gw; // connection and rate limits
let delayed: Gw; // a long greeting delay

const rules = [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: BUCKET, objectKeyPrefix: 'in' } }];
const base = (name: string, smtp: Record<string, unknown>) => ({
  region: REGION,
  accountId: ACCOUNT,
  ruleSetName: 'edge',
  rules,
  gateway: { hostname: `mx.${name}.test`, spoolDir: join(dir.path, name), smtp: { port: 0, reverseDns: false, ...smtp }, redis: { url: redis.url, prefix: name, enqueueTimeoutMs: 2_000 } },
});

beforeAll(async () => {
  backends = await startBackends('mailroom-edge-', { motoEnv: true });
  ({ redis, dir, aws } = backends);
  await createBuckets(aws, BUCKET);
  proxied = await startTestGateway(
    base('proxied', {
      lmtpPort: 0,
      greetingDelayMs: 0,
      trustedNetworks: [],
      proxyProtocol: { trustedProxies: [`${LB}/32`], headerTimeoutMs: 2_000 },
      receiptFilters: { allow: ['127.0.0.0/8', '198.51.100.0/24', '2001:db8::/32'], block: ['198.51.100.66', '2001:db8:bad::/48'] },
    }),
  );
  limited = await startTestGateway(
    base('limited', { greetingDelayMs: 0, maxConnections: 3, maxConnectionsPerClient: 2, trustedNetworks: ['127.0.0.3/32'], rateLimit: { messagesPerMinute: 2 } }),
    { smtp: true, workers: false },
  );
  delayed = await startTestGateway(base('delayed', { greetingDelayMs: 60_000, trustedNetworks: ['127.0.0.3/32'] }), { smtp: true, workers: false });
}, 120_000);

afterAll(async () => {
  await Promise.all([proxied?.stop(), limited?.stop(), delayed?.stop()]);
  await backends?.stop();
});

const MSG = (subject: string) => `From: a@origin.example\r\nTo: user@example.com\r\nSubject: ${subject}\r\n\r\nbody`;

/** One message over an already greeted session; returns the message id from `250 Ok <id>`. */
async function sendOne(c: LineClient, subject: string): Promise<string> {
  expect(await c.command('EHLO client.example.net')).toMatch(/^250/);
  expect(await c.command('MAIL FROM:<a@origin.example>')).toMatch(/^250/);
  expect(await c.command('RCPT TO:<user@example.com>')).toMatch(/^250/);
  const [r] = await c.data(MSG(subject));
  const m = /^250 Ok (\S+)$/.exec(r!);
  expect(m, r).not.toBeNull();
  return m![1]!;
}

async function receivedOf(id: string): Promise<string> {
  const raw = await waitFor(`object in/${id}`, () => rawObject(aws, BUCKET, `in/${id}`), 30_000, 250);
  const text = raw.toString('latin1');
  return /^Received: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*/m.exec(text)![0];
}

describe('PROXY protocol from a trusted load balancer', () => {
  it('v1 TCP4, v2 TCP4 and v2 TCP6 with TLVs: the client address in the Received header is the real one', async () => {
    const cases: Array<[Buffer, RegExp]> = [
      [proxyV1('198.51.100.7'), /\(unknown \[198\.51\.100\.7\]\)/],
      [proxyV2({ src: '198.51.100.8', tlvs: [[0xea, Buffer.from('\x01vpce-0123456789abcdef0', 'latin1')]] }), /\(unknown \[198\.51\.100\.8\]\)/],
      [proxyV2({ src: '2001:db8::7', tlvs: [[0x04, Buffer.alloc(0)], [0x30, Buffer.from('x')]] }), /\(unknown \[IPv6:2001:db8::7\]\)/],
      // IPv4-mapped (a dual-stack balancer's IPv4 client), binary and text: the plain IPv4 address.
      [proxyV2({ src: '::ffff:c633:640b' }), /\(unknown \[198\.51\.100\.11\]\)/],
      [proxyV1('::ffff:198.51.100.12'), /\(unknown \[198\.51\.100\.12\]\)/],
      [proxyV1('2001:DB8:0:0:0:0:0:70'), /\(unknown \[IPv6:2001:db8::70\]\)/],
    ];
    for (const [header, received] of cases) {
      const c = await LineClient.open(proxied.port, { localAddress: LB, preface: header });
      expect(await c.reply()).toMatch(/^220 /);
      const id = await sendOne(c, 'proxied');
      c.close();
      expect(await receivedOf(id)).toMatch(received);
    }
  });

  it('v2 LOCAL (a health check) is the balancer itself; the header and the first command may share a packet', async () => {
    const c = await LineClient.open(proxied.port, { localAddress: LB, preface: proxyV2({ local: true }) });
    expect(await c.reply()).toMatch(/^220 /);
    const id = await sendOne(c, 'local');
    c.close();
    expect(await receivedOf(id)).toMatch(/\(unknown \[127\.0\.0\.2\]\)/);
  });

  it('a header that arrives a few bytes at a time is still read whole', async () => {
    const header = proxyV2({ src: '198.51.100.10', tlvs: [[0x05, Buffer.from('unique-id')]] });
    const c = await LineClient.open(proxied.port, { localAddress: LB });
    for (let i = 0; i < header.length; i += 5) {
      c.write(header.subarray(i, i + 5));
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(await c.reply()).toMatch(/^220 /);
    const id = await sendOne(c, 'split header');
    c.close();
    expect(await receivedOf(id)).toMatch(/\(unknown \[198\.51\.100\.10\]\)/);
  });

  it('a trusted proxy without a valid header is closed with no reply at all', async () => {
    for (const preface of [Buffer.from('EHLO x\r\n'), proxyV2({ src: '198.51.100.9', version: 3 }), Buffer.from('PROXY TCP4 198.51.100.9 nonsense 1 2\r\n'), Buffer.from('PROXY TCP4 ' + 'x'.repeat(200))]) {
      const c = await LineClient.open(proxied.port, { localAddress: LB, preface });
      expect(await c.untilClosed()).toBe('');
    }
    // Nothing sent at all: closed after headerTimeoutMs, still without a reply.
    const idle = await LineClient.open(proxied.port, { localAddress: LB });
    expect(await idle.untilClosed()).toBe('');
  });

  it('a PROXY header from a peer that is not a trusted proxy is just a bad command', async () => {
    const c = await LineClient.open(proxied.port);
    expect(await c.reply()).toMatch(/^220 /);
    expect(await c.command('PROXY TCP4 198.51.100.66 127.0.0.1 1 25')).toMatch(/^500 /);
    const id = await sendOne(c, 'direct');
    c.close();
    expect(await receivedOf(id)).toMatch(/\(unknown \[127\.0\.0\.1\]\)/);
  });
});

describe('receipt filters', () => {
  it('block wins over allow, an allow list refuses everyone else, for IPv4 and IPv6', async () => {
    const greet = async (header: Buffer) => {
      const c = await LineClient.open(proxied.port, { localAddress: LB, preface: header });
      const r = await c.reply();
      c.close();
      return r;
    };
    expect(await greet(proxyV1('198.51.100.66'))).toBe('554 5.7.1 Client host [198.51.100.66] rejected: a receipt filter blocks this address');
    expect(await greet(proxyV2({ src: '2001:db8:bad::1' }))).toBe('554 5.7.1 Client host [2001:db8:bad::1] rejected: a receipt filter blocks this address');
    expect(await greet(proxyV2({ src: '192.0.2.1' }))).toBe('554 5.7.1 Client host [192.0.2.1] rejected: no receipt filter allows this address');
    expect(await greet(proxyV1('2001:db9::1'))).toMatch(/^554 5\.7\.1 Client host \[2001:db9::1\] rejected: no receipt filter allows/);
    expect(await greet(proxyV2({ src: '2001:db8::1' }))).toMatch(/^220 /);
    expect(await greet(proxyV1('198.51.100.65'))).toMatch(/^220 /);
  });
});

describe('limits', () => {
  it('per-client and overall connection limits answer 421 4.7.0; a closed connection frees its slot', async () => {
    const a1 = await LineClient.open(limited.port);
    const a2 = await LineClient.open(limited.port);
    expect(await a1.reply()).toMatch(/^220 /);
    expect(await a2.reply()).toMatch(/^220 /);
    const a3 = await LineClient.open(limited.port);
    expect(await a3.reply()).toBe('421 4.7.0 mx.limited.test Too many connections from [127.0.0.1] (limit 2 at once), try again after closing some');
    expect(await a3.untilClosed()).toBe('');
    const b1 = await LineClient.open(limited.port, { localAddress: '127.0.0.4' });
    expect(await b1.reply()).toMatch(/^220 /);
    // A trusted relay is exempt from the per-client limit, not from the overall one.
    const t1 = await LineClient.open(limited.port, { localAddress: '127.0.0.3' });
    expect(await t1.reply()).toBe('421 4.7.0 mx.limited.test Too many connections (limit 3), try again in a few minutes');
    a1.close();
    await waitFor('a freed slot', async () => {
      const again = await LineClient.open(limited.port);
      const r = await again.reply();
      again.close();
      return r.startsWith('220') ? r : undefined;
    });
    for (const c of [a2, b1]) c.close();
  });

  it('the message rate limit answers MAIL with 451 4.7.1 saying when to retry; trusted relays are exempt', async () => {
    await waitFor('free slots', async () => limited.smtp!.edge.openConnections === 0 || undefined, 10_000);
    const c = await LineClient.open(limited.port, { localAddress: '127.0.0.5' });
    expect(await c.reply()).toMatch(/^220 /);
    expect(await c.command('EHLO client.example.net')).toMatch(/^250/);
    for (let i = 0; i < 2; i++) {
      expect(await c.command('MAIL FROM:<a@origin.example>')).toMatch(/^250/);
      expect(await c.command('RSET')).toMatch(/^250/);
    }
    expect(await c.command('MAIL FROM:<a@origin.example>')).toMatch(/^451 4\.7\.1 Rate limit exceeded for \[127\.0\.0\.5\]: at most 2 messages per minute, try again in (\d+) s$/);
    c.close();
    const t = await LineClient.open(limited.port, { localAddress: '127.0.0.3' });
    expect(await t.reply()).toMatch(/^220 /);
    expect(await t.command('EHLO relay.example.net')).toMatch(/^250/);
    for (let i = 0; i < 5; i++) {
      expect(await t.command('MAIL FROM:<a@origin.example>')).toMatch(/^250/);
      expect(await t.command('RSET')).toMatch(/^250/);
    }
    t.close();
  });
});

describe('greeting delay', () => {
  it('a client that talks before the (60 s) greeting gets 421; a trusted relay is greeted at once', async () => {
    const early = await LineClient.open(delayed.port, { localAddress: '127.0.0.6', preface: 'EHLO early.example.net\r\n' });
    const r = await early.reply(70_000);
    expect(r).toBe('421 mx.delayed.test You talk too soon');
    const relay = await LineClient.open(delayed.port, { localAddress: '127.0.0.3' });
    // The reply timeout (15 s) is far below the delay: a greeting at all proves the delay was skipped.
    expect(await relay.reply(15_000)).toMatch(/^220 mx\.delayed\.test ESMTP/);
    relay.close();
  }, 90_000);
});

describe('start-up', () => {
  it('a listener that cannot bind fails the start and leaves no other listener open', async () => {
    const taken = limited.port;
    await expect(startTestGateway(base('clash', { lmtpPort: taken }), { smtp: true, workers: false })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});

describe('LMTP', () => {
  it('one reply per accepted recipient after DATA, all for the one stored message', async () => {
    const c = await LineClient.open(proxied.smtp!.addresses.lmtp!.port);
    expect(await c.reply()).toMatch(/^220 mx\.proxied\.test LMTP/);
    expect(await c.command('EHLO client.example.net')).toMatch(/^500 /);
    expect(await c.command('LHLO relay.example.net')).toMatch(/^250/);
    expect(await c.command('MAIL FROM:<a@origin.example>')).toMatch(/^250/);
    expect(await c.command('RCPT TO:<one@example.com>')).toMatch(/^250/);
    expect(await c.command('RCPT TO:<nobody@elsewhere.test>')).toMatch(/^550 5\.1\.1/);
    expect(await c.command('RCPT TO:<two@example.com>')).toMatch(/^250/);
    const replies = await c.data(MSG('lmtp'), 2);
    const ids = replies.map((r) => /^250 Ok (\S+) <(\S+)>$/.exec(r));
    expect(ids.map((m) => m?.[2])).toEqual(['one@example.com', 'two@example.com']);
    expect(ids[0]![1]).toBe(ids[1]![1]);
    expect(await receivedOf(ids[0]![1]!)).toMatch(/for one@example\.com;/);
    c.close();
  });

  it('when the jobs cannot be added, every recipient gets 451 (the relay keeps the message)', async () => {
    // Its own Redis, so that stopping it leaves the other gateways alone.
    const redis2 = await startRedis();
    const down = await startTestGateway({ ...base('down', { lmtpPort: 0, greetingDelayMs: 0 }), gateway: { ...base('down', { lmtpPort: 0, greetingDelayMs: 0 }).gateway, redis: { url: redis2.url, prefix: 'down', enqueueTimeoutMs: 2_000 } } }, { smtp: true, workers: false });
    const c = await LineClient.open(down.smtp!.addresses.lmtp!.port);
    expect(await c.reply()).toMatch(/^220 /);
    expect(await c.command('LHLO relay.example.net')).toMatch(/^250/);
    expect(await c.command('MAIL FROM:<a@origin.example>')).toMatch(/^250/);
    expect(await c.command('RCPT TO:<one@example.com>')).toMatch(/^250/);
    expect(await c.command('RCPT TO:<two@example.com>')).toMatch(/^250/);
    await redis2.stop();
    let stopped = false;
    try {
      const replies = await c.data(MSG('lmtp down'), 2);
      expect(replies).toEqual(Array(2).fill('451 4.3.0 Local error in processing; the message was not accepted, try again later'));
      c.close();
      // Stopped while Redis is away, the gateway leaves no client behind that reconnects once Redis is back (BullMQ's
      // own clients did: their close cannot quit without a connection).
      await down.stop();
      stopped = true;
      expect(await clientsBackAfterRestart(redis2), 'no client of the stopped gateway reconnected').toEqual([]);
    } finally {
      c.close();
      if (!stopped) {
        await redis2.restart();
        await down.stop();
      }
      await redis2.stop();
    }
  });
});

describe('spool space', () => {
  /** A gateway (SMTP only) whose spool is on `spoolDir` with this reserve, and its log lines. */
  async function spaceGateway(name: string, spoolDir: string, spoolMinFreeBytes: number) {
    const { log, lines } = capturedLog();
    const cfg = base(name, { greetingDelayMs: 0 });
    const gw = await startGateway(runtimeFor({ ...cfg, gateway: { ...cfg.gateway, spoolDir, spoolMinFreeBytes } }), { smtp: true, workers: false }, log);
    return { gw, lines, port: gw.smtpAddress!.port };
  }
  const MiB = 1024 * 1024;
  const sizedMessage = (subject: string, bytes: number) => `${MSG(subject)}\r\n${`${'x'.repeat(998)}\r\n`.repeat(Math.ceil(bytes / 1000))}`;

  it.skipIf(!canMountTmpfs)('MAIL FROM gets 452 4.3.1 while the spool file system lacks the reserve plus the declared SIZE; the reserve running short is logged once', async () => {
    // A tmpfs of its own: nobody else changes its free space while the margins below are tested.
    const fs = mountTmpfs(64 * MiB)!;
    try {
      const st = await statfs(fs.path);
      const free = st.bavail * st.bsize;
      const { gw, lines, port } = await spaceGateway('roomy', join(fs.path, 'spool'), free - 20 * MiB);
      try {
        const c = await LineClient.open(port);
        expect(await c.reply()).toMatch(/^220 /);
        expect(await c.command('EHLO client.example.net')).toMatch(/^250/);
        // 30 MiB would eat into the reserve (20 MiB above it are free); 1 kB would not.
        expect(await c.command('MAIL FROM:<a@origin.example> SIZE=31457280')).toBe('452 4.3.1 mx.roomy.test Insufficient system storage, try again later');
        expect(await c.command('MAIL FROM:<a@origin.example> SIZE=1000')).toMatch(/^250/);
        expect(await c.command('RCPT TO:<user@example.com>')).toMatch(/^250/);
        expect((await c.data(MSG('fits')))[0]).toMatch(/^250 Ok /);
        c.close();
        // One large message refused is no state worth a warning: the reserve itself is there.
        expect(lines.filter((l) => /short of space/.test(String(l.msg)))).toEqual([]);

        // Sessions sending at once add up: a declared SIZE is held from MAIL FROM until its transaction ends (end of
        // DATA, RSET) or its session closes. 20 MiB above the reserve: 12 + 12 MiB do not fit, 12 + 7 do.
        const session = async () => {
          const s = await LineClient.open(port);
          expect(await s.reply()).toMatch(/^220 /);
          expect(await s.command('EHLO client.example.net')).toMatch(/^250/);
          return s;
        };
        const full = '452 4.3.1 mx.roomy.test Insufficient system storage, try again later';
        const [a, b, d, e] = [await session(), await session(), await session(), await session()];
        try {
          expect(await a.command(`MAIL FROM:<a@origin.example> SIZE=${12 * MiB}`)).toMatch(/^250/);
          expect(await b.command(`MAIL FROM:<b@origin.example> SIZE=${12 * MiB}`), 'two 12 MiB messages on their way at once do not fit').toBe(full);
          expect(await b.command(`MAIL FROM:<b@origin.example> SIZE=${7 * MiB}`)).toMatch(/^250/);
          expect(await d.command(`MAIL FROM:<d@origin.example> SIZE=${2 * MiB}`), '12 + 7 + 2 MiB do not fit').toBe(full);
          // a gives up (RSET) and stays connected: its 12 MiB are free again at once.
          expect(await a.command('RSET')).toMatch(/^250/);
          expect(await d.command(`MAIL FROM:<d@origin.example> SIZE=${12 * MiB}`), "a's hold ended with its transaction").toMatch(/^250/);
          // b's DATA ends (a small message) with its next MAIL FROM pipelined behind the final ".": the 7 MiB of the
          // transaction that ended are given back (so 12 + 7 fit again), and the next one's 7 MiB are held.
          expect(await b.command('RCPT TO:<user@example.com>')).toMatch(/^250/);
          expect(await b.command('DATA')).toMatch(/^354/);
          b.write(`${MSG('declared more than it sent')}\r\n.\r\nMAIL FROM:<b@origin.example> SIZE=${7 * MiB}\r\n`);
          expect(await b.reply()).toMatch(/^250 Ok /);
          expect(await b.reply(), 'the pipelined MAIL FROM').toMatch(/^250/);
          expect(await e.command(`MAIL FROM:<e@origin.example> SIZE=${2 * MiB}`), 'the pipelined transaction holds its 7 MiB').toBe(full);
          // d's connection drops in the middle of its transaction: its 12 MiB are given back when the session closes.
          d.close();
          await waitFor("d's hold given back", async () => /^250/.test(await e.command(`MAIL FROM:<e@origin.example> SIZE=${2 * MiB}`)), 5_000, 50);
        } finally {
          for (const s of [a, b, d, e]) s.close();
        }
      } finally {
        await gw.stop();
      }

      const { gw: full, lines: fullLines, port: fullPort } = await spaceGateway('full', join(fs.path, 'full'), free + MiB);
      try {
        for (let i = 0; i < 2; i++) {
          const c = await LineClient.open(fullPort);
          expect(await c.reply()).toMatch(/^220 /);
          expect(await c.command('EHLO client.example.net')).toMatch(/^250/);
          expect(await c.command('MAIL FROM:<a@origin.example>')).toBe('452 4.3.1 mx.full.test Insufficient system storage, try again later');
          c.close();
        }
        const warned = fullLines.filter((l) => /short of space/.test(String(l.msg)));
        expect(warned, 'one warning for the state, not one per refusal').toHaveLength(1);
        expect(warned[0]).toMatchObject({ level: 40, needBytes: free + MiB });
        expect(await full.spool.list()).toEqual([]);
      } finally {
        await full.stop();
      }
    } finally {
      fs.remove();
    }
  });

  it.skipIf(!canMountTmpfs)('a spool file system that fills up mid-message: 452 4.3.1 (a streamed and a batched message), nothing partial kept, the session goes on', async () => {
    // 2 MiB, no reserve: the kernel's own ENOSPC, through the real write paths (a batch file's short write, a
    // streamed file's write).
    const fs = mountTmpfs(2 * MiB)!;
    const { gw, lines, port } = await spaceGateway('enospc', join(fs.path, 'spool'), 0);
    try {
      const c = await LineClient.open(port);
      expect(await c.reply()).toMatch(/^220 /);
      expect(await c.command('EHLO client.example.net')).toMatch(/^250/);
      const send = async (subject: string, bytes: number) => {
        expect(await c.command('MAIL FROM:<a@origin.example>')).toMatch(/^250/);
        expect(await c.command('RCPT TO:<user@example.com>')).toMatch(/^250/);
        return (await c.data(sizedMessage(subject, bytes)))[0];
      };
      expect(await send('streamed, fits', 1.2 * MiB)).toMatch(/^250 Ok /);
      // Streamed (over 256 KiB): the disk fills while DATA is still arriving (smtp-server replies once it ended).
      expect(await send('streamed, too big for what is left', 1.2 * MiB)).toBe('452 4.3.1 mx.enospc.test Insufficient system storage, try again later');
      expect(await send('streamed, fits in what is left', 0.7 * MiB)).toMatch(/^250 Ok /);
      // Batched (in memory, written in one go): a short write, then ENOSPC.
      expect(await send('batched, too big for what is left', 200 * 1024)).toBe('452 4.3.1 mx.enospc.test Insufficient system storage, try again later');
      expect(lines.filter((l) => l.msg === 'spool file system full; message refused')).toHaveLength(2);
      // Nothing partial kept: the two accepted messages are spooled, each whole; no partial file in incoming/.
      expect(await gw.spool.countSpooled()).toBe(2);
      expect(await readdir(join(fs.path, 'spool', 'incoming'))).toEqual([]);
      for (const id of await gw.spool.list()) {
        const reader = new SpoolReader(gw.spool);
        const f = await reader.entries(id);
        expect(f.entries).toHaveLength(1);
        const m = await spooledMessage({ reader }, id, f.entries[0]!.at, f.entries[0]!.record.envelope.messageId);
        // Whole: the file ends where the entry's DATA ends, and the DATA starts with the message as sent.
        expect((await stat(m.path)).size).toBe(m.dataOffset + m.dataLength);
        const fh = await open(m.path, 'r');
        const head = Buffer.alloc(80);
        await fh.read(head, 0, 80, m.dataOffset).finally(() => fh.close());
        expect(head.toString('latin1')).toMatch(/^From: a@origin\.example\r\nTo: user@example\.com\r\nSubject: streamed, fits/);
      }
      // The session goes on: a small message still fits and is taken.
      expect(await send('small, fits', 10 * 1024)).toMatch(/^250 Ok /);
      expect(await gw.spool.countSpooled()).toBe(3);
      c.close();
    } finally {
      await gw.stop();
      fs.remove();
    }
  });
});
