import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import type { MboxVariant } from '../../gateway/replay/mbox-decoder.js';
import { ReplayProblem, SourceNote, type PreparedMessage, type Source } from '../../gateway/replay/source.js';
import { openSource, type SourceOptions } from '../../gateway/replay/sources.js';

const run = promisify(execFile);

export interface Archives {
  dir: string;
  manifest: {
    messages: Record<string, { bytes: number }>;
    mboxo: { path: string; messages: Array<{ name: string; offset: number; line: number }> };
    mboxrd: { path: string; messages: Array<{ name: string; offset: number; line: number }> };
    maildir: { path: string; messages: Array<{ name: string; path: string; key: string }>; notMail: string[] };
    emldir: { path: string; messages: Array<{ name: string; path: string }>; others: number };
    truncated: { offset: number; line: number; before: string[] };
  };
  expected(name: string, variant?: MboxVariant): Buffer;
}

/** Writes the archives with Python's mailbox module (test/replay/fixtures/write_archives.py). */
export async function writeArchives(dir: string): Promise<Archives> {
  try {
    await run('python3', [join(import.meta.dirname, 'fixtures', 'write_archives.py'), dir], { timeout: 120_000 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('python3 is needed to write the replay fixtures (apt-get install python3)');
    throw err;
  }
  return {
    dir,
    manifest: JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Archives['manifest'],
    expected: (name, variant = 'mboxrd') => readFileSync(join(dir, 'expected', `${name}${variant === 'mboxo' ? '.mboxo' : ''}.eml`)),
  };
}

export interface ReadMessage {
  location: string;
  prepared: PreparedMessage;
  data: Buffer;
}

export interface ReadSource {
  messages: ReadMessage[];
  problems: ReplayProblem[];
  notes: SourceNote[];
}

/** Reads a whole source the way the driver does (prepare, then the body), one message at a time. */
export async function readSource(source: Source): Promise<ReadSource> {
  const out: ReadSource = { messages: [], problems: [], notes: [] };
  for await (const entry of source) {
    if (entry instanceof ReplayProblem) out.problems.push(entry);
    else if (entry instanceof SourceNote) out.notes.push(entry);
    else {
      try {
        const prepared = await entry.prepare();
        const chunks: Buffer[] = [];
        for await (const c of prepared.body() as AsyncIterable<Buffer>) chunks.push(c);
        out.messages.push({ location: entry.location, prepared, data: Buffer.concat(chunks) });
      } catch (err) {
        if (err instanceof ReplayProblem) out.problems.push(err);
        else throw err;
      }
    }
  }
  return out;
}

export function sourceOptions(over: Partial<SourceOptions> = {}): SourceOptions {
  return {
    mboxVariant: 'mboxrd',
    maxBytes: 40 * 1024 * 1024,
    aws: () => {
      throw new Error('no AWS in this test');
    },
    stdin: Readable.from([]),
    ...over,
  };
}

export const readArg = (arg: string, over: Partial<SourceOptions> = {}) => readSource(openSource(arg, sourceOptions(over)));
