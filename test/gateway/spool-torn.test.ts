/**
 * A batch file is created in `messages/` and made durable by its fdatasync and the directory's fsync at once
 * (writer.ts), so a crash in the middle of a round can leave a torn file there — one none of whose messages was
 * answered 250 (the 250 waits for both). Here files written by the spool (no jobs added for them) are torn the ways a
 * crash can tear them (data blocks never written: zeros; the size on disk short of the end; nothing at all), and a
 * recovery pass against a real Redis sets each aside in `damaged/`, untouched and not delivered, while whole files
 * (and a file cut exactly between two entries: its whole entries) are enqueued as after any crash before the enqueue.
 */
import { readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Enqueuer } from '../../gateway/queue/enqueue.js';
import { SpoolFormatError, type SpoolFile, type SpoolRecord } from '../../gateway/spool/format.js';
import { SpoolRecovery } from '../../gateway/intake/recovery.js';
import { newMessageId } from '../../shared/ses/message-id.js';
import { tempDir } from '../support/files.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { spooledMessage, TestSpool } from '../support/spool.js';
import { capturedLog } from './helpers.js';

let redis: RedisServer;
let dir: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedis(), tempDir('mailroom-torn-')]);
}, 60_000);

afterAll(async () => {
  await redis?.stop();
  await dir?.remove();
});

function record(): SpoolRecord {
  return {
    v: 1,
    envelope: { messageId: newMessageId(), receivedAt: new Date().toISOString(), mailFrom: 'a@origin.example', helo: 'h.example', clientIp: '127.0.0.1', tls: false, byHost: 'mx.example', accountId: '123456789012', region: 'us-east-1' },
    rules: [{ name: 'all', recipients: ['user@example.com'], scanEnabled: false, s3Action: { bucketName: 'b', objectKeyPrefix: 'in/' } as SpoolRecord['rules'][number]['s3Action'] }],
  };
}

/** Five messages ending together: the first goes out alone, the other four share the next batch file. */
async function batchOfFour(spool: TestSpool): Promise<SpoolFile> {
  const files = await Promise.all(
    Array.from({ length: 5 }, (_, i) => spool.receive(record(), Readable.from([Buffer.from(`Subject: ${i}\r\n\r\n${'body '.repeat(200 + i)}\r\n`)]))),
  );
  const file = files.map((f) => (f.ok ? f.file : undefined)).find((f) => f && f.entries.length === 4);
  if (!file) throw new Error('expected a batch file of four');
  return file;
}

describe('torn batch files after a crash', () => {
  it('are set aside by recovery, untouched and not delivered; whole files and whole entries are enqueued', async () => {
    const spool = new TestSpool(join(dir.path, 'spool'));
    const { log, lines } = capturedLog();
    const enqueuer = new Enqueuer({ redis: { url: redis.url, cluster: false }, prefix: 'torn', timeoutMs: 5_000, policy: { attempts: 3, backoffBaseMs: 100, keepCompleted: 10 } }, log);
    try {
      await spool.init({ clearIncoming: true });
      await enqueuer.ready(10_000);
      const [zeroedEntry, cutMidEntry, allZeros, empty, cutBetween, whole] = [
        await batchOfFour(spool),
        await batchOfFour(spool),
        await batchOfFour(spool),
        await batchOfFour(spool),
        await batchOfFour(spool),
        await batchOfFour(spool),
      ];
      const path = (f: SpoolFile) => spool.path(f.id);
      const end = (f: SpoolFile, k: number) => f.entries[k]!.at + f.entries[k]!.length!;
      // Data blocks of the second message never reached the disk: they read as zeros, the size is right.
      const bytes = await readFile(path(zeroedEntry));
      bytes.fill(0, end(zeroedEntry, 1) - 50, end(zeroedEntry, 1));
      await writeFile(path(zeroedEntry), bytes);
      await truncate(path(cutMidEntry), end(cutMidEntry, 2) - 100);
      await writeFile(path(allZeros), Buffer.alloc((await readFile(path(allZeros))).length));
      await truncate(path(empty), 0);
      await truncate(path(cutBetween), end(cutBetween, 1));
      // An empty file holds nothing: recovery leaves it (a crash's spare looks the same), the next start removes it.
      const torn = [zeroedEntry, cutMidEntry, allZeros];
      const tornBytes = await Promise.all(torn.map((f) => readFile(path(f))));

      // A reader refuses the torn entry (a delivery job would fail it as unrecoverable, never store zeros).
      await expect(spooledMessage(spool, zeroedEntry.id, zeroedEntry.entries[1]!.at, zeroedEntry.entries[1]!.record.envelope.messageId)).rejects.toThrow(/does not match its checksum/);
      await expect(spooledMessage(spool, zeroedEntry.id, zeroedEntry.entries[1]!.at)).rejects.toBeInstanceOf(SpoolFormatError);

      const before = await spool.list();
      const recovery = new SpoolRecovery(spool, enqueuer, (id) => spool.writer.owns(id), log, 5_000);
      const result = await recovery.run();
      // Six single-message files, the whole batch (4), the two whole entries of the file cut between them.
      expect(result).toEqual({ checked: before.length, requeued: 6 + 4 + 2 });

      expect((await readdir(spool.directory.damagedDir)).sort()).toEqual(torn.map((f) => `${f.id}.msg`).sort());
      for (const [i, f] of torn.entries()) {
        expect((await readFile(join(spool.directory.damagedDir, `${f.id}.msg`))).equals(tornBytes[i]!), `${f.id} kept as it was`).toBe(true);
        expect(await enqueuer.hasJobs(f.id)).toBe(false);
      }
      const left = await spool.list();
      expect(left.sort()).toEqual(before.filter((id) => !torn.some((f) => f.id === id)).sort());
      for (const id of left) expect(await enqueuer.hasJobs(id), id).toBe(id !== empty.id);
      expect(await spool.openFile(cutBetween.id)).toMatchObject({ entries: cutBetween.entries.slice(0, 2).map((e) => ({ at: e.at })) });
      expect(await spool.openFile(whole.id)).toMatchObject({ entries: whole.entries.map((e) => ({ at: e.at })) });

      const setAside = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('spool file is torn or damaged: set aside'));
      expect(setAside.map((l) => l.spoolFile).sort()).toEqual(torn.map((f) => f.id).sort());
      expect(setAside.find((l) => l.spoolFile === zeroedEntry.id)?.err).toMatch(/does not match its checksum/);
      expect(setAside.find((l) => l.spoolFile === cutMidEntry.id)?.err).toMatch(/truncated/);
      // Nothing is met again: the next pass finds every file with its jobs (and the empty one, left alone).
      expect(await recovery.run()).toEqual({ checked: left.length, requeued: 0 });
      expect(await readFile(path(empty))).toHaveLength(0);
      const restarted = new TestSpool(spool.dir);
      await restarted.init({ clearIncoming: true });
      expect((await restarted.list()).sort()).toEqual(left.filter((id) => id !== empty.id).sort());
    } finally {
      await enqueuer.close();
      await spool.close();
    }
  }, 60_000);
});
