import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { SpoolDirectory, type SpoolDirectoryOptions } from '../../gateway/spool/directory.js';
import type { SpoolFile, SpoolRecord } from '../../gateway/spool/format.js';
import { SpoolReader, type OpenSpoolFile, type SpooledMessage } from '../../gateway/spool/reader.js';
import { SpoolWriter, type Received, type SpoolEvents } from '../../gateway/spool/writer.js';

/**
 * A spool's three parts over one directory, as the gateway wires them (gateway.ts), with the disk side of an accept
 * in one call: `receive` resolves once the message is durable, as a 250 needs.
 */
export class TestSpool {
  readonly directory: SpoolDirectory;
  readonly writer: SpoolWriter;
  readonly reader: SpoolReader;

  constructor(dir: string, opts: SpoolDirectoryOptions & { events?: SpoolEvents } = {}) {
    this.directory = new SpoolDirectory(dir, opts);
    this.writer = new SpoolWriter(this.directory, opts.events ?? {});
    this.reader = new SpoolReader(this.directory);
  }

  get dir(): string {
    return this.directory.dir;
  }

  init(opts: { clearIncoming: boolean }): Promise<void> {
    return this.directory.init(opts);
  }

  close(): Promise<void> {
    return this.directory.close();
  }

  async receive(record: SpoolRecord, data: Readable, limitBytes = Infinity): Promise<{ ok: true; dataLength: number; file: SpoolFile } | Exclude<Received, { ok: true }>> {
    const r = await this.writer.receive(record, data, limitBytes);
    if (!r.ok) return r;
    await r.durable;
    return { ok: true, dataLength: r.dataLength, file: r.file };
  }

  open(fileId: string): Promise<OpenSpoolFile> {
    return this.reader.open(fileId);
  }

  openFile(fileId: string): Promise<SpoolFile> {
    return this.reader.entries(fileId);
  }

  dataStream(msg: SpooledMessage, limit?: number): Readable {
    return this.reader.dataStream(msg, limit);
  }

  path(fileId: string): string {
    return this.directory.path(fileId);
  }

  list(): Promise<string[]> {
    return this.directory.list();
  }

  remove(fileId: string): Promise<boolean> {
    return this.directory.remove(fileId);
  }

  countSpooled(): Promise<number> {
    return this.directory.countSpooled();
  }
}

/** One message of a spool file, read the way a delivery reads it (and checked to be `messageId`). */
export async function spooledMessage(spool: { reader: SpoolReader }, fileId: string, at = 0, messageId = fileId): Promise<SpooledMessage> {
  const reader = await spool.reader.open(fileId);
  try {
    return await reader.entry(at, messageId);
  } finally {
    await reader.close();
  }
}

/**
 * Names of the files in a spool's `messages/` that hold messages. Empty ones are the SMTP front's spares
 * (gateway/spool/spares.ts): they hold nothing and are not counted.
 */
export async function spooledFiles(spoolDir: string): Promise<string[]> {
  const dir = join(spoolDir, 'messages');
  const names = await readdir(dir);
  const sizes = await Promise.all(names.map((n) => stat(join(dir, n)).then((s) => s.size, () => 0)));
  return names.filter((_, i) => sizes[i]! > 0).sort();
}

/** The path of the spool file that holds `messageId` (a batch file may be named by its spare's id), or undefined. */
export async function spoolFileHolding(spoolDir: string, messageId: string): Promise<string | undefined> {
  for (const name of await spooledFiles(spoolDir)) {
    const path = join(spoolDir, 'messages', name);
    const text = await readFile(path, 'latin1').catch(() => '');
    if (text.includes(`"messageId":"${messageId}"`)) return path;
  }
  return undefined;
}

/** What the fsync of a spool's `messages/` does next: go through, wait for a release, or fail. */
export type DirSync = { mode: 'pass' } | { mode: 'hold'; released: Promise<void> } | { mode: 'fail' };

/**
 * Routes a spool's fsyncs of `messages/` (GroupSync calls the method at each sync) through `state`: counted when
 * asked for and when done, and held or failed on purpose — a disk that fails on demand cannot run here.
 */
export function interceptDirSync(spool: SpoolDirectory, state: { dirSync: DirSync; dirSyncCalls: number; dirSyncsDone?: number }): void {
  const target = spool as unknown as { syncMessagesDir(): Promise<void> };
  const real = target.syncMessagesDir.bind(spool);
  target.syncMessagesDir = async () => {
    state.dirSyncCalls++;
    const now = state.dirSync;
    if (now.mode === 'hold') await now.released;
    if (now.mode === 'fail') throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    await real();
    // Counted once done: a spare group is ready only after its fsync, which a loaded disk can take a while to finish.
    state.dirSyncsDone = (state.dirSyncsDone ?? 0) + 1;
  };
}
