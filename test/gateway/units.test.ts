/** The gateway's pure parts: settings precedence and errors, recipient routing, the spool format. */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, type ReceivingConfigInput } from '../../shared/config/index.js';
import { newMessageId } from '../../shared/ses/message-id.js';
import { cappedExponentialBackoff, deliveryBatch, deliveryJobId, isSpoolFileJobId, spoolFileJobs, type DeliveryJobData } from '../../gateway/queue/jobs.js';
import { overridesFrom, resolveRuntime } from '../../gateway/settings.js';
import { Credentials } from '../../gateway/smtp/auth.js';
import { RecipientRouter } from '../../gateway/smtp/routing.js';
import type { SpoolRecord } from '../../gateway/spool/format.js';
import { Spool, SpoolMissingError } from '../../gateway/spool/spool.js';
import { isOutOfSpace, SpoolFreeSpace } from '../../gateway/spool/free-space.js';
import { tempDir } from '../support/files.js';
import { spooledMessage } from '../support/spool.js';
import { notificationFor } from '../../gateway/worker/notify.js';
import { headerBlockFor } from '../../gateway/worker/stored-message.js';
import { deliver } from '../../gateway/worker/deliver.js';
import { Slots } from '../../gateway/worker/slots.js';

const base: ReceivingConfigInput = {
  region: 'us-east-1',
  accountId: '123456789012',
  ruleSetName: 'units',
  rules: [
    { name: 'exact', recipients: ['Support@Example.com'], s3Action: { bucketName: 'bucket-1' } },
    { name: 'domain', recipients: ['example.com'], s3Action: { bucketName: 'bucket-2' } },
    { name: 'sub', recipients: ['.example.org'], tlsPolicy: 'Require', s3Action: { bucketName: 'bucket-3' } },
    { name: 'disabled', enabled: false, recipients: ['off.example'], s3Action: { bucketName: 'bucket-4' } },
  ],
  gateway: { smtp: { port: 2600 }, redis: { url: 'redis://127.0.0.9:6379' } },
};

describe('settings', () => {
  it('defaults fill in; env overrides the file; flags override env', () => {
    const loaded = parseConfig(base);
    const fromFile = resolveRuntime(loaded, {}, 'f');
    expect(fromFile.settings.smtp.port).toBe(2600);
    expect(fromFile.settings.smtp.host).toBe('127.0.0.1');
    expect(fromFile.settings.worker.concurrency).toBe(8);
    expect(fromFile.settings.upload.checksums).toBe('WHEN_REQUIRED');
    expect(fromFile.settings.hostname.length).toBeGreaterThan(0);

    const env = { REDIS_URL: 'redis://env:6379', MAILROOM_SMTP_PORT: '2700', MAILROOM_CONCURRENCY: '3' };
    const viaEnv = resolveRuntime(loaded, overridesFrom({}, env), 'f');
    expect([viaEnv.settings.redis.url, viaEnv.settings.smtp.port, viaEnv.settings.worker.concurrency]).toEqual(['redis://env:6379', 2700, 3]);
    const viaFlag = resolveRuntime(loaded, overridesFrom({ 'smtp-port': '2800', 'redis-url': 'redis://flag:1' }, env), 'f');
    expect([viaFlag.settings.redis.url, viaFlag.settings.smtp.port]).toEqual(['redis://flag:1', 2800]);
    // MAILROOM_HTTP_HOST (a container's image sets it) turns the HTTP listener on, as MAILROOM_HTTP_PORT does.
    expect(fromFile.settings.http).toBeUndefined();
    expect(resolveRuntime(loaded, overridesFrom({}, { MAILROOM_HTTP_HOST: '0.0.0.0' }), 'f').settings.http).toMatchObject({ host: '0.0.0.0', port: 9464 });
    expect(resolveRuntime(loaded, overridesFrom({ 'http-host': '::1' }, { MAILROOM_HTTP_HOST: '0.0.0.0', MAILROOM_HTTP_PORT: '9500' }), 'f').settings.http).toMatchObject({ host: '::1', port: 9500 });
  });

  it('bad values name the flag or field and the fix', () => {
    const loaded = parseConfig(base);
    const problem = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).problems[0]!;
      }
      throw new Error('no error');
    };
    expect(problem(() => resolveRuntime(loaded, { smtpPort: 'abc' }, 'f'))).toMatchObject({ path: '--smtp-port', fix: expect.stringContaining('port number') });
    expect(problem(() => resolveRuntime(loaded, { redisUrl: 'localhost:6379' }, 'f'))).toMatchObject({ path: '--redis-url / REDIS_URL', fix: expect.stringContaining('redis://') });
    expect(problem(() => resolveRuntime(loaded, { concurrency: '0' }, 'f')).path).toBe('--concurrency');
    // A value from the environment is named by its variable (the flag that would override it in brackets).
    const fromEnv = (env: NodeJS.ProcessEnv, flags: Record<string, string> = {}) => problem(() => resolveRuntime(loaded, overridesFrom(flags, env), 'f'));
    expect(fromEnv({ MAILROOM_CONCURRENCY: '0' })).toMatchObject({ path: 'MAILROOM_CONCURRENCY (--concurrency)', message: '"0" is not a whole number from 1 to 10000' });
    expect(fromEnv({ MAILROOM_CONCURRENCY: '8' }, { concurrency: 'x' }).path).toBe('--concurrency');
    expect(fromEnv({ MAILROOM_SMTP_PORT: '70000' }).path).toBe('MAILROOM_SMTP_PORT (--smtp-port)');
    expect(fromEnv({ MAILROOM_HTTP_PORT: 'on' }).path).toBe('MAILROOM_HTTP_PORT (--http-port)');
    expect(fromEnv({ MAILROOM_REDIS_CLUSTER: 'maybe' }).path).toBe('MAILROOM_REDIS_CLUSTER (--redis-cluster)');
    expect(fromEnv({ REDIS_URL: 'localhost:6379' }).path).toBe('REDIS_URL (--redis-url)');
    expect(fromEnv({ MAILROOM_NODE_ID: '-bad id' })).toMatchObject({ path: 'MAILROOM_NODE_ID (--node-id)', message: expect.stringContaining('must be 1-63 letters') });
    expect(() => resolveRuntime(loaded, overridesFrom({}, { MAILROOM_CONCURRENCY: '0' }), 'f')).toThrow(/^MAILROOM_CONCURRENCY \(--concurrency\): 1 problem/);
    expect(problem(() => parseConfig({ ...base, gateway: { worker: { concurrency: 0 } } })).path).toBe('gateway.worker.concurrency');
    expect(() => parseConfig({ ...base, gateway: { smtp: { prot: 25 } } })).toThrow(/gateway\.smtp\.prot: unknown field/);
  });

  it('Redis Cluster: the prefix must carry a hash tag and the URL no database; --redis-cluster / MAILROOM_REDIS_CLUSTER override the file', () => {
    const problems = (gateway: unknown) => {
      try {
        parseConfig({ ...base, gateway });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).problems;
      }
      throw new Error('no error');
    };
    expect(problems({ redis: { cluster: true, prefix: 'mail' } })).toEqual([
      { path: 'gateway.redis.prefix', message: expect.stringContaining('has no hash tag'), fix: 'write it with braces, e.g. "{mail}"' },
    ]);
    // "{}" is no hash tag (Redis hashes the whole key then).
    expect(problems({ redis: { cluster: true, prefix: '{}mail' } })[0]!.path).toBe('gateway.redis.prefix');
    expect(problems({ redis: { cluster: true, url: 'redis://10.0.0.1:6379/2', prefix: '{mail}' } })).toEqual([
      { path: 'gateway.redis.url', message: expect.stringContaining('a Redis Cluster has only database 0'), fix: 'drop the /<db> part of the URL' },
    ]);
    // The same prefix and URL are fine on a single Redis, and a tag anywhere in the prefix counts.
    expect(parseConfig({ ...base, gateway: { redis: { url: 'redis://10.0.0.1:6379/2', prefix: 'mail' } } }).config.gateway).toBeDefined();
    const loaded = parseConfig({ ...base, gateway: { redis: { prefix: 'mx:{eu}' } } });
    expect(resolveRuntime(loaded, {}, 'f').settings.redis.cluster).toBe(false);
    expect(resolveRuntime(loaded, overridesFrom({}, { MAILROOM_REDIS_CLUSTER: 'yes' }), 'f').settings.redis.cluster).toBe(true);
    expect(resolveRuntime(loaded, overridesFrom({ 'redis-cluster': 'no' }, { MAILROOM_REDIS_CLUSTER: 'yes' }), 'f').settings.redis.cluster).toBe(false);
    expect(() => resolveRuntime(loaded, { redisCluster: 'maybe' }, 'f')).toThrow(ConfigError);
    // The flag turns cluster on for a file whose prefix has no tag: the schema still refuses it, naming the field.
    expect(() => resolveRuntime(parseConfig(base), { redisCluster: 'yes' }, 'f')).toThrow(/gateway\.redis\.prefix: "mailroom" has no hash tag/);
  });

  it('warns when a rule requires TLS but no certificate is configured', () => {
    expect(resolveRuntime(parseConfig(base), {}, 'f').warnings.join('\n')).toMatch(/tlsPolicy "Require" but gateway\.smtp\.tls is not set/);
  });
});

describe('spool free space', () => {
  it("adds up the sizes sessions declared until each one's hold is released; a new MAIL FROM of a session replaces its hold", async () => {
    const space = new SpoolFreeSpace('/spool', 30, { read: async () => ({ bavail: 100, bsize: 1 }) });
    await space.start();
    space.stop();
    expect(space.claim('a', 40)).toBeUndefined();
    expect(space.claim('b', 31), 'a and b together would eat into the reserve').toEqual({ free: 100, need: 101 });
    expect(space.heldBytes, 'a refused claim holds nothing').toBe(40);
    expect(space.claim('b', 30)).toBeUndefined();
    expect(space.claim('c', 0), 'nothing declared: only the reserve counts').toBeUndefined();
    expect(space.claim('c', 1)).toEqual({ free: 100, need: 101 });
    space.release('a');
    space.release('a');
    expect(space.heldBytes, 'released once').toBe(30);
    expect(space.claim('c', 40)).toBeUndefined();
    expect(space.claim('b', 0), "b's next transaction gives back its last hold").toBeUndefined();
    expect(space.heldBytes).toBe(40);
    space.release('unknown');
    expect(space.heldBytes).toBe(40);
    // A hold whose transaction ended without a release (RSET: no hook) stops counting once its `live` says so.
    let live = true;
    expect(space.claim('d', 20, () => live)).toBeUndefined();
    expect(space.claim('e', 11), '40 + 20 held').toEqual({ free: 100, need: 101 });
    live = false;
    expect(space.heldBytes).toBe(40);
    expect(space.claim('e', 11)).toBeUndefined();
  });

  it('refuses when free < reserve + declared SIZE, reads statfs every refreshMs in the background, reports the reserve running short and coming back, refuses nothing unread or off', async () => {
    let free = 100;
    let reads = 0;
    let t = 0;
    const reserve: Array<string> = [];
    const read = async () => {
      reads++;
      return { bavail: free, bsize: 1 };
    };
    const space = new SpoolFreeSpace('/spool', 30, { refreshMs: 1_000, read, now: () => t, onReserve: (s) => reserve.push(s ? `short ${s.free}/${s.need}` : 'back') });
    await space.start();
    space.stop(); // this test drives the clock itself; the timer is checked below
    expect(reads).toBe(1);
    expect(space.claim('s', 0)).toBeUndefined();
    expect(space.claim('s', 70)).toBeUndefined();
    expect(space.claim('s', 71), 'a message whose SIZE would eat into the reserve').toEqual({ free: 100, need: 101 });
    expect(reserve).toEqual([]);
    // The disk fills: seen after the next reading, which a check starts once the last one is refreshMs old.
    free = 20;
    t = 999;
    expect(space.claim('s', 0)).toBeUndefined();
    expect(reads).toBe(1);
    t = 1_000;
    expect(space.claim('s', 0), 'the check uses the last reading while a new one runs').toBeUndefined();
    await new Promise((r) => setImmediate(r));
    expect(reads).toBe(2);
    expect(space.claim('s', 0)).toEqual({ free: 20, need: 30 });
    expect(reserve).toEqual(['short 20/30']);
    free = 40;
    t = 2_000;
    space.claim('s', 0);
    await new Promise((r) => setImmediate(r));
    expect(space.claim('s', 0)).toBeUndefined();
    expect(reserve).toEqual(['short 20/30', 'back']);

    // The timer reads on its own during a quiet spell (no MAIL FROM needed to notice the disk filling).
    let timedReads = 0;
    const timed = new SpoolFreeSpace('/spool', 30, { refreshMs: 20, read: async () => ((timedReads++), { bavail: 10, bsize: 1 }), onReserve: (s) => reserve.push(s ? 'timed short' : 'timed back') });
    await timed.start();
    await new Promise((r) => setTimeout(r, 120));
    timed.stop();
    expect(timedReads).toBeGreaterThanOrEqual(3);
    expect(reserve.at(-1)).toBe('timed short');

    // A file system that cannot be read refuses nothing (the spool's writes report their own errors).
    const broken = new SpoolFreeSpace('/spool', 30, { read: () => Promise.reject(new Error('EIO')) });
    await broken.start();
    broken.stop();
    expect(broken.claim('s', 1e12)).toBeUndefined();
    // Reserve 0: no check, no reading.
    let offReads = 0;
    const off = new SpoolFreeSpace('/spool', 0, { read: async () => ((offReads++), { bavail: 0, bsize: 4096 }) });
    await off.start();
    expect(off.claim('s', 1e12)).toBeUndefined();
    expect(offReads).toBe(0);
    expect(isOutOfSpace(Object.assign(new Error('x'), { code: 'ENOSPC' }))).toBe(true);
    expect(isOutOfSpace(Object.assign(new Error('x'), { code: 'EDQUOT' }))).toBe(true);
    expect(isOutOfSpace(Object.assign(new Error('x'), { code: 'EIO' }))).toBe(false);
  });
});

describe('recipient routing', () => {
  const router = new RecipientRouter(parseConfig(base).config);
  it('matches as SES does and refuses with the right reply', () => {
    expect(router.route('support+tag@example.com', false)).toMatchObject({ ok: true, rules: [{ name: 'exact' }, { name: 'domain' }] });
    expect(router.route('other@EXAMPLE.com', false)).toMatchObject({ ok: true, rules: [{ name: 'domain' }] });
    expect(router.route('x@mail.example.org', true)).toMatchObject({ ok: true, rules: [{ name: 'sub' }] });
    const tls = router.route('x@mail.example.org', false);
    expect(tls.ok || tls.reply.responseCode).toBe(530);
    const none = router.route('x@example.org', true); // a bare parent domain is not a .subdomain match
    expect(none.ok || none.reply.message).toMatch(/^5\.1\.1 /);
    const off = router.route('x@off.example', true);
    expect(off.ok || off.reply.responseCode).toBe(550);
  });
  it('groups recipients per rule in rule-set order', () => {
    expect(router.rulesFor(['b@example.com', 'support@example.com', 'nobody@none.example'], false).map((r) => [r.name, r.recipients])).toEqual([
      ['exact', ['support@example.com']],
      ['domain', ['b@example.com', 'support@example.com']],
    ]);
  });
});

describe('spool and job contract', () => {
  const record = (id: string): SpoolRecord => ({
    v: 1,
    envelope: { messageId: id, receivedAt: new Date().toISOString(), mailFrom: '', helo: 'h.example', clientIp: '127.0.0.1', tls: false, byHost: 'mx.example', accountId: '123456789012', region: 'us-east-1' },
    rules: [{ name: 'r.1', recipients: ['a@example.com'], scanEnabled: false, s3Action: { bucketName: 'bucket-x', objectKeyPrefix: '' } }],
  });

  it('writes record + DATA, reads them back, refuses oversize without keeping it, removes', async () => {
    const dir = await tempDir();
    const spool = new Spool(dir.path);
    try {
      await spool.init({ clearIncoming: true });
      const id = newMessageId();
      const data = Buffer.from('Subject: x\r\n\r\nbody with "quotes" and \n bare LF\r\n');
      const r = await spool.receive(record(id), Object.assign(Readable.from([data.subarray(0, 5), data.subarray(5)]), { sizeExceeded: false }));
      expect(r).toMatchObject({ ok: true, dataLength: data.length, file: { id, entries: [{ at: 0 }] } });
      const msg = await spooledMessage(spool, id);
      expect(msg.record.envelope.messageId).toBe(id);
      expect(msg.record.rules).toEqual(record(id).rules);
      expect(msg.dataLength).toBe(data.length);
      const chunks: Buffer[] = [];
      for await (const c of spool.dataStream(msg)) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
      expect(await spool.list()).toEqual([id]);

      const big = newMessageId();
      const stream = Object.assign(Readable.from([Buffer.alloc(10), Buffer.alloc(10)]), { sizeExceeded: false });
      stream.on('data', () => (stream.sizeExceeded = true));
      expect((await spool.receive(record(big), stream)).ok).toBe(false);
      expect(await spool.list()).toEqual([id]);

      expect(await spool.remove(id)).toBe(true);
      await expect(spooledMessage(spool, id)).rejects.toBeInstanceOf(SpoolMissingError);
    } finally {
      await spool.close();
      await dir.remove();
    }
  });

  it('one flow per spool file: parent = file id, one delivery job per rule listing its messages and their places, colon-free deterministic ids', () => {
    const [a, b] = [newMessageId(), newMessageId()];
    const second = record(b);
    second.rules.push({ name: 'r.2', recipients: ['b@example.com'], scanEnabled: true, s3Action: { bucketName: 'bucket-y', objectKeyPrefix: 'y/' } });
    const flow = spoolFileJobs({ id: a, entries: [{ record: record(a), at: 0 }, { record: second, at: 812 }] }, { attempts: 5, backoffBaseMs: 100, keepCompleted: 10 });
    expect(flow.opts?.jobId).toBe(a);
    expect(flow.data).toEqual({ v: 1, spoolFile: `${a}.msg`, messageIds: [a, b] });
    expect(flow.children?.map((c) => c.opts?.jobId)).toEqual([deliveryJobId(a, 'r.1'), deliveryJobId(a, 'r.2')]);
    const [r1, r2] = flow.children!.map((c) => c.data as DeliveryJobData);
    expect(r1).toEqual({ v: 2, spoolFile: `${a}.msg`, rule: { name: 'r.1', scanEnabled: false, s3Action: { bucketName: 'bucket-x', objectKeyPrefix: '' } }, messages: [{ at: 0, envelope: record(a).envelope, recipients: ['a@example.com'] }, { at: 812, envelope: second.envelope, recipients: ['a@example.com'] }].map((m) => ({ ...m, envelope: { ...m.envelope, receivedAt: expect.any(String) } })) });
    expect(r2!.messages.map((m) => [m.at, m.envelope.messageId, m.recipients])).toEqual([[812, b, ['b@example.com']]]);
    expect(deliveryJobId(a, 'r.1')).not.toContain(':');
    expect(JSON.stringify(flow)).not.toContain('Subject'); // jobs never carry the body
  });

  it('a file whose messages all matched one rule gets one delivery job, named by the file id, that releases the file itself', () => {
    const [a, b] = [newMessageId(), newMessageId()];
    const job = spoolFileJobs({ id: a, entries: [{ record: record(a), at: 0, length: 700 }, { record: record(b), at: 812 }] }, { attempts: 5, backoffBaseMs: 100, keepCompleted: 10 });
    expect(job.children).toBeUndefined();
    expect([job.queueName, job.name, job.opts?.jobId, job.opts?.attempts]).toEqual(['deliveries', 'deliver', a, 5]);
    const data = job.data as DeliveryJobData;
    expect(data.release).toBe(true);
    expect(data.rule.name).toBe('r.1');
    expect(data.messages.map((m) => [m.at, m.length, m.envelope.messageId])).toEqual([[0, 700, a], [812, undefined, b]]);
    expect(isSpoolFileJobId(job.opts!.jobId!)).toBe(true);
    expect(isSpoolFileJobId(deliveryJobId(a, 'r.1'))).toBe(false);
  });

  it('a lone job whose spool file is gone on a later run counts its messages done (an earlier run released them); on its first run, or as a flow child, it fails them for good', async () => {
    const dir = await tempDir();
    const spool = new Spool(dir.path);
    try {
      await spool.init({ clearIncoming: true });
      const [a, b] = [newMessageId(), newMessageId()];
      const job = spoolFileJobs({ id: a, entries: [{ record: record(a), at: 0 }, { record: record(b), at: 812 }] }, { attempts: 5, backoffBaseMs: 100, keepCompleted: 10 });
      // No AWS is reached: the file is missing before anything is read.
      const deps = { spool, aws: undefined as never, tuning: { multipartThresholdBytes: 1, partSizeBytes: 1, queueSize: 1 }, slots: new Slots(2), ranBefore: true };
      const lone = await deliver(job.data as DeliveryJobData, deps);
      expect(lone.failed).toEqual([]);
      expect(lone.foundReleased).toEqual([a, b]);
      expect(lone.done.sort()).toEqual([a, b].sort());
      // First run: nothing can have released the file — it never reached the disk (or was deleted). Never "done".
      const first = await deliver(job.data as DeliveryJobData, { ...deps, ranBefore: false });
      expect(first.foundReleased).toEqual([]);
      expect(first.done).toEqual([]);
      expect(first.failed.map((f) => [f.messageId, f.unrecoverable, f.error instanceof SpoolMissingError])).toEqual([[a, true, true], [b, true, true]]);
      expect(first.failed[0]!.error.message).toMatch(/no earlier run of this job released it: the machine stopped before the file reached the disk/);
      const { release: _, ...child } = job.data as DeliveryJobData;
      const orphan = await deliver(child, deps);
      expect(orphan.foundReleased).toEqual([]);
      expect(orphan.failed.map((f) => [f.messageId, f.unrecoverable, f.error instanceof SpoolMissingError])).toEqual([[a, true, true], [b, true, true]]);
    } finally {
      await spool.close();
      await dir.remove();
    }
  });

  it('a job of the previous release (one message, one rule) reads as a batch of one', () => {
    const id = newMessageId();
    const rec = record(id);
    expect(deliveryBatch({ v: 1, spoolFile: `${id}.msg`, envelope: rec.envelope, rule: rec.rules[0]!, stored: true })).toEqual({
      v: 2,
      spoolFile: `${id}.msg`,
      rule: { name: 'r.1', scanEnabled: false, s3Action: { bucketName: 'bucket-x', objectKeyPrefix: '' } },
      messages: [{ at: 0, envelope: rec.envelope, recipients: ['a@example.com'] }],
      stored: [id],
    });
  });

  it('backoff doubles, is capped, and jitters', () => {
    const f = cappedExponentialBackoff(1000, 5000);
    expect(f(1)).toBeGreaterThanOrEqual(800);
    expect(f(1)).toBeLessThanOrEqual(1200);
    expect(f(3)).toBeGreaterThanOrEqual(3200);
    expect(f(20)).toBeLessThanOrEqual(6000);
  });
});

describe('a config whose rules await a key the infra creates', () => {
  it('is refused: the gateway would store plaintext where SES stores ciphertext', async () => {
    const { rulesAwaitingCreatedKey } = await import('../../gateway/settings.js');
    const cfg = parseConfig({ ...base, infra: { createKmsKeys: { mail: { rules: ['exact'] } } } }).config;
    expect(rulesAwaitingCreatedKey(cfg)).toEqual([
      {
        path: 'rules[0].s3Action.kmsKeyArn',
        message: 'rule "exact" is encrypted with infra.createKmsKeys.mail, a key the infra stack creates, and this file does not name its ARN',
        fix: 'run the gateway with the deployed config: terraform -chdir=cdktf.out/stacks/mailroom output -json gateway_config > mailroom.deployed.json',
      },
    ]);
    const deployed = structuredClone(cfg);
    deployed.rules[0]!.s3Action.kmsKeyArn = 'arn:aws:kms:us-east-1:123456789012:key/0f0e0d0c-0b0a-4909-8807-060504030201';
    expect(rulesAwaitingCreatedKey(deployed)).toEqual([]);
  });
});

describe('notification of a spooled message', () => {
  it('is the same whether its DATA is in memory (a batch entry) or streamed from the spool file', async () => {
    const envelope: SpoolRecord['envelope'] = { messageId: newMessageId(), receivedAt: '2026-11-27T02:00:00.000Z', mailFrom: 'a@origin.example', helo: 'h.example', clientIp: '192.0.2.7', tls: true, byHost: 'mx.example', accountId: '123456789012', region: 'us-east-1' };
    const rule = { name: 'r', recipients: ['b@example.com'], scanEnabled: true, s3Action: { bucketName: 'bkt', objectKeyPrefix: 'in/', topicArn: 'arn:aws:sns:us-east-1:123456789012:t' } };
    const headerBlock = headerBlockFor(envelope, rule);
    for (const data of [
      Buffer.from('From: A <a@origin.example>\r\nTo: b@example.com\r\nSubject: =?UTF-8?B?w6k=?=\r\n folded\r\nMessage-ID: <1@origin.example>\r\n\r\nbody\r\n'),
      Buffer.from('Subject: no body, no blank line\r\n'),
      Buffer.concat([Buffer.from('X-Long: '), Buffer.alloc(300 * 1024, 'x'), Buffer.from('\r\n\r\nbody\r\n')]),
    ]) {
      const now = Date.parse(envelope.receivedAt) + 1234;
      const fromMemory = await notificationFor(envelope, rule, headerBlock, { stored: Buffer.concat([headerBlock, data]) }, now);
      const fromStream = await notificationFor(envelope, rule, headerBlock, Readable.from([data.subarray(0, 7), data.subarray(7)]), now);
      expect(fromMemory).toEqual(fromStream);
    }
  });
});

describe('gateway.worker.thread', () => {
  it('"auto" uses a delivery thread only with a second CPU for it; "yes" and "no" say so', async () => {
    const { useDeliveryThread } = await import('../../cli/commands/gateway.js');
    expect([useDeliveryThread('auto', 1), useDeliveryThread('auto', 2), useDeliveryThread('yes', 1), useDeliveryThread('no', 8)]).toEqual([false, true, true, false]);
  });
});

describe('MAILROOM_SMTP_USERS', () => {
  // Lines as `mailroom smtp-user` prints them: the default cost `ln=15,r=8,p=1` has commas of its own.
  const smtpUser = (name: string, password: string) =>
    execFileSync(process.execPath, [fileURLToPath(new URL('../../bin/mailroom.js', import.meta.url)), 'smtp-user', name], { input: password, encoding: 'utf8' }).trim();

  it('takes entries made by `mailroom smtp-user`, newline- or comma-separated', async () => {
    const [bob, carol] = [smtpUser('bob', 'pw-bob'), smtpUser('carol', 'pw-carol')];
    expect(bob).toMatch(/^bob:\$scrypt\$ln=15,r=8,p=1\$/);
    for (const users of [bob, `${bob}\n${carol}\n`, `${bob}\r\n${carol}`, `${bob},${carol}`, `${bob}, ${carol}`]) {
      const creds = Credentials.load(undefined, { MAILROOM_SMTP_USERS: users });
      expect(creds.size, users).toBe(users.includes('carol') ? 2 : 1);
      expect(await creds.verify('bob', 'pw-bob')).toBe(true);
      if (creds.size === 2) expect([await creds.verify('carol', 'pw-carol'), await creds.verify('carol', 'pw-bob')]).toEqual([true, false]);
    }
  }, 30_000);

  it('a malformed entry is refused by its number, without echoing the entry', () => {
    expect(() => Credentials.load(undefined, { MAILROOM_SMTP_USERS: 'bob:$scrypt$ln=15,r=8,p=1$c2FsdA==$aGFzaA==,carol:secret' })).toThrow(
      /MAILROOM_SMTP_USERS, entry 2 is not "user:\$scrypt\$/,
    );
    try {
      Credentials.load(undefined, { MAILROOM_SMTP_USERS: 'carol:secret' });
    } catch (err) {
      expect(JSON.stringify((err as ConfigError).problems)).not.toContain('secret');
    }
  });
});

describe('spool directory start-up errors', () => {
  const bin = fileURLToPath(new URL('../../bin/mailroom.js', import.meta.url));

  it('name the spool directory, the setting and the fix, for what a recursive mkdir meets', async () => {
    const { explainSpoolError } = await import('../../cli/commands/gateway.js');
    const dir = await tempDir();
    try {
      await writeFile(join(dir.path, 'file'), '');
      await symlink(join(dir.path, 'no-such-mount'), join(dir.path, 'dangling'));
      for (const [inTheWay, what] of [['file', 'a file'], ['dangling', 'a symbolic link to nothing']] as const) {
        const spoolDir = join(dir.path, inTheWay, 'spool');
        const err = (await mkdir(join(spoolDir, 'messages'), { recursive: true }).catch((e: unknown) => e)) as NodeJS.ErrnoException;
        expect(err.code).toBe('ENOTDIR');
        expect(explainSpoolError(err, spoolDir)).toMatch(
          new RegExp(`^cannot make the spool directory ${spoolDir}: ${join(dir.path, inTheWay)} is ${what}.*\\(ENOTDIR\\): move it out of the way, or choose another directory with --spool-dir / MAILROOM_SPOOL_DIR \\(gateway\\.spoolDir\\)$`),
        );
      }
      const enoent = Object.assign(new Error('ENOENT'), { code: 'ENOENT', syscall: 'mkdir', path: join(dir.path, 'dangling', 'spool') });
      expect(explainSpoolError(enoent, join(dir.path, 'dangling', 'spool'))).toMatch(/dangling is a symbolic link to nothing .*\(ENOENT; a volume not mounted.*\): mount the volume or mend the path, or choose another directory with --spool-dir/);
      const erofs = Object.assign(new Error('EROFS'), { code: 'EROFS', syscall: 'mkdir', path: '/spool' });
      expect(explainSpoolError(erofs, '/spool')).toContain('read-only file system): mount its volume read-write, or choose another directory with --spool-dir');
      // Not the spool's: a certificate file nobody may read stays the error it is.
      expect(explainSpoolError(Object.assign(new Error('EACCES'), { code: 'EACCES', path: '/etc/tls/key.pem' }), '/var/spool/mailroom')).toBeUndefined();
    } finally {
      await dir.remove();
    }
  });

  it('`mailroom worker` with a spool path through a file says so and exits 1', async () => {
    const dir = await tempDir();
    try {
      await writeFile(join(dir.path, 'file'), '');
      const config = fileURLToPath(new URL('../../examples/minimal.json', import.meta.url));
      const spoolDir = join(dir.path, 'file', 'spool');
      const out = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
        execFile(process.execPath, [bin, 'worker', '--config', config, '--spool-dir', spoolDir], { env: { ...process.env, REDIS_URL: 'redis://127.0.0.1:1', LOG_LEVEL: 'silent' }, timeout: 20_000 }, (err, _o, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
        ),
      );
      expect(out.stderr).toContain(`mailroom worker: cannot make the spool directory ${spoolDir}: ${join(dir.path, 'file')} is a file, not a directory (ENOTDIR)`);
      expect(out.code).toBe(1);
    } finally {
      await dir.remove();
    }
  }, 30_000);
});

describe('mailroom worker flags', () => {
  const bin = fileURLToPath(new URL('../../bin/mailroom.js', import.meta.url));
  const cli = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [bin, ...args], { timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })),
    );

  it('lists and takes no SMTP listener flags (the worker has no listener); gateway and smtp still do', async () => {
    const [worker, smtp] = await Promise.all([cli('worker', '--help'), cli('smtp', '--help')]);
    expect(worker.stdout).toContain('--concurrency');
    expect(worker.stdout).not.toMatch(/--smtp-port|--smtp-host|--lmtp-port/);
    expect(smtp.stdout).toMatch(/--smtp-port[\s\S]*--smtp-host[\s\S]*--lmtp-port/);
    const refused = await cli('worker', '--config', 'examples/minimal.json', '--smtp-port=2525');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('mailroom worker: --smtp-port is a setting of the SMTP front, which `mailroom worker` does not run: drop it');
  }, 30_000);
});

describe('container files, read (the image is built and run in test/container/image.test.ts)', () => {
  const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));

  it('.dockerignore keeps host installs and outputs out of `COPY . .`', () => {
    const ignored = readFileSync(root('.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const p of ['node_modules', '.git', 'dist', 'cdktf.out', '.mailroom', 'coverage', '*.log']) expect(ignored, p).toContain(p);
  });

  it('the image serves HTTP and its HEALTHCHECK passes while /healthz answers, fails when nothing does', async () => {
    const dockerfile = readFileSync(root('docker/Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^\s+MAILROOM_HTTP_PORT=9464$/m);
    const [, flags, exec] = /^HEALTHCHECK ([^\n]*?)\\\n\s+CMD (\[.*\])$/m.exec(dockerfile) ?? [];
    expect(flags).toMatch(/--start-period=\d+s/);
    const [cmd, ...args] = JSON.parse(exec!) as string[];
    expect(cmd).toBe('node');
    const server = createServer((req, res) => res.writeHead(req.url === '/healthz' ? 200 : 404).end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const env = { ...process.env, MAILROOM_HTTP_PORT: String((server.address() as { port: number }).port) };
    const run = () => new Promise<number>((resolve) => execFile(process.execPath, args, { env, timeout: 10_000 }, (err) => resolve(err ? ((err as { code?: number }).code ?? 1) : 0)));
    expect(await run()).toBe(0);
    await new Promise((resolve) => server.close(resolve));
    expect(await run()).toBe(1);
  });

  it('compose restarts the gateway and starts it once Redis answers PING', () => {
    const compose = readFileSync(root('docker/compose.yml'), 'utf8');
    const gateway = compose.slice(compose.indexOf('\n  gateway:'));
    expect(gateway).toMatch(/\n {4}restart: unless-stopped\n/);
    expect(gateway).toMatch(/\n {4}depends_on:\n {6}redis: \{ condition: service_healthy \}\n/);
    expect(compose.slice(0, compose.indexOf('\n  gateway:'))).toMatch(/healthcheck:[\s\S]*redis-cli ping/);
  });
});
