import { opendir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { prepareMessageFile } from './message-file.js';
import { ReplayProblem, SourceNote, type SourceItem } from './source.js';

/**
 * A directory of `.eml` files (a mail client's export), searched recursively, each directory in name order. Only
 * names ending in `.eml` (any case) are messages; the rest are counted and left alone. Symbolic links to files are
 * followed, links to directories are not (a link back up would loop).
 */

export interface EmlDirOptions {
  path: string;
  realPath: string;
  maxBytes: number;
}

export async function* emlDirSource(o: EmlDirOptions): AsyncGenerator<SourceItem | ReplayProblem | SourceNote> {
  let messages = 0;
  let others = 0;
  async function* walk(dir: string): AsyncGenerator<SourceItem | ReplayProblem> {
    const files: string[] = [];
    const dirs: string[] = [];
    try {
      for await (const e of await opendir(dir)) {
        const path = join(dir, e.name);
        if (e.isDirectory()) dirs.push(path);
        else if (e.isFile() || (e.isSymbolicLink() && (await stat(path).then((s) => s.isFile(), () => false)))) files.push(path);
        else others++;
      }
    } catch (err) {
      yield new ReplayProblem('failed', dir, `cannot be listed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
      return;
    }
    for (const path of files.sort()) {
      if (!/\.eml$/i.test(path)) {
        others++;
        continue;
      }
      messages++;
      const identity = `eml:${o.realPath}/${relative(o.path, path)}`;
      yield { location: path, prepare: () => prepareMessageFile({ path, location: path, identity, kind: 'eml', maxBytes: o.maxBytes }) };
    }
    for (const sub of dirs.sort()) yield* walk(sub);
  }
  yield* walk(o.path);
  if (messages === 0) {
    yield new ReplayProblem('failed', o.path, 'holds no .eml file and is not a Maildir (no cur/ and new/ in it): nothing to replay; name an mbox file, a Maildir or a directory of .eml files');
  } else if (others > 0) {
    yield new SourceNote(o.path, `${others} entr${others === 1 ? 'y' : 'ies'} without the .eml extension left alone`);
  }
}
