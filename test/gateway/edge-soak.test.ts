/**
 * A short soak of the SMTP edge: a few hundred sessions at once, mixed — plain, STARTTLS and implicit TLS, complete
 * ones, ones cut off mid-handshake or mid-DATA, failed logins, idle ones — from many client addresses, on loopback.
 * Afterwards no slot is held (overall, per client, the gauge), smtp-server holds no connection, and a fresh client
 * of each kind is served. Bounded: 300 sessions, 24 at a time, a few seconds.
 */
import { writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../../gateway/gateway.js';
import { hashPassword } from '../../gateway/smtp/auth.js';
import { tempDir } from '../support/files.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { LineClient } from './edge-helpers.js';
import { ACCOUNT, REGION, runtimeFor, selfSignedCert, testLogger, waitFor } from './helpers.js';

const SESSIONS = 300;
const AT_ONCE = 24;
const USER = 'soak';
const PASSWORD = 'soak password';
let redis: RedisServer;
let dir: Awaited<ReturnType<typeof tempDir>>;
let gw: RunningGateway;
/** The first bytes a TLS client sends (its ClientHello), to start handshakes that are then cut off. */
let clientHello: Buffer;

/** What a real TLS client writes first, captured from one handshake attempt against a listener that only records. */
async function captureClientHello(): Promise<Buffer> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer((s) => s.once('data', (d: Buffer) => (resolve(d), s.destroy(), server.close())));
    server.listen(0, '127.0.0.1', () => {
      const c = tlsConnect({ port: (server.address() as { port: number }).port, host: '127.0.0.1', rejectUnauthorized: false });
      c.on('error', () => undefined);
    });
    server.on('error', reject);
  });
}

beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedis(), tempDir('mailroom-edge-soak-')]);
  const tls = await selfSignedCert(dir.path);
  await writeFile(join(dir.path, 'users'), `${USER}:${await hashPassword(PASSWORD, { ln: 10, r: 8, p: 1 })}\n`);
  clientHello = await captureClientHello();
  const runtime = runtimeFor({
    region: REGION,
    accountId: ACCOUNT,
    ruleSetName: 'edge-soak',
    rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: 'unused' } }],
    gateway: {
      hostname: 'mx.soak.test',
      spoolDir: join(dir.path, 'spool'),
      http: { port: 0 },
      smtp: {
        port: 0,
        reverseDns: false,
        greetingDelayMs: 0,
        trustedNetworks: [],
        maxConnections: 40,
        maxConnectionsPerClient: 6,
        tls: { ...tls, implicitPort: 0, watch: false, handshakeTimeoutMs: 2_000 },
        auth: { mode: 'optional', usersFile: join(dir.path, 'users'), plaintextFrom: ['127.0.0.0/8'], failureDelayMs: 20, maxFailuresPerClient: 5 },
      },
      redis: { url: redis.url, prefix: 'edge-soak' },
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
const MESSAGE = 'From: a@origin.example\r\nTo: user@example.com\r\nSubject: soak\r\n\r\nbody\r\n';

/** A raw TCP connection that writes `bytes`, waits for the server's first answer (or a moment), then is cut off. */
async function cutAfter(port: number, localAddress: string, bytes: Buffer): Promise<void> {
  const s: Socket = connect({ port, host: '127.0.0.1', localAddress });
  s.on('error', () => undefined);
  await new Promise<void>((resolve) => s.once('connect', resolve).once('close', resolve));
  s.write(bytes);
  await new Promise((resolve) => {
    s.once('data', resolve).once('close', resolve);
    setTimeout(resolve, 300);
  });
  s.destroy();
}

/** Greeting, EHLO, and STARTTLS when asked; 'refused' when the edge turned the client away (a limit). */
async function open(kind: 'plain' | 'starttls' | 'implicit', localAddress: string): Promise<LineClient | 'refused'> {
  const port = kind === 'implicit' ? ports().smtps!.port : ports().smtp!.port;
  // On the implicit-TLS port a refusal is a connection closed before the handshake.
  const c = await LineClient.open(port, { localAddress, tls: kind === 'implicit' }).catch((err: Error) => {
    if (kind === 'implicit' && /disconnected|ECONNRESET/.test(err.message)) return 'refused' as const;
    throw err;
  });
  if (c === 'refused') return c;
  const greeting = await c.reply();
  if (greeting.startsWith('421')) return (c.close(), 'refused');
  expect(greeting).toMatch(/^220 /);
  expect(await c.command('EHLO soak.example.net')).toMatch(/^250/);
  if (kind === 'starttls') {
    expect(await c.startTls()).toMatch(/^220 /);
    expect(await c.command('EHLO soak.example.net')).toMatch(/^250/);
  }
  return c;
}

async function transaction(c: LineClient): Promise<void> {
  expect(await c.command('MAIL FROM:<a@origin.example>')).toMatch(/^250/);
  expect(await c.command('RCPT TO:<user@example.com>')).toMatch(/^250/);
  expect(await c.command('DATA')).toMatch(/^354/);
}

const auth = (password: string) => `AUTH PLAIN ${Buffer.from(`\0${USER}\0${password}`).toString('base64')}`;

/** Session `i`: one of eleven kinds, from one of 40 addresses. Resolves with what happened. */
async function session(i: number): Promise<string> {
  const from = `127.0.1.${(i % 40) + 1}`;
  const kind = i % 11;
  if (kind === 8) return cutAfter(ports().smtps!.port, from, clientHello).then(() => 'implicit cut mid-handshake');
  if (kind === 9) return cutAfter(ports().smtps!.port, from, Buffer.alloc(0)).then(() => 'implicit idle, gone');
  const tlsKind = kind % 3 === 0 ? 'plain' : kind % 3 === 1 ? 'starttls' : 'implicit';
  if (kind === 10) {
    // STARTTLS accepted, then the handshake is cut off after the server's first answer.
    const c = await LineClient.open(ports().smtp!.port, { localAddress: from });
    if ((await c.reply()).startsWith('421')) return (c.close(), 'refused');
    await c.command('EHLO soak.example.net');
    expect(await c.command('STARTTLS')).toMatch(/^220 /);
    c.write(clientHello);
    await new Promise((r) => setTimeout(r, 20));
    c.close();
    return 'starttls cut mid-handshake';
  }
  const c = await open(tlsKind, from);
  if (c === 'refused') return 'refused';
  try {
    switch (kind) {
      case 0:
      case 1:
      case 2: {
        await transaction(c);
        c.write(`${MESSAGE}.\r\n`);
        expect(await c.reply(30_000)).toMatch(/^250 Ok /);
        expect(await c.command('QUIT')).toMatch(/^221/);
        return `${tlsKind} delivered`;
      }
      case 3:
      case 4:
      case 5:
        await transaction(c);
        c.write(MESSAGE.slice(0, 40)); // no terminating dot: cut off mid-DATA
        return `${tlsKind} cut mid-DATA`;
      case 6: {
        const r = await c.command(auth('wrong'));
        expect(r).toMatch(/^(535 5\.7\.8|454 4\.7\.0) /);
        expect(await c.command('QUIT')).toMatch(/^221/);
        return `${tlsKind} failed AUTH`;
      }
      default: {
        // Gone while its (failing) password check or its pause is still running.
        c.write(`${auth('wrong too')}\r\n`);
        await new Promise((r) => setTimeout(r, 5));
        return `${tlsKind} gone during AUTH`;
      }
    }
  } finally {
    c.close();
  }
}

describe('soak', () => {
  it(`${SESSIONS} mixed sessions, ${AT_ONCE} at a time: afterwards no slot is held and fresh clients are served`, async () => {
    const started = Date.now();
    const outcomes = new Map<string, number>();
    let next = 0;
    await Promise.all(
      Array.from({ length: AT_ONCE }, async () => {
        while (next < SESSIONS) {
          const i = next++;
          const what = await session(i);
          outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
        }
      }),
    );
    // Every kind ran, and the complete ones were served (a limit may refuse a few, never most).
    const count = (what: string) => outcomes.get(what) ?? 0;
    const kinds = ['plain', 'starttls', 'implicit'].flatMap((t) => [`${t} delivered`, `${t} cut mid-DATA`]);
    kinds.push('plain failed AUTH', 'starttls gone during AUTH', 'implicit cut mid-handshake', 'implicit idle, gone', 'starttls cut mid-handshake');
    expect([...outcomes.keys()].filter((k) => k !== 'refused').sort()).toEqual(kinds.sort());
    for (const t of ['plain', 'starttls', 'implicit']) expect(count(`${t} delivered`), `${t} delivered`).toBeGreaterThan(10);
    expect(count('refused')).toBeLessThan(SESSIONS / 10);

    await waitFor('every slot given back', async () => gw.smtp!.edge.openConnections === 0 && gw.smtp!.edge.connectedClients === 0, 10_000, 50);
    await waitFor('smtp-server holds no connection', async () => gw.smtp!.servers.every((s) => s.smtp.connections.size === 0), 10_000, 50);
    const metrics = await (await fetch(`http://127.0.0.1:${gw.httpAddress!.port}/metrics`)).text();
    expect(metrics).toMatch(/^mailroom_smtp_connections 0$/m);

    for (const kind of ['plain', 'starttls', 'implicit'] as const) {
      const c = await open(kind, '127.0.1.1');
      expect(c).not.toBe('refused');
      const fresh = c as LineClient;
      await transaction(fresh);
      fresh.write(`${MESSAGE}.\r\n`);
      expect(await fresh.reply()).toMatch(/^250 Ok /);
      expect(await fresh.command('QUIT')).toMatch(/^221/);
      fresh.close();
    }
    expect(Date.now() - started).toBeLessThan(45_000);
  }, 60_000);
});
