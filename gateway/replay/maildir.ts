import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { prepareMessageFile } from './message-file.js';
import { ReplayProblem, type SourceItem } from './source.js';

/**
 * A Maildir as a replay source: the messages in `new/` and `cur/` (a message moves from one to the other when read),
 * in the order of their names — which begin with the delivery time, so the order is the order of arrival. `tmp/`
 * holds deliveries in progress and is skipped, as are names starting with a dot. The flags after `:2,` are not
 * replayed (SES has no such thing), and are left out of the message's identity, so marking a message read between
 * two runs does not make it a new message. Maildir++ folders (`.Sent`, `.Archive`, …, as Dovecot and Courier keep
 * them) are replayed after the top folder.
 */

/** A directory is a Maildir when it has both `cur/` and `new/`. */
export async function isMaildir(dir: string): Promise<boolean> {
  const isDir = (p: string) => stat(p).then((s) => s.isDirectory(), () => false);
  return (await isDir(join(dir, 'cur'))) && (await isDir(join(dir, 'new')));
}

/** The name without its info part (`:2,FS`; `!` or `;` stand in for `:` where a file system forbids it). */
export function uniqueName(name: string): string {
  return name.replace(/[:!;][12],[^/]*$/, '');
}

export interface MaildirSourceOptions {
  path: string;
  realPath: string;
  maxBytes: number;
}

export async function* maildirSource(o: MaildirSourceOptions): AsyncGenerator<SourceItem | ReplayProblem> {
  const folders = [''];
  try {
    const entries = await readdir(o.path, { withFileTypes: true });
    for (const e of entries.sort((a, b) => cmp(a.name, b.name))) {
      if (e.isDirectory() && e.name.startsWith('.') && e.name !== '.' && e.name !== '..' && (await isMaildir(join(o.path, e.name)))) folders.push(e.name);
    }
  } catch (err) {
    yield new ReplayProblem('failed', o.path, `cannot be listed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
    return;
  }
  for (const folder of folders) {
    const dir = join(o.path, folder);
    const names: Array<{ sub: 'new' | 'cur'; name: string }> = [];
    for (const sub of ['new', 'cur'] as const) {
      try {
        for (const name of await readdir(join(dir, sub))) if (!name.startsWith('.')) names.push({ sub, name });
      } catch (err) {
        yield new ReplayProblem('failed', join(dir, sub), `cannot be listed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
      }
    }
    names.sort((a, b) => cmp(a.name, b.name));
    for (const { sub, name } of names) {
      const path = join(dir, sub, name);
      const identity = `maildir:${o.realPath}:${folder ? `${folder}/` : ''}${uniqueName(name)}`;
      yield { location: path, prepare: () => prepareMessageFile({ path, location: path, identity, kind: 'maildir', maxBytes: o.maxBytes }) };
    }
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
