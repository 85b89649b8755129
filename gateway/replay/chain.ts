import type { Duplex, Readable } from 'node:stream';

/**
 * `first.pipe(a).pipe(b)…` as one readable: an error in any stage destroys the last with that error (so its reader
 * sees it), and the last closing — at its end, or destroyed by its reader — destroys every stage (a file it reads
 * is closed). What stream.pipeline does, without its per-chain AbortController and AbortError: replay builds one
 * chain per message, and those showed in its profile.
 */
export function chain(first: Readable, ...stages: Duplex[]): Readable {
  const all: Array<Readable | Duplex> = [first, ...stages];
  const last = all[all.length - 1]!;
  for (let i = 0; i < stages.length; i++) all[i]!.pipe(stages[i]!);
  for (const s of all) if (s !== last) s.once('error', (err) => last.destroy(err));
  last.once('close', () => {
    for (const s of all) if (!s.destroyed) s.destroy();
  });
  return last;
}
