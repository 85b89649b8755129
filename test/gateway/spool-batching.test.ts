/**
 * The accept path's batching, in isolation: the directory fsync group commit, the spool's in-memory small-message
 * path and streamed big-message path (same bytes either way), oversize handling on both, and reading a small file
 * whole; and the multipart memory budget's queueing and abort.
 */
import { mkdir, readdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { newMessageId } from '../../shared/ses/message-id.js';
import { SpoolFormatError, type SpoolFile, type SpoolRecord } from '../../gateway/spool/format.js';
import { GroupSync } from '../../gateway/spool/directory.js';
import { tempDir } from '../support/files.js';
import { spooledMessage, TestSpool } from '../support/spool.js';

function record(): SpoolRecord {
  return {
    v: 1,
    envelope: { messageId: newMessageId(), receivedAt: new Date().toISOString(), mailFrom: 'a@b.example', helo: 'c', clientIp: '127.0.0.1', tls: false, byHost: 'mx', accountId: '123456789012', region: 'us-east-1' },
    rules: [{ name: 'r', recipients: ['x@example.com'], scanEnabled: false, s3Action: { bucketName: 'b' } as SpoolRecord['rules'][number]['s3Action'] }],
  };
}

/** A DATA stream: bytes in chunks, ended. */
function dataStream(chunks: Buffer[]): Readable {
  const s = new Readable({ read() {} });
  for (const c of chunks) s.push(c);
  s.push(null);
  return s;
}

const dirs: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await d();
});

async function spool(): Promise<TestSpool> {
  const d = await tempDir('mailroom-spool-');
  dirs.push(d.remove);
  const s = new TestSpool(d.path);
  dirs.push(() => s.close());
  await s.init({ clearIncoming: true });
  return s;
}

describe('GroupSync', () => {
  it('one fsync for a caller alone; callers arriving during it share the next one', async () => {
    let runs = 0;
    const releases: Array<() => void> = [];
    const g = new GroupSync(() => {
      runs++;
      return new Promise<void>((r) => releases.push(r));
    });
    const first = g.sync();
    const later = [g.sync(), g.sync(), g.sync()];
    expect(runs).toBe(1);
    releases.shift()!();
    await first;
    await new Promise((r) => setImmediate(r));
    expect(runs).toBe(2);
    releases.shift()!();
    await Promise.all(later);
    expect(runs).toBe(2);
  });

  it('a failed fsync rejects its waiters only; the next caller gets a fresh one', async () => {
    let fail = true;
    const g = new GroupSync(async () => {
      if (fail) throw new Error('EIO');
    });
    await expect(g.sync()).rejects.toThrow('EIO');
    fail = false;
    await expect(g.sync()).resolves.toBeUndefined();
  });
});

describe('SpoolWriter.receive (durable) and SpoolReader', () => {
  it('a small message (one write) and a big one (streamed past 256 KiB) are stored byte-exact and read back', async () => {
    const s = await spool();
    // The big one is over the 1 MiB a delivery reads whole: its DATA is streamed from the file.
    for (const size of [10_000, 1_500_000]) {
      const rec = record();
      const body = Buffer.alloc(size);
      for (let i = 0; i < size; i++) body[i] = (i * 7) & 0xff;
      const chunks = [];
      for (let o = 0; o < size; o += 65_536) chunks.push(body.subarray(o, o + 65_536));
      const r = await s.receive(rec, dataStream(chunks));
      const id = rec.envelope.messageId;
      // A batch-file entry knows its length (record line + DATA); a streamed file's runs to the end.
      expect(r).toEqual({ ok: true, dataLength: size, file: { id, entries: [{ record: rec, at: 0, ...(size < 256 * 1024 ? { length: (await readFile(s.path(id))).length } : {}) }] } });
      const file = await readFile(s.path(id));
      expect(file.subarray(file.indexOf(0x0a) + 1).equals(body)).toBe(true);
      const msg = await spooledMessage(s, id);
      // A message alone in its batch file carries its length; a streamed one runs to the end of its file.
      expect(msg.record).toEqual(size < 256 * 1024 ? { ...rec, dataLength: size, dataCrc32: crc32(body) } : rec);
      expect(msg.dataLength).toBe(size);
      expect(!!msg.data).toBe(size < 256 * 1024);
      const back: Buffer[] = [];
      for await (const c of s.dataStream(msg)) back.push(c as Buffer);
      expect(Buffer.concat(back).equals(body)).toBe(true);
      const head: Buffer[] = [];
      for await (const c of s.dataStream(msg, 100)) head.push(c as Buffer);
      expect(Buffer.concat(head).equals(body.subarray(0, 100))).toBe(true);
    }
    expect(await readdir(s.directory.incomingDir)).toEqual([]);
  });

  it('oversized, small or streamed: nothing left on disk', async () => {
    const s = await spool();
    for (const chunks of [[Buffer.alloc(5000), Buffer.alloc(5000)], Array.from({ length: 10 }, () => Buffer.alloc(65_536))]) {
      const r = await s.receive(record(), dataStream(chunks), 6000);
      expect(r.ok).toBe(false);
    }
    expect(await readdir(s.directory.incomingDir)).toEqual([]);
    expect(await s.list()).toEqual([]);
  });

  it('messages that end together share one batch file; each reads back from its place, the file lists them in order', async () => {
    const s = await spool();
    const recs = Array.from({ length: 50 }, record);
    const bodies = recs.map((r, i) => Buffer.from(`Subject: ${i}\r\n\r\n${'x'.repeat(i * 37)}\r\n`));
    const results = await Promise.all(recs.map((r, i) => s.receive(r, dataStream([bodies[i]!]))));
    const files = new Map<string, SpoolFile>();
    for (const r of results) {
      if (!r.ok) throw new Error('refused');
      files.set(r.file.id, r.file);
    }
    // The first message goes out alone (nothing was waiting); the rest queued behind it share the next file(s).
    expect(files.size).toBeLessThan(recs.length / 2);
    expect((await s.list()).sort()).toEqual([...files.keys()].sort());
    for (const [id, file] of files) {
      // Read back, each entry has the place and length the writer gave it.
      expect(await s.openFile(id)).toEqual({ id, entries: file.entries.map((e) => ({ record: { ...e.record, dataLength: bodies[recs.indexOf(e.record)]!.length, dataCrc32: crc32(bodies[recs.indexOf(e.record)]!) }, at: e.at, length: e.length })) });
      file.entries.forEach((e, k) => k > 0 && expect(e.at).toBe(file.entries[k - 1]!.at + file.entries[k - 1]!.length!));
      for (const { record: rec, at } of file.entries) {
        const i = recs.indexOf(rec);
        const msg = await spooledMessage(s, id, at, rec.envelope.messageId);
        const reader = await s.open(id);
        const exact = await reader.entry(at, rec.envelope.messageId, file.entries.find((e) => e.at === at)!.length);
        await reader.close();
        expect(exact.data?.equals(bodies[i]!)).toBe(true);
        const back: Buffer[] = [];
        for await (const c of s.dataStream(msg)) back.push(c as Buffer);
        expect(Buffer.concat(back).equals(bodies[i]!)).toBe(true);
      }
    }
    const [id, file] = [...files].find(([, f]) => f.entries.length > 1)!;
    await expect(spooledMessage(s, id, file.entries[1]!.at, id)).rejects.toBeInstanceOf(SpoolFormatError);
    await expect(spooledMessage(s, id, file.entries[1]!.at + 1)).rejects.toBeInstanceOf(SpoolFormatError);
    await Promise.all([...files.keys()].map((f) => s.remove(f)));
    expect(await readdir(join(s.dir, 'messages'))).toEqual([]);
  });

  it('a round whose file cannot be created fails its messages and leaves nothing behind; the next round works', async () => {
    const s = await spool();
    // As root no permission stops us: a directory already holding the batch file's name makes its create fail.
    const recs = [record(), record(), record()];
    const first = recs[0]!.envelope.messageId;
    await mkdir(s.path(first));
    const failed = await Promise.allSettled(recs.map((r) => s.receive(r, dataStream([Buffer.from('Subject: x\r\n\r\nbody\r\n')]))));
    expect(failed[0]).toMatchObject({ status: 'rejected', reason: { code: 'EEXIST' } });
    // The two that waited behind it went out in the next round, in a file of their own; nothing else is left.
    expect(failed.slice(1).map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    expect((await readdir(s.directory.messagesDir)).sort()).toEqual([`${first}.msg`, `${recs[1]!.envelope.messageId}.msg`].sort());
    await rmdir(s.path(first));
    const ok = await s.receive(record(), dataStream([Buffer.from('Subject: y\r\n\r\nbody\r\n')]));
    expect(ok.ok).toBe(true);
    expect(await readdir(s.directory.messagesDir)).toHaveLength(2);
  });

  it('a round of two files: the one that cannot be created fails its messages only; the other stands', async () => {
    const s = await spool();
    // The first message goes alone; the 130 that end meanwhile make one round of two files (128 + 2 entries).
    const recs = Array.from({ length: 131 }, record);
    const second = recs[129]!.envelope.messageId;
    await mkdir(s.path(second));
    const got = await Promise.allSettled(recs.map((r) => s.receive(r, dataStream([Buffer.from('Subject: x\r\n\r\nbody\r\n')]))));
    expect(got.slice(129).map((g) => g.status)).toEqual(['rejected', 'rejected']);
    expect(got.slice(0, 129).every((g) => g.status === 'fulfilled')).toBe(true);
    const ids = new Set(got.slice(1, 129).map((g) => (g.status === 'fulfilled' && g.value.ok ? g.value.file.id : '')));
    expect([...ids]).toEqual([recs[1]!.envelope.messageId]);
    expect((await s.openFile(recs[1]!.envelope.messageId)).entries).toHaveLength(128);
    await rmdir(s.path(second));
    expect((await readdir(s.directory.messagesDir)).sort()).toEqual([recs[0]!, recs[1]!].map((r) => `${r.envelope.messageId}.msg`).sort());
  });

  it('a failed directory fsync fails the round after its bytes are in: the writes resolve, `durable` rejects, the files stay for the caller', async () => {
    const s = await spool();
    (s.directory as unknown as { syncMessagesDir(): Promise<void> }).syncMessagesDir = async () => {
      throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    };
    const body = () => dataStream([Buffer.from('Subject: x\r\n\r\nbody\r\n')]);
    const records = [record(), record(), record()];
    const written = await Promise.all(records.map((r) => s.writer.receive(r, body(), Infinity)));
    const durable = await Promise.allSettled(written.map((w) => (w.ok ? w.durable : Promise.reject(new Error('refused')))));
    expect(durable.map((h) => h.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(durable[0]).toMatchObject({ reason: { message: expect.stringMatching(/fsync of the messages directory failed: EIO/) } });
    // Told "written" before the failure, once per message; the files are whole and still there (their jobs may be in
    // Redis: removing them is the intake's decision, see intake.ts).
    const files = [...new Set(written.map((w) => (w.ok ? w.file.id : '')))];
    expect((await readdir(s.directory.messagesDir)).sort()).toEqual(files.map((f) => `${f}.msg`).sort());
    const held = (await Promise.all(files.map((f) => s.openFile(f)))).flatMap((f) => f.entries.map((e) => e.record.envelope.messageId));
    expect(held.sort()).toEqual(records.map((r) => r.envelope.messageId).sort());
  });

  it('a batch file over 1 MiB (written from the thread pool, not the event loop) reads back byte-exact', async () => {
    const s = await spool();
    const bodies = Array.from({ length: 7 }, (_, i) => Buffer.alloc(200 * 1024, 65 + i));
    const records = bodies.map(() => record());
    const got = await Promise.all(bodies.map((b, i) => s.receive(records[i]!, dataStream([b.subarray(0, 1000), b.subarray(1000)]))));
    // The first message has a round of its own; the six that ended meanwhile share the next file.
    const files = new Map(got.map((g) => (g.ok ? [g.file.id, g.file] : ['', undefined])));
    expect([...files.values()].map((f) => f!.entries.length).sort()).toEqual([1, 6]);
    const shared = [...files.values()].find((f) => f!.entries.length === 6)!;
    expect((await stat(s.path(shared.id))).size).toBeGreaterThan(1024 * 1024);
    for (const [i, g] of got.entries()) {
      if (!g.ok) throw new Error('not stored');
      const id = records[i]!.envelope.messageId;
      const entry = g.file.entries.find((e) => e.record.envelope.messageId === id)!;
      const m = await spooledMessage(s, g.file.id, entry.at, id);
      expect((await readFile(m.path)).subarray(m.dataOffset, m.dataOffset + m.dataLength).equals(bodies[i]!), `message ${i}`).toBe(true);
    }
  });

  it('a batch file cut short is refused whole, naming the message that lacks its bytes', async () => {
    const s = await spool();
    const recs = Array.from({ length: 5 }, record);
    const results = await Promise.all(recs.map((r) => s.receive(r, dataStream([Buffer.alloc(1000, 97)]))));
    const file = results.map((r) => (r.ok ? r.file : undefined)).find((f) => f && f.entries.length > 1)!;
    const bytes = await readFile(s.path(file.id));
    await writeFile(s.path(file.id), bytes.subarray(0, bytes.length - 10));
    const last = file.entries.at(-1)!.record.envelope.messageId;
    await expect(s.openFile(file.id)).rejects.toThrow(new RegExp(`truncated: message ${last}`));
  });
});
