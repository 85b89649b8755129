/**
 * Spare batch files (gateway/spool/spares.ts) and the one-accepting-process claim (gateway/spool/owner.ts): a round
 * that writes into a spare waits for no directory fsync, a spare is used only once its name is durable, empty files
 * are never delivered, set aside or counted, and a second SMTP front on one spool is refused. Real files, a real
 * Redis for the recovery pass; only the fsync of `messages/` is counted, held or failed on purpose.
 */
import { spawn } from 'node:child_process';
import { existsSync, unlinkSync } from 'node:fs';
import { readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newMessageId } from '../../shared/ses/message-id.js';
import { silentLogger } from '../../gateway/runtime/log.js';
import { Enqueuer } from '../../gateway/queue/enqueue.js';
import type { SpoolFile, SpoolRecord } from '../../gateway/spool/format.js';
import { claimOf, claimSpool, OWNER_FILE, SpoolInUseError } from '../../gateway/spool/owner.js';
import { SpoolRecovery } from '../../gateway/intake/recovery.js';
import { SPARE_GROUP, type SpareOptions } from '../../gateway/spool/spares.js';
import { tempDir } from '../support/files.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { interceptDirSync, spooledFiles, spooledMessage, TestSpool, type DirSync } from '../support/spool.js';
import { freePort } from '../support/ports.js';
import { killHard, mailroomCli, startMailroom, writeConfig } from './child.js';
import { ACCOUNT, rawMessage, REGION, sendRaw, waitFor } from './helpers.js';

function record(): SpoolRecord {
  return {
    v: 1,
    envelope: { messageId: newMessageId(), receivedAt: new Date().toISOString(), mailFrom: 'a@b.example', helo: 'c', clientIp: '127.0.0.1', tls: false, byHost: 'mx', accountId: '123456789012', region: 'us-east-1' },
    rules: [{ name: 'r', recipients: ['x@example.com'], scanEnabled: false, s3Action: { bucketName: 'spares-bucket' } as SpoolRecord['rules'][number]['s3Action'] }],
  };
}

const data = (text: string) => Readable.from([Buffer.from(`Subject: ${text}\r\n\r\n${text}\r\n`)]);


interface Harness {
  spool: TestSpool;
  dirSync: DirSync;
  dirSyncCalls: number;
  dirSyncsDone: number;
  /** What the spool reported (SpoolEvents), in order. */
  events: string[];
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A spool with spares whose `messages/` fsyncs are counted (and can be held or failed); `before` runs ahead of init. */
async function spoolWithSpares(before?: (h: Harness) => void | Promise<void>, spareFiles: true | SpareOptions = true): Promise<Harness> {
  const d = await tempDir('mailroom-spares-');
  cleanups.push(d.remove);
  const events: string[] = [];
  const spool = new TestSpool(d.path, {
    spareFiles,
    events: { batchFile: (file) => events.push(`batch file ${file}`), failed: (during) => events.push(`spares failed: ${during}`), lost: (path) => events.push(`spare lost: ${path.endsWith('.msg') ? 'path' : path}`) },
  });
  cleanups.push(() => spool.close());
  const h: Harness = { spool, dirSync: { mode: 'pass' }, dirSyncCalls: 0, dirSyncsDone: 0, events };
  interceptDirSync(spool.directory, h);
  await before?.(h);
  await spool.init({ clearIncoming: true });
  return h;
}

const names = async (s: TestSpool) => (await readdir(s.directory.messagesDir)).sort();
const sizes = async (s: TestSpool) => Promise.all((await names(s)).map(async (n) => (await stat(join(s.directory.messagesDir, n))).size));
/**
 * Spares are ready once their group's directory fsync is done (not merely begun: under load it was still running
 * when a test's round came, which then created its own file): the writer then takes one without creating.
 */
const sparesReady = (h: Harness) => waitFor('spares made and synced', async () => ((await names(h.spool)).length >= SPARE_GROUP && h.dirSyncsDone >= 1 ? true : undefined), 5_000, 10);

describe('spare batch files', () => {
  it('a round written into a spare waits for no directory fsync; its file has the spare id and reads back whole', async () => {
    const h = await spoolWithSpares();
    await sparesReady(h);
    await new Promise((r) => setTimeout(r, 50));
    const spares = new Set(await names(h.spool));
    expect(await h.spool.list(), 'unused spares are not listed as spooled files').toEqual([]);
    expect(await h.spool.countSpooled()).toBe(0);
    const calls = h.dirSyncCalls;
    const recs = [record(), record(), record()];
    // Ending together: the first starts a round, the others go together into the next.
    const files = await Promise.all(recs.map((r, i) => h.spool.receive(r, data(`m${i}`))));
    expect(h.dirSyncCalls, 'no fsync of messages/ for a round written into a spare').toBe(calls);
    const ids = [...new Set(files.map((f) => (f.ok ? f.file.id : '')))].sort();
    for (const id of ids) {
      expect(spares.has(`${id}.msg`), 'each batch file is one of the spares').toBe(true);
      expect(recs.map((r) => r.envelope.messageId)).not.toContain(id);
    }
    expect((await h.spool.list()).sort()).toEqual(ids);
    expect(await h.spool.countSpooled()).toBe(ids.length);
    expect(h.events, 'reported for the metrics: every batch file went into a spare').toEqual(ids.map(() => 'batch file spare'));
    // Recovery reads them as any batch file (the first message is not the name); deliveries read each entry.
    const entries = (await Promise.all(ids.map((id) => h.spool.openFile(id)))).flatMap((f) => f.entries.map((e) => ({ id: f.id, e })));
    expect(entries.map(({ e }) => e.record.envelope.messageId).sort()).toEqual(recs.map((r) => r.envelope.messageId).sort());
    for (const { id, e } of entries) {
      const msg = await spooledMessage(h.spool, id, e.at, e.record.envelope.messageId);
      expect(msg.data?.toString()).toContain('Subject: m');
    }
  });

  it('a spare is used only once its name is durable: while the directory fsync of its group is held, a round creates its own file and waits for it', async () => {
    let release!: () => void;
    const h = await spoolWithSpares((h) => {
      h.dirSync = { mode: 'hold', released: new Promise<void>((r) => (release = r)) };
      cleanups.push(async () => release());
    });
    await waitFor('the group created after init', async () => ((await names(h.spool)).length === SPARE_GROUP ? true : undefined), 5_000, 5);
    const rec = record();
    let done = false;
    const received = h.spool.receive(rec, data('early')).then((r) => ((done = true), r));
    // No spare is ready: the round creates its file under the message's id, and its directory fsync queues behind the held one.
    await waitFor('the round created its own file', async () => (existsSync(h.spool.path(rec.envelope.messageId)) ? true : undefined), 5_000, 5);
    await new Promise((r) => setTimeout(r, 50));
    expect(done, 'no 250 before the name of a created file is durable').toBe(false);
    h.dirSync = { mode: 'pass' };
    release();
    const r = await received;
    expect(r.ok && r.file.id, 'a file of its own, named after its message').toBe(rec.envelope.messageId);
    expect(h.events).toEqual(['batch file created']);
    expect(h.dirSyncCalls, "the group's fsync, then the round's").toBeGreaterThanOrEqual(2);
  });

  it('a round written only into spares asks for no directory fsync, so a failing one does not fail it', async () => {
    const h = await spoolWithSpares();
    await sparesReady(h);
    await new Promise((r) => setTimeout(r, 50));
    h.dirSync = { mode: 'fail' };
    // All spares are durable already: the round needs no directory fsync, and its messages stand.
    const r = await h.spool.receive(record(), data('on a spare'));
    expect(r.ok).toBe(true);
    expect(await h.spool.countSpooled()).toBe(1);
  });

  it('a round of a spare file and a created one: a failed directory fsync fails only the created file', async () => {
    // Two spares, and no new ones for a minute once their making fails.
    const h = await spoolWithSpares(undefined, { low: 2, group: 2, retryMs: 60_000 });
    await waitFor('two spares ready', async () => ((await names(h.spool)).length === 2 && h.dirSyncCalls >= 1 ? true : undefined), 5_000, 5);
    await new Promise((r) => setTimeout(r, 50));
    h.dirSync = { mode: 'fail' };
    // The first message's round takes one spare; the next 129 end while it is on disk and make one round of two
    // files (128 entries at most per file): the last spare, and a file created in the round.
    const recs = Array.from({ length: 130 }, () => record());
    const results = await Promise.all(recs.map((r, i) => h.spool.receive(r, data(`m${i}`)).then((x) => ({ ok: true as const, file: x.ok ? x.file.id : '' }), (err: Error) => ({ ok: false as const, err }))));
    const failed = results.filter((r) => !r.ok);
    expect(failed, 'only the message in the created file').toHaveLength(1);
    expect(String((failed[0] as { err: Error }).err.message)).toMatch(/fsync of the messages directory failed/);
    const files = new Set(results.filter((r) => r.ok).map((r) => (r as { file: string }).file));
    expect(files.size, 'the two spares').toBe(2);
    // The created file's bytes were in it before the fsync failed: it stays for the caller, whose jobs for it may be
    // in Redis (the intake removes it when they are not, see intake.ts).
    const created = recs[results.findIndex((r) => !r.ok)]!.envelope.messageId;
    expect((await h.spool.list()).sort()).toEqual([...files, created].sort());
    // Reported: the batch files made by kind (the created one failed: not counted), and the failed making of new
    // spares (the gateway logs it, see spool-events).
    expect(h.events.filter((e) => e.startsWith('batch file'))).toEqual(['batch file spare', 'batch file spare']);
    // New spares are made after the round (a refill in the background): its failed fsync is reported when it ends.
    await waitFor('the failed making of new spares reported', async () => (h.events.includes('spares failed: directory fsync') ? true : undefined), 5_000, 10);
  });

  it('falls back to creating the file when its spare was removed behind its back or written by someone else', async () => {
    const h = await spoolWithSpares();
    await sparesReady(h);
    await new Promise((r) => setTimeout(r, 50));
    // The writer takes spares from the end of its list; remove every one of them, so the next round meets a missing one.
    const all = await names(h.spool);
    for (const n of all) await import('node:fs/promises').then((fs) => fs.rm(join(h.spool.directory.messagesDir, n)));
    const calls = h.dirSyncCalls;
    const rec = record();
    const r = await h.spool.receive(rec, data('fallback'));
    expect(r.ok).toBe(true);
    expect(h.dirSyncCalls, 'the created file is named durably').toBeGreaterThan(calls);
    const id = r.ok ? r.file.id : '';
    expect((await h.spool.openFile(id)).entries[0]!.record.envelope.messageId).toBe(rec.envelope.messageId);
    expect(h.events, 'the missing spare is reported (the gateway logs an error), the file counted as created').toEqual(['spare lost: path', 'batch file created']);

    // A spare someone wrote into is left alone: the message goes into a file of its own, the stranger's bytes stay.
    await waitFor('spares made again', async () => ((await names(h.spool)).length >= SPARE_GROUP + 1 ? true : undefined), 5_000, 10);
    await new Promise((r) => setTimeout(r, 50));
    const spares = (await names(h.spool)).filter((n) => n !== `${id}.msg`);
    for (const n of spares) await writeFile(join(h.spool.directory.messagesDir, n), 'not ours');
    const own = record();
    const r2 = await h.spool.receive(own, data('own file'));
    expect(r2.ok && r2.file.id).toBe(own.envelope.messageId);
    for (const n of spares) expect(await readFile(join(h.spool.directory.messagesDir, n), 'utf8')).toBe('not ours');
  });

  it('a file released by its own delivery before its flush completed still counts as durable (the jobs went out while the disk flushed)', async () => {
    // In the gateway the jobs are added as soon as the bytes are in the file; a fast worker can deliver the message and
    // release (unlink) the file before the fdatasync returns. The message was delivered: its 250 must stand.
    const h = await spoolWithSpares();
    await sparesReady(h);
    await new Promise((r) => setTimeout(r, 50));
    const rec = record();
    const r = await h.spool.writer.receive(rec, data('delivered early'), Infinity);
    if (!r.ok) throw new Error('refused');
    // What a release does: the file's name goes (here before anyone even waits for the disk).
    unlinkSync(h.spool.path(r.file.id));
    await expect(r.durable).resolves.toBeUndefined();
    expect(h.events).toEqual(['batch file spare']);
  });

  it('init removes the empty files a crash left (never a message) and keeps every file that holds one; close removes unused spares', async () => {
    const h = await spoolWithSpares();
    await sparesReady(h);
    const r = await h.spool.receive(record(), data('kept'));
    const kept = r.ok ? `${r.file.id}.msg` : '';
    await new Promise((r) => setTimeout(r, 50));
    // A crash: the process stops without close. A new process on the same spool:
    const after = new TestSpool(h.spool.dir);
    await after.init({ clearIncoming: true });
    expect(await names(after)).toEqual([kept]);
    await after.close();
    // The first one's graceful close removes only its own unused spares (none left now) and never a message.
    await h.spool.close();
    expect(await names(after)).toEqual([kept]);

    // Graceful stop with spares in place: they go, the message stays.
    const g = await spoolWithSpares();
    await sparesReady(g);
    const m = await g.spool.receive(record(), data('stays'));
    await g.spool.close();
    expect(await names(g.spool)).toEqual([m.ok ? `${m.file.id}.msg` : '']);
    expect(await sizes(g.spool)).not.toContain(0);
  });
});

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
}, 60_000);
afterAll(async () => {
  await redis?.stop();
});

describe('spool recovery with spares', () => {
  it('leaves spares and files on their way to disk alone, and enqueues a spare-named batch file that has no jobs', async () => {
    let release!: () => void;
    const h = await spoolWithSpares();
    await sparesReady(h);
    await new Promise((r) => setTimeout(r, 50));
    const enqueuer = new Enqueuer({ redis: { url: redis.url, cluster: false }, prefix: 'spares', timeoutMs: 5_000, policy: { attempts: 3, backoffBaseMs: 100, keepCompleted: 10 } }, silentLogger());
    cleanups.push(() => enqueuer.close());
    await enqueuer.ready(10_000);
    const recovery = new SpoolRecovery(h.spool, enqueuer, (id) => h.spool.writer.owns(id), silentLogger(), 5_000);

    // A round held on its way to disk (its fdatasync cannot be held from here; a created file's directory fsync can):
    // remove the spares so the round creates its file.
    for (const n of await names(h.spool)) await import('node:fs/promises').then((fs) => fs.rm(join(h.spool.directory.messagesDir, n)));
    h.dirSync = { mode: 'hold', released: new Promise<void>((r) => (release = r)) };
    const held = h.spool.receive(record(), data('held'));
    const heldName = await waitFor('the round wrote its file', async () => (await spooledFiles(h.spool.dir))[0], 5_000, 5);
    const pass = await recovery.run();
    expect(pass.requeued, 'a file on its way to disk is not the recovery pass’s').toBe(0);
    expect(await enqueuer.hasJobs(h.spool.directory.fileIdOf(heldName))).toBe(false);
    h.dirSync = { mode: 'pass' };
    release();
    const written = await held;
    const writtenId = written.ok ? written.file.id : '';
    expect(`${writtenId}.msg`).toBe(heldName);
    await waitFor('spares made again', async () => ((await names(h.spool)).length >= SPARE_GROUP + 1 ? true : undefined), 5_000, 10);
    await new Promise((r) => setTimeout(r, 50));

    // Now: one file without jobs (its enqueue "crashed"), and a group of empty spares. The pass enqueues the one, ignores the rest.
    const r = await h.spool.receive(record(), data('on a spare'));
    const spareNamed = r.ok ? r.file : ({} as SpoolFile);
    const second = await recovery.run();
    expect(second.requeued).toBe(2);
    expect(await enqueuer.hasJobs(writtenId)).toBe(true);
    expect(await enqueuer.hasJobs(spareNamed.id)).toBe(true);
    expect(existsSync(h.spool.directory.damagedDir), 'no spare set aside as a torn file').toBe(false);
    expect((await names(h.spool)).length, 'the spares are still in place').toBeGreaterThanOrEqual(SPARE_GROUP);
  });
});

describe('one accepting process per spool', () => {
  const exitedPid = () =>
    new Promise<number>((resolve) => {
      const p = spawn(process.execPath, ['-e', '0']);
      p.on('exit', () => resolve(p.pid!));
    });

  it('refuses a second claim while the first process runs, naming it and the fix; takes over a claim whose process is gone', async () => {
    const d = await tempDir('mailroom-owner-');
    cleanups.push(d.remove);
    const file = join(d.path, OWNER_FILE);
    // Held by a running process on this host (the test runner's parent):
    await writeFile(file, `${JSON.stringify({ ...claimOf(process.ppid), since: '2026-11-27T00:00:00.000Z' })}\n`);
    const refused = await claimSpool(d.path).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(refused).toBeInstanceOf(SpoolInUseError);
    expect(refused?.message).toContain(`in use by process ${process.ppid} on this host`);
    expect(refused?.message).toContain('--spool-dir');
    expect(refused?.message).toContain(`delete ${file}`);
    expect(JSON.parse(await readFile(file, 'utf8')).pid, 'the holder keeps its claim').toBe(process.ppid);

    // A crashed holder: taken over at once. And a holder whose pid now belongs to another process (a different
    // start time): taken over too.
    const gone = claimOf(await exitedPid());
    expect(gone.startTicks).toBe(0);
    await writeFile(file, `${JSON.stringify({ ...gone, startTicks: 12345 })}\n`);
    const reused = await claimSpool(d.path);
    await reused.release();
    await writeFile(file, `${JSON.stringify({ ...claimOf(process.ppid), startTicks: claimOf(process.ppid).startTicks! + 1 })}\n`);
    const claim = await claimSpool(d.path);
    expect(JSON.parse(await readFile(file, 'utf8')).pid).toBe(process.pid);
    // Garbage and leftovers of the takeover do not stay around.
    expect((await readdir(d.path)).sort()).toEqual([OWNER_FILE]);
    await claim.release();
    expect(existsSync(file)).toBe(false);

    // Another host (or container): live while its claim was touched within 30 s; taken over after that.
    await writeFile(file, `${JSON.stringify({ host: 'mx-other.example', pid: 4242, since: '2026-11-27T00:00:00.000Z' })}\n`);
    const fromElsewhere = await claimSpool(d.path).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(fromElsewhere).toBeInstanceOf(SpoolInUseError);
    expect(fromElsewhere?.message).toMatch(/in use by an SMTP front on host mx-other\.example \(pid 4242\), seen \d+ s ago/);
    // Another pid namespace on this host (a container): the same rule, since its pid means nothing here.
    await writeFile(file, `${JSON.stringify({ ...claimOf(process.ppid), pidNs: 'pid:[1]' })}\n`);
    await expect(claimSpool(d.path)).rejects.toThrow(/in another container or pid namespace on this host/);
    const old = new Date(Date.now() - 60_000);
    await utimes(file, old, old);
    const tookOver = await claimSpool(d.path);
    expect(JSON.parse(await readFile(file, 'utf8')).host).toBe(hostname());
    // A second front in this same process is refused as well, however the path is spelled.
    await expect(claimSpool(d.path)).rejects.toThrow(/in use by an SMTP front of this same process/);
    await symlink(d.path, `${d.path}-link`);
    cleanups.push(() => rm(`${d.path}-link`, { force: true }));
    await expect(claimSpool(`${d.path}-link`)).rejects.toThrow(/in use by an SMTP front of this same process/);
    await tookOver.release();

    // A claim by our own pid but another start time is a previous run that had this pid: taken over.
    await writeFile(file, `${JSON.stringify({ ...claimOf(process.pid), startTicks: 1 })}\n`);
    const again = await claimSpool(d.path);
    // Someone else's claim is never released by us.
    await writeFile(file, `${JSON.stringify({ host: hostname(), pid: process.ppid, since: 'x' })}\n`);
    await again.release();
    expect(existsSync(file)).toBe(true);
  });

  it('a second `mailroom smtp` on the spool of a running one exits with the reason and the fix; after a SIGKILL of the first, a new one starts', async () => {
    const d = await tempDir('mailroom-owner-cli-');
    cleanups.push(d.remove);
    const spoolDir = join(d.path, 'spool');
    const config = (port: number) => ({
      region: REGION,
      accountId: ACCOUNT,
      ruleSetName: 'owner',
      rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: 'owner-bucket', objectKeyPrefix: 'in/' } }],
      gateway: { hostname: 'mx.owner.test', spoolDir, smtp: { port, reverseDns: false }, redis: { url: redis.url, prefix: 'owner' } },
    });
    const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
    const first = await startMailroom('smtp', await writeConfig(d.path, 'first.json', config(p1)), {}, p1);
    try {
      const second = await mailroomCli(['smtp', '--config', await writeConfig(d.path, 'second.json', config(p2))]);
      expect(second.code).not.toBe(0);
      expect(second.stderr).toContain(`the spool ${spoolDir} is in use by process ${first.child.pid} on this host`);
      expect(second.stderr).toContain('give this one its own --spool-dir');
      // The first one still accepts mail, its spool untouched.
      const sent = await sendRaw(p1, { from: 'a@origin.example', to: ['user@example.com'] }, rawMessage([['Subject', 'still here']], 'body\r\n'));
      expect(sent.response).toMatch(/^250 Ok /);
      expect(await spooledFiles(spoolDir)).toHaveLength(1);
    } finally {
      await killHard(first);
    }
    // Crashed: its claim is stale, its spares are left behind; the next front takes the spool over and clears them.
    expect((await readdir(join(spoolDir, 'messages'))).length).toBeGreaterThan(1);
    const third = await startMailroom('smtp', await writeConfig(d.path, 'third.json', config(p3)), {}, p3);
    try {
      const spooled = await spooledFiles(spoolDir);
      expect(spooled).toHaveLength(1);
      expect(JSON.parse(await readFile(join(spoolDir, OWNER_FILE), 'utf8')).pid).toBe(third.child.pid);
    } finally {
      await third.stop();
    }
    expect(existsSync(join(spoolDir, OWNER_FILE)), 'a graceful stop gives the claim up').toBe(false);
    expect(await readdir(join(spoolDir, 'messages')), 'and removes its unused spares').toEqual(await spooledFiles(spoolDir));
  }, 90_000);
});
