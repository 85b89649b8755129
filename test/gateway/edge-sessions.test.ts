/**
 * Sessions at the edge, counted: every admitted connection holds one slot of the overall and per-client limits until
 * its session ends — plain, after STARTTLS, on the implicit-TLS port, cut off mid-handshake — and the slot, the
 * per-client count and the `mailroom_smtp_connections` gauge come back to zero. The implicit-TLS port decides
 * before the handshake and gives the handshake its own timeout. Recipients are bounded in bytes; AUTH failures per
 * connection and per address, and password checks at once. Real sockets, Redis, TLS; no workers.
 */
import { writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../../gateway/gateway.js';
import { hashPassword } from '../../gateway/smtp/auth.js';
import { tempDir } from '../support/files.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { LineClient } from './edge-helpers.js';
import { ACCOUNT, REGION, runtimeFor, selfSignedCert, testLogger, waitFor } from './helpers.js';

const USER = 'relay-one';
const PASSWORD = 'correct horse battery staple';
const FAILURE_DELAY_MS = 200;
let redis: RedisServer;
let dir: Awaited<ReturnType<typeof tempDir>>;
let gw: RunningGateway;

beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedis(), tempDir('mailroom-edge-sessions-')]);
  const tls = await selfSignedCert(dir.path);
  await writeFile(join(dir.path, 'users'), `${USER}:${await hashPassword(PASSWORD, { ln: 10, r: 8, p: 1 })}\n`);
  const runtime = runtimeFor({
    region: REGION,
    accountId: ACCOUNT,
    ruleSetName: 'edge-sessions',
    rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: 'unused' } }],
    gateway: {
      hostname: 'mx.sessions.test',
      spoolDir: join(dir.path, 'spool'),
      http: { port: 0 },
      smtp: {
        port: 0,
        reverseDns: false,
        greetingDelayMs: 0,
        // Loopback is trusted by default, which would exempt every test client from the per-client limit.
        trustedNetworks: [],
        maxConnections: 20,
        maxConnectionsPerClient: 4,
        maxRecipients: 1_000,
        tls: { ...tls, implicitPort: 0, watch: false, handshakeTimeoutMs: 1_500 },
        receiptFilters: { block: ['127.0.0.66'] },
        auth: {
          mode: 'optional',
          usersFile: join(dir.path, 'users'),
          plaintextFrom: ['127.0.0.0/8'],
          failureDelayMs: FAILURE_DELAY_MS,
          maxFailuresPerClient: 5,
          failureWindowMs: 60_000,
          maxConcurrentChecks: 1,
          maxQueuedChecks: 1,
        },
      },
      redis: { url: redis.url, prefix: 'edge-sessions' },
    },
  });
  gw = await startGateway(runtime, { smtp: true, workers: false }, testLogger());
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  await redis?.stop();
  await dir?.remove();
});

const ports = () => gw.smtp!.addresses;

async function gauge(): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${gw.httpAddress!.port}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const line = (await r.text()).split('\n').find((l) => l.startsWith('mailroom_smtp_connections '));
  return Number(line?.split(' ')[1]);
}

/** Every slot given back: the overall count, the per-client counts and the gauge. */
async function allSlotsFree(): Promise<void> {
  await waitFor('every connection slot given back', async () => gw.smtp!.edge.openConnections === 0 && gw.smtp!.edge.connectedClients === 0, 10_000, 50);
  expect(await gauge()).toBe(0);
}

describe('connection slots', () => {
  it('STARTTLS sessions give their slot back: six in a row from one address (limit 4), then a plain session', async () => {
    for (let i = 0; i < 6; i++) {
      const c = await LineClient.open(ports().smtp!.port, { localAddress: '127.0.0.21' });
      expect(await c.reply(), `session ${i + 1}`).toMatch(/^220 /);
      expect(await c.command('EHLO client.example.net')).toMatch(/STARTTLS/);
      expect(await c.startTls()).toMatch(/^220 /);
      expect(await c.command('EHLO client.example.net')).toMatch(/^250/);
      expect(await c.command('QUIT')).toMatch(/^221 /);
      await c.untilClosed();
    }
    await allSlotsFree();
    const plain = await LineClient.open(ports().smtp!.port, { localAddress: '127.0.0.21' });
    expect(await plain.reply()).toMatch(/^220 /);
    expect(await plain.command('QUIT')).toMatch(/^221 /);
    await plain.untilClosed();
    await allSlotsFree();
  });
});

describe('the implicit-TLS port', () => {
  /** A plain TCP connection that sends nothing; resolves `closed` when the server drops it. */
  async function idle(port: number, localAddress: string): Promise<{ socket: Socket; closed: Promise<number> }> {
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    socket.on('error', () => undefined);
    const opened = Date.now();
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - opened)));
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return { socket, closed };
  }

  it('45 idle connections from one address hold only its per-client share before the handshake; another client is served; the idle ones are closed after tls.handshakeTimeoutMs', async () => {
    const port = ports().smtps!.port;
    const idles = await Promise.all(Array.from({ length: 45 }, () => idle(port, '127.0.0.31')));
    // Those over the per-client limit (4) are closed at once, before any handshake.
    const early = await Promise.all(idles.map((i) => Promise.race([i.closed, new Promise<undefined>((r) => setTimeout(() => r(undefined), 500))])));
    expect(early.filter((t) => t === undefined)).toHaveLength(4);
    expect(gw.smtp!.edge.openConnections).toBe(4);

    const other = await LineClient.open(port, { tls: true, localAddress: '127.0.0.32' });
    expect(await other.reply()).toMatch(/^220 mx\.sessions\.test ESMTP/);
    expect(await other.command('QUIT')).toMatch(/^221 /);
    await other.untilClosed();

    // The four admitted ones never started a handshake: closed after the handshake timeout (1.5 s here).
    const lasted = await Promise.all(idles.map((i) => i.closed));
    for (const ms of lasted.sort((a, b) => b - a).slice(0, 4)) {
      expect(ms).toBeGreaterThanOrEqual(1_400);
      expect(ms).toBeLessThan(8_000);
    }
    await allSlotsFree();
  });

  it('a blocked address is closed before the handshake (no TLS work for it); an allowed one gets its greeting', async () => {
    const port = ports().smtps!.port;
    const err = await LineClient.open(port, { tls: true, localAddress: '127.0.0.66' }).then(
      (c) => (c.close(), undefined),
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/socket disconnected|ECONNRESET|socket hang up/i);
    const ok = await LineClient.open(port, { tls: true, localAddress: '127.0.0.67' });
    expect(await ok.reply()).toMatch(/^220 /);
    ok.close();
    await allSlotsFree();
  });
});

describe('recipients', () => {
  it('are bounded in bytes as well as in number: past 64 KiB of addresses, RCPT gets 452 4.5.3 (the notification lists them all)', async () => {
    const c = await LineClient.open(ports().smtp!.port, { localAddress: '127.0.0.41' });
    try {
      expect(await c.reply()).toMatch(/^220 /);
      await c.command('EHLO client.example.net');
      expect(await c.command('MAIL FROM:<a@origin.example>')).toMatch(/^250/);
      // 248-byte addresses, 251 bytes each in JSON: 261 of them fit in 65,536 bytes, the 262nd does not.
      const address = (i: number) => `${'r'.repeat(232)}${String(i).padStart(4, '0')}@example.com`;
      expect(JSON.stringify(address(0)).length + 1).toBe(251);
      for (let i = 0; i < 261; i++) expect(await c.command(`RCPT TO:<${address(i)}>`), `recipient ${i}`).toMatch(/^250/);
      expect(await c.command(`RCPT TO:<${address(261)}>`)).toBe('452 4.5.3 Too many recipients: their addresses add up to more than 65536 bytes, send the rest in another transaction');
      // One already listed is not counted twice.
      expect(await c.command(`RCPT TO:<${address(0).toUpperCase()}>`)).toMatch(/^250/);
      expect(await c.command('RCPT TO:<short@example.com>')).toMatch(/^250/);
    } finally {
      c.close();
    }
    await allSlotsFree();
  });
});

describe('AUTH limits', () => {
  const plain = (user: string, password: string) => `AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString('base64')}`;
  async function session(localAddress: string): Promise<LineClient> {
    const c = await LineClient.open(ports().smtp!.port, { localAddress });
    expect(await c.reply()).toMatch(/^220 /);
    expect(await c.command('EHLO relay.example.net')).toMatch(/AUTH PLAIN LOGIN/);
    return c;
  }
  async function metric(result: string): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${gw.httpAddress!.port}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`mailroom_smtp_auth_total{result="${result}"} `));
    return Number(line?.split(' ')[1] ?? 0);
  }

  it('per connection: failures are answered after failureDelayMs, the third gets 421 4.7.0 and the connection closes', async () => {
    const failuresBefore = await metric('failure');
    const c = await session('127.0.0.51');
    for (let i = 0; i < 2; i++) {
      const t = Date.now();
      expect(await c.command(plain(USER, `wrong ${i}`))).toBe('535 5.7.8 Authentication credentials invalid');
      expect(Date.now() - t).toBeGreaterThanOrEqual(FAILURE_DELAY_MS - 10);
    }
    expect(await c.command(plain(USER, 'wrong 2'))).toBe('421 4.7.0 mx.sessions.test Too many failed authentication attempts on this connection (limit 3), closing connection');
    await c.untilClosed();
    expect(await metric('failure')).toBe(failuresBefore + 3);
    await allSlotsFree();
  });

  it('per client address: after 5 failures in the window, AUTH gets 454 4.7.0 unchecked, the right password too; another address logs in', async () => {
    const lockedBefore = await metric('locked_out');
    const a = await session('127.0.0.52');
    for (let i = 0; i < 2; i++) expect(await a.command(plain(USER, `wrong ${i}`))).toMatch(/^535 /);
    a.close();
    const b = await session('127.0.0.52');
    for (let i = 0; i < 2; i++) expect(await b.command(plain(USER, `wrong ${i}`))).toMatch(/^535 /);
    b.close();
    const c = await session('127.0.0.52');
    expect(await c.command(plain(USER, 'wrong again'))).toMatch(/^535 /); // the fifth
    expect(await c.command(plain(USER, PASSWORD))).toMatch(/^454 4\.7\.0 Too many failed authentication attempts from \[127\.0\.0\.52\], try again in (5\d|60) s$/);
    c.close();
    expect(await metric('locked_out')).toBe(lockedBefore + 1);
    const other = await session('127.0.0.53');
    expect(await other.command(plain(USER, PASSWORD))).toMatch(/^235 /);
    other.close();
    await allSlotsFree();
  });

  it('password checks run one at a time here (maxConcurrentChecks 1) with one waiting (maxQueuedChecks 1): the rest get 454 at once', async () => {
    const busyBefore = await metric('busy');
    // Unknown users cost a full-strength scrypt (the constant-time dummy), long enough to overlap.
    const clients = await Promise.all(['127.0.0.54', '127.0.0.55', '127.0.0.56', '127.0.0.57'].map(session));
    for (const c of clients) c.write(`${plain('nobody', 'x')}\r\n`);
    const answers = await Promise.all(clients.map((c) => c.reply()));
    for (const c of clients) c.close();
    expect(answers.filter((r) => r.startsWith('535 ')).length).toBe(2);
    expect(answers.filter((r) => r === '454 4.7.0 Temporary authentication failure, try again later').length).toBe(2);
    expect(await metric('busy')).toBe(busyBefore + 2);
    await allSlotsFree();
  });
});
