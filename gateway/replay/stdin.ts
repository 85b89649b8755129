import { createWriteStream, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { tooBig } from './data-meter.js';
import { prepareMessageFile } from './message-file.js';
import { ReplayProblem, type SourceItem } from './source.js';

/**
 * `-`: one message on standard input. It is saved to a private temporary file first (mode 0600 in a 0700 directory,
 * removed once the message is handed on), because replay reads a message twice — once for its id, once to store
 * it — and a pipe can be read only once. Its identity is its content alone: the same message piped twice is the
 * same message.
 */

export const STDIN_LOCATION = 'standard input';

export async function* stdinSource(o: { input: Readable; maxBytes: number; tempRoot?: string }): AsyncGenerator<SourceItem> {
  yield {
    location: STDIN_LOCATION,
    prepare: async () => {
      const dir = await mkdtemp(join(o.tempRoot ?? tmpdir(), 'mailroom-replay-'));
      const release = () => rmSync(dir, { recursive: true, force: true });
      const path = join(dir, 'message');
      try {
        await saveBounded(o.input, path, o.maxBytes);
      } catch (err) {
        release();
        throw err;
      }
      return prepareMessageFile({ path, location: STDIN_LOCATION, identity: 'stdin', kind: 'stdin', maxBytes: o.maxBytes, release });
    },
  };
}

/** Copies `input` to `path`, stopping (and saying so) once it passes `maxBytes`: DATA is never shorter than the input. */
async function saveBounded(input: Readable, path: string, maxBytes: number): Promise<void> {
  const out = createWriteStream(path, { mode: 0o600, flags: 'wx' });
  let bytes = 0;
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes > maxBytes) throw tooBig(STDIN_LOCATION, bytes, maxBytes, true);
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
  } catch (err) {
    out.destroy();
    if (err instanceof ReplayProblem) throw err;
    throw new ReplayProblem('failed', STDIN_LOCATION, `could not be read (${(err as Error).message})`, { cause: err });
  }
  out.end();
  await finished(out);
}
