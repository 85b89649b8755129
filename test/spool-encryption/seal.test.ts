/**
 * Spool files sealed with the AWS Encryption SDK, on a real spool directory with its writer and reader (raw AES key
 * files here; KMS through moto in gateway.test.ts): nothing of a message readable on disk, read back whole, one data
 * key for many files, and every way a sealed file can be wrong — moved, tampered, torn, under another key — refused
 * with an error that says which.
 */
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/config/index.js';
import { newMessageId } from '../../shared/ses/message-id.js';
import { encodeSealedLine, parseFirstLine, SpoolFormatError, type SealedFileHeader, type SpoolFile } from '../../gateway/spool/format.js';
import { keyFingerprint, readKeyFile } from '../../gateway/spool/seal-keys.js';
import { SpoolKeyError, SpoolSealError } from '../../gateway/spool/seal.js';
import { tempDir } from '../support/files.js';
import { canMountTmpfs, mountTmpfs } from '../support/tmpfs.js';
import { waitFor } from '../gateway/helpers.js';
import { addressedRecord, closeSpools, encryption, keyFile, plaintextFound, SealedSpool, sealFor } from './support.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
let n = 0;
const fresh = (name: string) => join(dir.path, `${name}-${n++}`);

beforeAll(async () => {
  dir = await tempDir('mailroom-seal-');
});
afterAll(async () => {
  await closeSpools();
  await dir?.remove();
});

/** A body with the record's token in it, `size` bytes or a little more. */
function body(token: string, size = 2_000): Buffer {
  const head = `From: someone\r\nSubject: test\r\n\r\n`;
  const line = `${token} ${'x'.repeat(60)}\r\n`;
  return Buffer.from(head + line.repeat(Math.ceil(size / line.length)), 'latin1');
}

/** The line and the ciphertext of a sealed file. */
async function sealedParts(path: string): Promise<{ header: SealedFileHeader; line: Buffer; ciphertext: Buffer }> {
  const bytes = await readFile(path);
  const lf = bytes.indexOf(0x0a);
  const first = parseFirstLine(bytes.subarray(0, lf));
  if (!first.sealed) throw new Error(`${path} is not sealed`);
  return { header: first.header, line: bytes.subarray(0, lf + 1), ciphertext: bytes.subarray(lf + 1) };
}

describe('sealed spool files', () => {
  it('hold no byte of a message in plaintext — body, MAIL FROM, recipients, client — and read back whole (batch and streamed files)', async () => {
    const key = await keyFile(dir.path);
    const { seal } = sealFor(encryption({ keyFile: key }));
    const spool = new SealedSpool(fresh('spool'), { writer: seal, reader: seal });
    await spool.directory.init({ clearIncoming: true });
    // Small ones ending together (a batch file of several), and one over 256 KiB (streamed into a file of its own).
    const small = Array.from({ length: 6 }, () => addressedRecord());
    const big = addressedRecord();
    const bodies = new Map([...small, big].map((m, i) => [m.record.envelope.messageId, body(m.secrets.at(-1)!, m === big ? 3 * 2 ** 20 : 1_000 + 100 * i)]));
    const files = await Promise.all([...small, big].map((m) => spool.receive(m.record, bodies.get(m.record.envelope.messageId)!)));
    const unique = [...new Map(files.map((f) => [f.id, f])).values()];
    expect(unique.some((f) => f.entries.length > 1), 'some messages share a batch file').toBe(true);
    expect(unique.every((f) => f.sealed)).toBe(true);

    expect(await plaintextFound(spool.dir, [...small, big].flatMap((m) => m.secrets))).toEqual([]);
    for (const name of await readdir(spool.directory.messagesDir)) {
      expect((await readFile(join(spool.directory.messagesDir, name), 'latin1')).startsWith('{"v":2,"sealed":{"by":"aws-encryption-sdk","suite":"ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY","keyring":"raw-aes"')).toBe(true);
    }

    for (const f of unique) {
      for (const m of await spool.read(f)) {
        expect(m.data.equals(bodies.get(m.record.envelope.messageId)!)).toBe(true);
        const sent = [...small, big].find((s) => s.record.envelope.messageId === m.record.envelope.messageId)!;
        expect(m.record).toMatchObject(sent.record);
      }
      // Recovery's view: every entry, with the plaintext offsets the jobs carry.
      const again = await spool.reader.entries(f.id);
      expect(again.sealed).toBe(true);
      expect(again.entries.map((e) => [e.at, e.record.envelope.messageId])).toEqual(f.entries.map((e) => [e.at, e.record.envelope.messageId]));
    }
    // The notification's head: the first bytes of a streamed message, without decrypting the rest.
    const bigFile = unique.find((f) => f.entries[0]!.record.envelope.messageId === big.record.envelope.messageId)!;
    const open = await spool.reader.open(bigFile.id);
    const msg = await open.entry(0, big.record.envelope.messageId);
    await open.close();
    expect(msg.data, 'a streamed message is not held in memory').toBeUndefined();
    expect(msg.dataLength).toBe(bodies.get(big.record.envelope.messageId)!.length);
    let head = Buffer.alloc(0);
    for await (const c of spool.reader.dataStream(msg, 100)) head = Buffer.concat([head, c as Buffer]);
    expect(head.equals(bodies.get(big.record.envelope.messageId)!.subarray(0, 100))).toBe(true);
  });

  it('seal many files under one data key, within its bounds of files and age; a reader opens each data key once', async () => {
    const key = await keyFile(dir.path);
    const { seal, dataKeys } = sealFor(encryption({ keyFile: key }, { dataKeyMaxFiles: 25, dataKeyMaxAgeMs: 60_000 }));
    const spool = new SealedSpool(fresh('spool'), { writer: seal, reader: seal });
    await spool.directory.init({ clearIncoming: true });
    const files: SpoolFile[] = [];
    // One at a time: a file per message.
    for (let i = 0; i < 100; i++) files.push(await spool.receive(addressedRecord().record, body(`m${i}`, 500)));
    expect(new Set(files.map((f) => f.id)).size).toBe(100);
    expect(dataKeys.made, '100 files, 25 a data key').toBe(4);
    const reader = sealFor(encryption({ keyFile: key }));
    const other = new SealedSpool(spool.dir, { reader: reader.seal });
    for (const f of files) expect((await other.read(f)).length).toBe(1);
    expect(reader.dataKeys.opened, 'one per data key, whatever the number of files').toBe(4);

    // Age: a data key older than its bound seals no more.
    const aged = sealFor(encryption({ keyFile: key }, { dataKeyMaxAgeMs: 200 }));
    const spool2 = new SealedSpool(fresh('spool'), { writer: aged.seal, reader: aged.seal });
    await spool2.directory.init({ clearIncoming: true });
    await spool2.receive(addressedRecord().record, body('a'));
    await spool2.receive(addressedRecord().record, body('b'));
    expect(aged.dataKeys.made).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    await spool2.receive(addressedRecord().record, body('c'));
    expect(aged.dataKeys.made).toBe(2);
  });

  it('a ciphertext moved to another spool file, or read by another node, fails naming where it was sealed', async () => {
    const key = await keyFile(dir.path);
    const { seal } = sealFor(encryption({ keyFile: key }), 'node-a');
    const spool = new SealedSpool(fresh('spool'), { writer: seal, reader: seal });
    await spool.directory.init({ clearIncoming: true });
    const batch = await spool.receive(addressedRecord().record, body('moved'));
    const big = addressedRecord();
    const streamed = await spool.receive(big.record, body('moved-big', 600_000));
    for (const f of [batch, streamed]) {
      const otherId = newMessageId();
      await copyFile(spool.directory.path(f.id), spool.directory.path(otherId));
      const why = new RegExp(`sealed for spool file ${f.id} of node "node-a", not for ${otherId} of node "node-a": it was moved or copied here`);
      await expect(spool.reader.open(otherId)).rejects.toThrow(why);
      await expect(spool.reader.entries(otherId)).rejects.toThrow(SpoolSealError);
      // The original still opens.
      expect((await spool.reader.entries(f.id)).entries).toHaveLength(1);
    }
    // The same key on another node: the spool's files are not its.
    const b = sealFor(encryption({ keyFile: key }), 'node-b');
    const asB = new SealedSpool(spool.dir, { reader: b.seal });
    await expect(asB.reader.open(batch.id)).rejects.toThrow(new RegExp(`of node "node-a", not for ${batch.id} of node "node-b"`));
    expect(b.dataKeys.opened, 'refused before any key is touched').toBe(0);
  });

  it('a tampered file fails authentication, a torn one its checksum; a streamed one stops before the bad bytes', async () => {
    const key = await keyFile(dir.path);
    const { seal } = sealFor(encryption({ keyFile: key }));
    const spool = new SealedSpool(fresh('spool'), { writer: seal, reader: seal });
    await spool.directory.init({ clearIncoming: true });

    // One bit of the ciphertext: its checksum says so before anything is decrypted.
    const a = await spool.receive(addressedRecord().record, body('a'));
    const pathA = spool.directory.path(a.id);
    const partsA = await sealedParts(pathA);
    const flipped = Buffer.from(partsA.ciphertext);
    flipped[flipped.length - 40]! ^= 0x01;
    await writeFile(pathA, Buffer.concat([partsA.line, flipped]));
    await expect(spool.reader.open(a.id)).rejects.toThrow(/torn or damaged: its ciphertext does not match its checksum/);

    // The same bit with the checksum made to match: the SDK's authentication refuses it.
    const line = encodeSealedLine({ ...partsA.header, crc32: crc32(flipped) });
    await writeFile(pathA, Buffer.concat([line, flipped]));
    const err = await spool.reader.open(a.id).then(() => undefined, (e: Error) => e);
    expect(err).toBeInstanceOf(SpoolSealError);
    expect(err).toBeInstanceOf(SpoolFormatError); // no retry fixes it; recovery sets it aside
    expect(err!.message).toMatch(/does not open: .*\(tampered, cut short or damaged\); not delivered/);

    // Its context changed in the header (the ESDK message's own bytes): moved, as far as the reader can tell.
    const b = await spool.receive(addressedRecord().record, body('b'));
    const pathB = spool.directory.path(b.id);
    const partsB = await sealedParts(pathB);
    const i = partsB.ciphertext.indexOf(Buffer.from(b.id));
    expect(i).toBeGreaterThan(0);
    const renamed = Buffer.from(partsB.ciphertext);
    renamed.write(newMessageId(), i, 'latin1');
    await writeFile(pathB, Buffer.concat([encodeSealedLine({ ...partsB.header, crc32: crc32(renamed) }), renamed]));
    await expect(spool.reader.open(b.id)).rejects.toThrow(SpoolSealError);

    // Torn: the end never reached the disk.
    const c = await spool.receive(addressedRecord().record, body('c'));
    await truncate(spool.directory.path(c.id), (await readFile(spool.directory.path(c.id))).length - 100);
    await expect(spool.reader.entries(c.id)).rejects.toThrow(/is torn/);

    // A streamed message with a bit flipped in its second megabyte: the record and the first frames read, the bad
    // frame fails the stream — nothing of it is passed on.
    const big = addressedRecord();
    const bigBody = body('big', 3 * 2 ** 20);
    const d = await spool.receive(big.record, bigBody);
    const pathD = spool.directory.path(d.id);
    const bytes = await readFile(pathD);
    bytes[1_500_000]! ^= 0x80;
    await writeFile(pathD, bytes);
    const open = await spool.reader.open(d.id);
    const msg = await open.entry(0, big.record.envelope.messageId);
    await open.close();
    let got = 0;
    const streamErr = await (async () => {
      for await (const chunk of spool.reader.dataStream(msg)) {
        expect((chunk as Buffer).equals(bigBody.subarray(got, got + (chunk as Buffer).length)), 'every byte passed on is the message\'s').toBe(true);
        got += (chunk as Buffer).length;
      }
    })().then(() => undefined, (e: Error) => e);
    expect(streamErr).toBeInstanceOf(SpoolSealError);
    expect(got).toBeLessThan(1_500_000);
    expect(got).toBeGreaterThan(1_000_000);
  });

  it('a file sealed under another key, or read with no key configured, says which key it needs', async () => {
    const [k1, k2] = [await keyFile(dir.path, 'k1'), await keyFile(dir.path, 'k2')];
    const one = sealFor(encryption({ keyFile: k1 }));
    const spool = new SealedSpool(fresh('spool'), { writer: one.seal, reader: one.seal });
    await spool.directory.init({ clearIncoming: true });
    const f = await spool.receive(addressedRecord().record, body('k'));
    const fp1 = keyFingerprint(readKeyFile(k1, 'test'));
    const fp2 = keyFingerprint(readKeyFile(k2, 'test'));
    const two = new SealedSpool(spool.dir, { reader: sealFor(encryption({ keyFile: k2 })).seal });
    const e2 = await two.reader.open(f.id).then(() => undefined, (e: Error) => e);
    expect(e2).toBeInstanceOf(SpoolKeyError);
    expect(e2!.message).toContain(`is sealed under the raw AES key with fingerprint ${fp1}, and gateway.spool.encryption names the key in ${k2} (fingerprint ${fp2})`);
    const none = new SealedSpool(spool.dir, {});
    const e3 = await none.reader.entries(f.id).then(() => undefined, (e: Error) => e);
    expect(e3).toBeInstanceOf(SpoolKeyError);
    expect(e3!.message).toMatch(/is sealed under the raw AES key with fingerprint [0-9a-f]{16} and gateway.spool.encryption is not set: set it again with that key/);
  });

  it('reads plaintext files with encryption on, and sealed ones with it off ("enabled": false): turned on or off with mail waiting', async () => {
    const key = await keyFile(dir.path);
    const on = sealFor(encryption({ keyFile: key }));
    const off = sealFor(encryption({ keyFile: key }, { enabled: false }));
    const d = fresh('spool');
    const plain = new SealedSpool(d, {});
    await plain.directory.init({ clearIncoming: true });
    const p = await plain.receive(addressedRecord().record, body('plain'));
    const sealed = await new SealedSpool(d, { writer: on.seal }).receive(addressedRecord().record, body('sealed'));
    const offWriter = new SealedSpool(d, { writer: off.seal, reader: off.seal });
    const p2 = await offWriter.receive(addressedRecord().record, body('plain again'));
    expect(p.sealed).toBeUndefined();
    expect(sealed.sealed).toBe(true);
    expect(p2.sealed, 'with "enabled": false new mail is plaintext').toBeUndefined();
    expect((await readFile(offWriter.directory.path(p2.id), 'latin1')).startsWith('{"v":1,')).toBe(true);
    expect(off.dataKeys.made).toBe(0);
    for (const reader of [on.seal, off.seal]) {
      const s = new SealedSpool(d, { reader });
      for (const f of [p, sealed, p2]) expect((await s.read(f))[0]!.data.toString('latin1')).toContain('Subject: test');
    }
  });

  it('a spare gone before its round: the file is created under its first message\'s id and sealed for that id', async () => {
    const key = await keyFile(dir.path);
    const { seal, dataKeys } = sealFor(encryption({ keyFile: key }));
    const lost: string[] = [];
    const spool = new SealedSpool(fresh('spool'), { writer: seal, reader: seal }, { spareFiles: true, events: { lost: (p) => lost.push(p) } });
    await spool.directory.init({ clearIncoming: true });
    try {
      await waitFor('spares ready', async () => ((await readdir(spool.directory.messagesDir)).length >= 64 ? true : undefined), 10_000, 10);
      await new Promise((r) => setTimeout(r, 200));
      for (const name of await readdir(spool.directory.messagesDir)) await rm(join(spool.directory.messagesDir, name));
      const m = addressedRecord();
      const f = await spool.receive(m.record, body('fallback'));
      expect(lost).toHaveLength(1);
      expect(f.id, 'named by its message').toBe(m.record.envelope.messageId);
      expect(dataKeys.made).toBe(1);
      expect((await spool.read(f))[0]!.record).toMatchObject(m.record);
    } finally {
      await spool.close();
    }
  });

  it('a 40 MB message is sealed as it streams and opened as it streams: what is in flight stays a few frames', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const key = await keyFile(dir.path);
    const { seal } = sealFor(encryption({ keyFile: key }));
    const spool = new SealedSpool(fresh('spool'), { writer: seal, reader: seal });
    await spool.directory.init({ clearIncoming: true });
    const m = addressedRecord();
    const id = m.record.envelope.messageId;
    const size = 40 * 2 ** 20;
    const chunk = Buffer.alloc(64 * 1024, `${m.secrets.at(-1)} ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n`);
    const MB = 2 ** 20;
    // In flight while sealing: bytes taken from the source and not yet in the file (its size on disk).
    let produced = 0;
    let aheadWriting = 0;
    let buffers = 0;
    gc();
    const base = process.memoryUsage().arrayBuffers;
    const sample = () => {
      gc();
      buffers = Math.max(buffers, process.memoryUsage().arrayBuffers - base);
    };
    async function* source() {
      yield Buffer.from('Subject: big\r\n\r\n');
      for (let i = 0; produced < size; i++) {
        if (i % 16 === 0) {
          const onDisk = await stat(join(spool.directory.incomingDir, `${id}.msg`)).then((st) => st.size, () => 0);
          aheadWriting = Math.max(aheadWriting, produced - onDisk);
          if (i % 64 === 0) sample();
        }
        produced += chunk.length;
        yield chunk;
      }
    }
    const f = await spool.receive(m.record, Readable.from(source()), 64 * MB);
    const writeBuffers = buffers;
    buffers = 0;
    const open = await spool.reader.open(f.id);
    const msg = await open.entry(0, id);
    await open.close();
    // In flight while opening: bytes this process has read (the kernel's count, /proc/self/io rchar — the file is read
    // with positioned reads, and nothing else reads meanwhile) ahead of what was passed on.
    const rchar = async () => Number(/^rchar:\s+(\d+)/m.exec(await readFile('/proc/self/io', 'utf8'))?.[1]);
    const r0 = await rchar();
    let read = 0;
    let aheadReading = 0;
    let i = 0;
    for await (const c of spool.reader.dataStream(msg)) {
      read += (c as Buffer).length;
      if (i++ % 16 === 0) {
        aheadReading = Math.max(aheadReading, (await rchar()) - r0 - read);
        if (i % 64 === 1) sample();
      }
    }
    expect(read).toBe(msg.dataLength);
    console.log(`40 MB sealed message: in flight at most ${(aheadWriting / MB).toFixed(2)} MB sealing, ${(aheadReading / MB).toFixed(2)} MB opening; buffers alive after GC at most ${(writeBuffers / MB).toFixed(1)} MB sealing, ${(buffers / MB).toFixed(1)} MB opening`);
    expect(aheadWriting, 'sealing: the record, a 256 KiB batch of DATA, a frame or two').toBeLessThan(2 * MB);
    expect(aheadReading, 'opening: a few frames ahead of the upload').toBeLessThan(2 * MB);
    expect(Math.max(writeBuffers, buffers), 'nothing near the message\'s size is held').toBeLessThan(32 * MB);
    expect(await plaintextFound(spool.dir, m.secrets)).toEqual([]);
  }, 120_000);
});

describe('key files', () => {
  it('are refused at start when missing, readable by others, or not a 256-bit key — each with the field and the fix', async () => {
    const missing = join(dir.path, 'nope.key');
    const err = (path: string) => {
      try {
        readKeyFile(path, 'mailroom.json');
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('accepted');
    };
    let e = err(missing);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toContain(`gateway.spool.encryption.keyFile: ${missing} does not exist`);
    expect(e.message).toContain('fix: restore it — mail sealed under it cannot be delivered without it');

    const open = await keyFile(dir.path, 'open.key');
    await chmod(open, 0o644);
    e = err(open);
    expect(e.message).toContain(`gateway.spool.encryption.keyFile: ${open} can be read by its group and other users (mode 644)`);
    expect(e.message).toContain(`fix: chmod 600 ${open}`);
    await chmod(open, 0o620);
    expect(err(open).message).toContain('can be written by its group (mode 620)');

    const short = join(dir.path, 'short.key');
    await writeFile(short, 'c2hvcnQ=\n', { mode: 0o600 });
    expect(err(short).message).toMatch(/holds 9 bytes, which are not a 256-bit key.*\n.*fix: write 32 random bytes into it: \(umask 077 && openssl rand -base64 32 >/);
    const password = join(dir.path, 'password.key');
    await writeFile(password, 'correct horse battery staple 123', { mode: 0o600 });
    expect(err(password).message).toContain('looks like a password');

    // Accepted: raw bytes, hex, base64 — the same key each way.
    const k = randomBytes(32);
    const ways = [k, `${k.toString('hex')}\n`, `${k.toString('base64')}\n`];
    const fps = [];
    for (const [i, content] of ways.entries()) {
      const p = join(dir.path, `ok-${i}.key`);
      await writeFile(p, content, { mode: 0o600 });
      fps.push(keyFingerprint(readKeyFile(p, 'x')));
    }
    expect(new Set(fps).size).toBe(1);
  });
});

/** Errors no one handled while `f` ran and shortly after (the SDK's inner streams report late). */
async function uncaughtDuring(f: () => Promise<void>): Promise<unknown[]> {
  const uncaught: unknown[] = [];
  const on = (e: unknown) => void uncaught.push(e);
  process.on('uncaughtException', on);
  try {
    await f();
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    process.off('uncaughtException', on);
  }
  return uncaught;
}

describe('a streamed message given up while it is sealed', () => {
  it('past the size limit: dropped, with no error left behind (the SDK\'s stream is ended and drained, not torn down)', async () => {
    const key = await keyFile(dir.path);
    const { seal } = sealFor(encryption({ keyFile: key }));
    const spool = new SealedSpool(fresh('spool'), { writer: seal, reader: seal });
    await spool.directory.init({ clearIncoming: true });
    const uncaught = await uncaughtDuring(async () => {
      const data = new PassThrough({ autoDestroy: false });
      data.end(body('big', 6 * 2 ** 20));
      const r = await spool.writer.receive(addressedRecord().record, data, 2 ** 20);
      expect(r).toMatchObject({ ok: false, reason: 'oversized' });
    });
    expect(uncaught).toEqual([]);
    expect(await readdir(spool.directory.incomingDir)).toEqual([]);
    await spool.close();
  });
});

describe('a full disk while a big message is sealed', () => {
  it.skipIf(!canMountTmpfs)('refuses the message with the disk\'s error (no wait for ever), leaving nothing behind', async () => {
    const fs = mountTmpfs(2 * 2 ** 20)!;
    try {
      const key = await keyFile(dir.path);
      const { seal } = sealFor(encryption({ keyFile: key }));
      const spool = new SealedSpool(join(fs.path, 'spool'), { writer: seal, reader: seal });
      await spool.directory.init({ clearIncoming: true });
      const m = addressedRecord();
      // As smtp-server's DATA stream: not destroyed when the writer stops reading it. (One that auto-destroys emits an
      // AbortError then, and the writer counts its own failure as the body's.)
      const data = new PassThrough({ autoDestroy: false });
      data.end(body('full', 6 * 2 ** 20));
      let outcome: unknown;
      const uncaught = await uncaughtDuring(async () => {
        outcome = await Promise.race([
          spool.receive(m.record, data).then(() => 'accepted', (e: NodeJS.ErrnoException) => e.code ?? `${e.name}: ${e.message}`),
          new Promise((r) => setTimeout(() => r('still waiting after 20 s'), 20_000)),
        ]);
      });
      expect(outcome).toBe('ENOSPC');
      expect(uncaught).toEqual([]);
      expect(await readdir(spool.directory.incomingDir)).toEqual([]);
      await spool.close();
    } finally {
      fs.remove();
    }
  });
});

describe('data keys made ahead', () => {
  it('the next data key is made before the current one is too old, so no seal waits for one; an idle seal makes none', async () => {
    const key = await keyFile(dir.path);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const { seal, dataKeys } = sealFor(encryption({ keyFile: key }, { dataKeyMaxAgeMs: 1_000 }));
    const spool = new SealedSpool(fresh('spool'), { writer: seal, reader: seal });
    await spool.directory.init({ clearIncoming: true });
    seal.renewAhead();
    try {
      await spool.receive(addressedRecord().record, body('first', 300));
      expect(dataKeys.made).toBe(1);
      // At 80 % of its age the next key is made; past the first one's age a seal finds it ready.
      await sleep(1_150);
      expect(dataKeys.made, 'made ahead').toBe(2);
      await spool.receive(addressedRecord().record, body('second', 300));
      expect(dataKeys.made, 'the seal made none itself').toBe(2);
      // Used since: renewed once more; then idle: no more.
      await sleep(2_100);
      expect(dataKeys.made, 'one more, then none while nothing is sealed').toBe(3);
    } finally {
      seal.close();
    }
  });
});
