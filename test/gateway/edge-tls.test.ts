/**
 * TLS and AUTH at the edge: the implicit-TLS listener, certificate reload without a restart (file watch and the
 * reload call SIGHUP makes; a broken renewal keeps the old certificate), and SMTP AUTH for forwarding MTAs — only
 * after STARTTLS unless the client is listed in plaintextFrom, required before MAIL when the mode says so, and never
 * a user name, password or AUTH token in the logs.
 */
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { nodesKey } from '../../gateway/cluster/node.js';
import type { ReceivingConfigInput } from '../../shared/config/index.js';
import { startGateway, type RunningGateway } from '../../gateway/gateway.js';
import { hashPassword } from '../../gateway/smtp/auth.js';
import { tempDir } from '../support/files.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { LineClient } from './edge-helpers.js';
import { ACCOUNT, capturedLog, REGION, runtimeFor, selfSignedCert, waitFor } from './helpers.js';

const USER = 'relay-one';
const PASSWORD = 'correct horse battery staple';
let redis: RedisServer;
let dir: Awaited<ReturnType<typeof tempDir>>;
let gw: RunningGateway;

/** This file's one rule, with the gateway section each test needs. */
function edgeTlsRuntime(gateway: NonNullable<ReceivingConfigInput['gateway']>) {
  return runtimeFor({ region: REGION, accountId: ACCOUNT, ruleSetName: 'edge-tls', rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: 'unused' } }], gateway });
}
let certs: { live: { certFile: string; keyFile: string }; first: { certFile: string; keyFile: string }; second: { certFile: string; keyFile: string } };
// Without the logger's net for sensitive fields: what the code hands the logger must carry no secret either.
const { log, raw: logLines } = capturedLog('debug', { net: false });

beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedis(), tempDir('mailroom-edge-tls-')]);
  const { mkdir } = await import('node:fs/promises');
  for (const d of ['live', 'first', 'second']) await mkdir(join(dir.path, d));
  const [first, second] = await Promise.all([selfSignedCert(join(dir.path, 'first')), selfSignedCert(join(dir.path, 'second'))]);
  const live = { certFile: join(dir.path, 'live', 'cert.pem'), keyFile: join(dir.path, 'live', 'key.pem') };
  await copyFile(first.certFile, live.certFile);
  await copyFile(first.keyFile, live.keyFile);
  certs = { live, first, second };
  // A cheap cost keeps the test fast; the format and check are the same as with the default cost.
  await writeFile(join(dir.path, 'users'), `# relays\n${USER}:${await hashPassword(PASSWORD, { ln: 10, r: 8, p: 1 })}\n`);
  const runtime = edgeTlsRuntime({
    hostname: 'mx.tls.test',
    spoolDir: join(dir.path, 'spool'),
    smtp: {
      port: 0,
      reverseDns: false,
      greetingDelayMs: 0,
      tls: { ...live, implicitPort: 0 },
      auth: { mode: 'required', usersFile: join(dir.path, 'users'), plaintextFrom: ['127.0.0.7/32'] },
    },
    redis: { url: redis.url, prefix: 'edge-tls' },
  });
  gw = await startGateway(runtime, { smtp: true, workers: false }, log);
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  await redis?.stop();
  await dir?.remove();
});

const ports = () => gw.smtp!.addresses;

async function fingerprintOn(port: number, starttls: boolean): Promise<string> {
  if (!starttls) {
    const s = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
    const fp = s.getPeerCertificate().fingerprint256;
    s.destroy();
    return fp;
  }
  const c = await LineClient.open(port);
  await c.reply();
  await c.command('EHLO client.example.net');
  await c.startTls();
  const fp = (c.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
  c.close();
  return fp;
}

async function fingerprintOfFile(certFile: string): Promise<string> {
  const { X509Certificate } = await import('node:crypto');
  const { readFile } = await import('node:fs/promises');
  return new X509Certificate(await readFile(certFile)).fingerprint256;
}

const plain = Buffer.from(`\0${USER}\0${PASSWORD}`).toString('base64');
const wrong = Buffer.from(`\0${USER}\0not it`).toString('base64');

describe('AUTH', () => {
  it('required: MAIL before AUTH is 530; AUTH before STARTTLS is 538; after it a wrong password is 535, the right one 235', async () => {
    const c = await LineClient.open(ports().smtp!.port);
    expect(await c.reply()).toMatch(/^220 /);
    expect(await c.command('EHLO relay.example.net')).toMatch(/STARTTLS/);
    expect(await c.command('MAIL FROM:<a@origin.example>')).toBe('530 5.7.0 Authentication required');
    expect(await c.command(`AUTH PLAIN ${plain}`)).toMatch(/^538 5\.7\.11 /);
    await c.startTls();
    expect(await c.command('EHLO relay.example.net')).toMatch(/AUTH PLAIN LOGIN/);
    expect(await c.command(`AUTH PLAIN ${wrong}`)).toBe('535 5.7.8 Authentication credentials invalid');
    expect(await c.command(`AUTH PLAIN ${Buffer.from(`\0nobody\0${PASSWORD}`).toString('base64')}`)).toBe('535 5.7.8 Authentication credentials invalid');
    expect(await c.command(`AUTH PLAIN ${plain}`)).toMatch(/^235 /);
    expect(await c.command('MAIL FROM:<a@origin.example>')).toMatch(/^250/);
    expect(await c.command('RCPT TO:<user@example.com>')).toMatch(/^250/);
    const [r] = await c.data('Subject: relayed\r\n\r\nbody');
    expect(r).toMatch(/^250 Ok \S+$/);
    c.close();
  });

  it('LOGIN without TLS from a client in plaintextFrom; on the implicit-TLS port without STARTTLS', async () => {
    const c = await LineClient.open(ports().smtp!.port, { localAddress: '127.0.0.7' });
    expect(await c.reply()).toMatch(/^220 /);
    expect(await c.command('EHLO relay.example.net')).toMatch(/^250/);
    expect(await c.command('AUTH LOGIN')).toMatch(/^334 /);
    expect(await c.command(Buffer.from(USER).toString('base64'))).toMatch(/^334 /);
    expect(await c.command(Buffer.from(PASSWORD).toString('base64'))).toMatch(/^235 /);
    c.close();

    const s = await LineClient.open(ports().smtps!.port, { tls: true });
    expect(await s.reply()).toMatch(/^220 mx\.tls\.test ESMTP/);
    const ehlo = await s.command('EHLO relay.example.net');
    expect(ehlo).not.toMatch(/STARTTLS/);
    expect(await s.command(`AUTH PLAIN ${plain}`)).toMatch(/^235 /);
    s.close();
  });

  it('no log line carries the user name, the password or the AUTH token', () => {
    const all = logLines.join('\n');
    expect(all).toMatch(/"msg":"authenticated"/);
    expect(all).toMatch(/"msg":"authentication failed"/);
    for (const secret of [USER, PASSWORD, plain, wrong, Buffer.from(USER).toString('base64'), Buffer.from(PASSWORD).toString('base64')]) expect(all).not.toContain(secret);
  });
});

describe('certificate reload', () => {
  it('a renewal written over the files is served to new sessions (STARTTLS and implicit TLS) without a restart', async () => {
    const [fp1, fp2] = await Promise.all([fingerprintOfFile(certs.first.certFile), fingerprintOfFile(certs.second.certFile)]);
    expect(await fingerprintOn(ports().smtp!.port, true)).toBe(fp1);
    // An open session keeps working across the reload.
    const open = await LineClient.open(ports().smtps!.port, { tls: true });
    expect(await open.reply()).toMatch(/^220 /);
    await copyFile(certs.second.keyFile, certs.live.keyFile);
    await copyFile(certs.second.certFile, certs.live.certFile);
    await waitFor('the new certificate on STARTTLS', async () => (await fingerprintOn(ports().smtp!.port, true)) === fp2, 10_000, 200);
    expect(await fingerprintOn(ports().smtps!.port, false)).toBe(fp2);
    expect(await open.command('EHLO still.example.net')).toMatch(/^250/);
    open.close();
  });

  it('a key that does not match the certificate keeps the previous pair (SIGHUP path)', async () => {
    const fp2 = await fingerprintOfFile(certs.second.certFile);
    await copyFile(certs.first.keyFile, certs.live.keyFile); // second cert + first key: a half-done renewal
    expect(gw.smtp!.reloadTls('test')).toBe(false);
    expect(await fingerprintOn(ports().smtp!.port, true)).toBe(fp2);
    expect(logLines.join('\n')).toMatch(/TLS certificate reload failed; keeping the previous certificate/);
    await copyFile(certs.first.certFile, certs.live.certFile); // now a consistent pair again
    gw.smtp!.reloadTls('test'); // false when the file watch got there first
    const fp1 = await fingerprintOfFile(certs.first.certFile);
    await waitFor('the consistent pair', async () => (await fingerprintOn(ports().smtp!.port, true)) === fp1, 10_000, 200);
  });
});

describe('a certificate that cannot be read', () => {
  it('fails the start with the field and the fix, before the node is registered in Redis', async () => {
    const runtime = edgeTlsRuntime({
      hostname: 'mx.tls.test',
      nodeId: 'no-cert',
      spoolDir: join(dir.path, 'spool-no-cert'),
      smtp: { port: 0, reverseDns: false, tls: { certFile: certs.live.certFile, keyFile: join(dir.path, 'missing-key.pem') } },
      redis: { url: redis.url, prefix: 'edge-tls-no-cert' },
    });
    const err = await startGateway(runtime, { smtp: true, workers: false }, pino({ level: 'silent' })).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(String((err as { problems?: Array<{ path: string }> } | undefined)?.problems?.[0]?.path)).toBe('gateway.smtp.tls.keyFile');
    const probe = new Redis({ port: redis.port, host: '127.0.0.1' });
    try {
      expect(await probe.hgetall(nodesKey('edge-tls-no-cert')), 'no node left behind in Redis').toEqual({});
    } finally {
      probe.disconnect();
    }
  });
});
