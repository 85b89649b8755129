/**
 * Batch files sealed on the sealing thread read back with the spool's own seal (same key, same node); a thread that
 * dies fails only the seals it held, and the next seal starts a new one; a thread whose key is unusable does not start.
 */
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SealThread } from '../../gateway/spool/seal-thread.js';
import { SpoolWriter } from '../../gateway/spool/writer.js';
import { tempDir } from '../support/files.js';
import { addressedRecord, closeSpools, encryption, keyFile, plaintextFound, SealedSpool, sealFor } from './support.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
const threads: SealThread[] = [];

beforeAll(async () => {
  dir = await tempDir('mailroom-seal-thread-');
});
afterAll(async () => {
  for (const t of threads) await t.close();
  await closeSpools();
  await dir?.remove();
});

describe('the spool sealing thread', () => {
  it('seals batch files that the spool opens as its own, and makes its own data key at start', async () => {
    const enc = encryption({ keyFile: await keyFile(dir.path) });
    const keys: string[] = [];
    const thread = await SealThread.start({ encryption: enc, source: 'test config', requestTimeoutMs: 10_000, nodeId: 'node-a' }, { dataKey: (op) => keys.push(op) });
    threads.push(thread);
    expect(keys, 'made (and opened, by its check) before the first message').toEqual(['made', 'opened']);
    const { seal } = sealFor(enc, 'node-a');
    const spool = new SealedSpool(join(dir.path, 'spool'), { reader: seal });
    await spool.directory.init({ clearIncoming: true });
    const writer = new SpoolWriter(spool.directory, {}, seal, (id, plaintext, bytes) => thread.seal(id, plaintext, bytes));
    const msgs = Array.from({ length: 12 }, () => addressedRecord());
    const received = await Promise.all(msgs.map((m) => writer.receive(m.record, Readable.from([Buffer.from(`Subject: t\r\n\r\n${m.secrets.at(-1)}\r\n`)]), 1e6)));
    const files = new Map<string, NonNullable<Extract<(typeof received)[number], { ok: true }>['file']>>();
    for (const r of received) {
      if (!r.ok) throw new Error('not spooled');
      await r.durable;
      files.set(r.file.id, r.file);
    }
    expect(await plaintextFound(spool.dir, msgs.flatMap((m) => m.secrets))).toEqual([]);
    let read = 0;
    for (const f of files.values()) {
      for (const m of await spool.read(f)) {
        expect(m.data.toString('latin1')).toContain(msgs.find((x) => x.record.envelope.messageId === m.record.envelope.messageId)!.secrets.at(-1));
        read++;
      }
    }
    expect(read).toBe(12);
    expect(keys.filter((k) => k === 'made')).toHaveLength(1);
  });

  it('a thread that dies fails the seals it held; the next seal starts a new thread', async () => {
    const enc = encryption({ keyFile: await keyFile(dir.path, 'k2') });
    const died: string[] = [];
    const thread = await SealThread.start({ encryption: enc, source: 'test config', requestTimeoutMs: 10_000, nodeId: 'node-a' }, { died: (why) => died.push(why) });
    threads.push(thread);
    const held = thread.seal('f1', [Buffer.alloc(100_000, 'a')], 100_000);
    await (thread as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await expect(held).rejects.toThrow(/the spool sealing thread stopped: exit code/);
    expect(died).toHaveLength(1);
    const again = await thread.seal('f2', [Buffer.from('plaintext')], 9);
    expect(again.line.toString('latin1')).toMatch(/^\{"v":2,"sealed":/);
  });

  it('does not start with a key file it cannot use, and says why', async () => {
    const missing = join(dir.path, 'none.key');
    await expect(SealThread.start({ encryption: encryption({ keyFile: missing }), source: 'mailroom.json', requestTimeoutMs: 10_000, nodeId: 'n' })).rejects.toThrow(`gateway.spool.encryption.keyFile: ${missing} does not exist`);
  });
});
