/**
 * Redis as ElastiCache runs it with in-transit encryption and an AUTH token: TLS only, a password, a certificate
 * from a CA the client must trust. Mail goes through end to end over that; and each way of getting the URL wrong is
 * refused with its cause and fix — at start for what waiting cannot mend, and by `mailroom queue` at once — instead
 * of ioredis's "Connection is closed.".
 */
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/files.js';
import { startMoto, type Moto } from '../support/moto.js';
import { freePort } from '../support/ports.js';
import type { Started } from '../support/process.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { killHard, mailroomCli, startMailroom, writeConfig } from './child.js';
import { ACCOUNT, awsClients, createBuckets, listKeys, rawMessage, REGION, selfSignedCert, sendRaw, waitFor, type AwsFixture } from './helpers.js';

const PASSWORD = 'token/with:odd@chars';
let moto: Moto;
let redis: RedisServer;
let aws: AwsFixture;
let dir: Awaited<ReturnType<typeof tempDir>>;
let ca: string;
let gateway: Started | undefined;

beforeAll(async () => {
  dir = await tempDir('mailroom-redis-tls-');
  const cert = await selfSignedCert(dir.path, { cn: 'redis.test', altNames: 'IP:127.0.0.1,DNS:localhost' });
  ca = cert.certFile;
  [moto, redis] = await Promise.all([startMoto(), startRedis({ tls: cert, password: PASSWORD })]);
  aws = awsClients(moto);
  await createBuckets(aws, 'tls-redis');
}, 120_000);

afterAll(async () => {
  if (gateway) await killHard(gateway);
  aws?.destroy();
  await Promise.all([moto?.stop(), redis?.stop()]);
  await dir?.remove();
});

async function configFor(name: string, url: string, port = 0): Promise<string> {
  return writeConfig(dir.path, `${name}.json`, {
    region: REGION,
    accountId: ACCOUNT,
    ruleSetName: name,
    rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: 'tls-redis', objectKeyPrefix: `${name}/` } }],
    gateway: { hostname: 'mx.tls.test', nodeId: name, spoolDir: `${dir.path}/${name}`, smtp: { port, reverseDns: false }, redis: { url, prefix: name } },
  });
}

const port = () => new URL(redis.url).port;

describe('Redis over TLS with a password', () => {
  it('carries mail end to end (rediss:// with the password in the URL, the CA from NODE_EXTRA_CA_CERTS)', async () => {
    expect(redis.url).toMatch(/^rediss:\/\/:[^@]+@127\.0\.0\.1:\d+$/);
    const smtpPort = await freePort();
    gateway = await startMailroom('gateway', await configFor('ok', redis.url, smtpPort), { ...moto.env, NODE_EXTRA_CA_CERTS: ca }, smtpPort);
    const sent = await sendRaw(smtpPort, { from: 'a@origin.example', to: ['user@example.com'] }, rawMessage([['Subject', 'over tls']], 'hello\r\n'));
    await waitFor('stored', async () => (await listKeys(aws, 'tls-redis', 'ok/')).includes(`ok/${sent.messageId}`), 30_000, 250);
    // The password never reaches the logs.
    expect(gateway.output()).not.toContain(PASSWORD);
    expect(gateway.output()).not.toContain(encodeURIComponent(PASSWORD));
    // The queue command over the same TLS connection, under the gateway's key prefix: it finds the node.
    const q = await mailroomCli(['queue', '--json', '--redis-url', redis.url, '--prefix', 'ok'], { NODE_EXTRA_CA_CERTS: ca });
    expect(q.code, q.stderr).toBe(0);
    expect((JSON.parse(q.stdout) as { nodes: Array<{ node: string }> }).nodes.map((n) => n.node)).toEqual(['ok']);
    expect(q.stdout + q.stderr).not.toContain(PASSWORD);
  }, 90_000);

  it('a wrong password or an untrusted certificate stops the gateway at start, with the cause and the fix', async () => {
    const wrong = await mailroomCli(['gateway', '--config', await configFor('wrong', `rediss://:nope@127.0.0.1:${port()}`)], { ...moto.env, NODE_EXTRA_CA_CERTS: ca });
    expect(wrong.code).not.toBe(0);
    // Refused at once (not after waiting out start-up: that message begins "cannot reach").
    expect(wrong.stderr).toContain(`Redis at rediss://:***@127.0.0.1:${port()}: Redis refused the login (WRONGPASS invalid username-password pair or user is disabled): put the user and password in the URL`);
    expect(wrong.stderr).not.toContain('cannot reach');

    const untrusted = await mailroomCli(['gateway', '--config', await configFor('untrusted', redis.url)], { ...moto.env });
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).toContain('TLS: self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)');
    expect(untrusted.stderr).toContain('NODE_EXTRA_CA_CERTS=<ca.pem>');
    for (const r of [wrong, untrusted]) expect(r.stderr + r.stdout).not.toContain(PASSWORD);
  }, 60_000);

  it('`mailroom queue` names each mistake: no password, plain redis:// to a TLS port, a user without INFO, nothing listening', async () => {
    const env = { NODE_EXTRA_CA_CERTS: ca };
    const noPassword = await mailroomCli(['queue', '--redis-url', `rediss://127.0.0.1:${port()}`], env);
    expect([noPassword.code, noPassword.stderr.trim()]).toEqual([1, expect.stringContaining('Redis wants a login and the URL gives none (NOAUTH)')]);
    const plain = await mailroomCli(['queue', '--redis-url', `redis://:x@127.0.0.1:${port()}`], env);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain('if this Redis requires TLS (ElastiCache in-transit encryption), write the URL as rediss://');
    // An ACL user that may log in but not run INFO (BullMQ's version check needs it): named, with the grant to add.
    const admin = new Redis({ host: '127.0.0.1', port: Number(port()), password: PASSWORD, tls: { ca: readFileSync(ca) } });
    try {
      await admin.call('ACL', 'SETUSER', 'limited', 'on', '>limited-pw', '~*', '+@all', '-info');
    } finally {
      admin.disconnect();
    }
    const limited = await mailroomCli(['queue', '--redis-url', `rediss://limited:limited-pw@127.0.0.1:${port()}`], env);
    expect(limited.code).toBe(1);
    expect(limited.stderr).toContain(`Redis at rediss://limited:***@127.0.0.1:${port()}: the Redis user may not run what the gateway needs (NOPERM`);
    expect(limited.stderr).toContain('+info');
    const closed = await freePort();
    const nothing = await mailroomCli(['queue', '--redis-url', `redis://127.0.0.1:${closed}`], env);
    expect(nothing.stderr).toContain(`Redis at redis://127.0.0.1:${closed}: nothing listens there (connect ECONNREFUSED 127.0.0.1:${closed}): start redis-server`);
  }, 60_000);
});
