/**
 * The layering docs/architecture.md describes, checked on the code's own imports: shared/ depends on neither half,
 * infra/ and gateway/ not on each other nor on cli/, and no two folders import each other both ways.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const sources = execFileSync('git', ['ls-files', '*.ts'], { cwd: ROOT })
  .toString()
  .split('\n')
  .filter((f) => f && !f.startsWith('test/') && !f.endsWith('.d.ts'));

/** A file's folder as the map names it: `gateway/intake`, `shared/ses`, `cli/commands`; a top-level file is its folder's. */
const folderOf = (file: string) => {
  const parts = file.split('/');
  return parts.length > 2 ? parts.slice(0, 2).join('/') : parts[0]!;
};

const imports: Array<{ from: string; to: string }> = [];
for (const file of sources) {
  const text = readFileSync(join(ROOT, file), 'utf8');
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
    imports.push({ from: file, to: relative(ROOT, resolve(ROOT, dirname(file), m[1]!)).replace(/\.js$/, '.ts') });
  }
}

describe('architecture', () => {
  it('finds the imports it checks', () => {
    expect(imports.some((i) => i.from.startsWith('gateway/intake/') && i.to.startsWith('gateway/spool/'))).toBe(true);
  });

  it('shared/ imports nothing of infra/, gateway/, load/ or cli/; infra/ and gateway/ import neither each other nor cli/ or load/', () => {
    const top = (f: string) => f.split('/')[0];
    const wrong = imports.filter(({ from, to }) => {
      const [a, b] = [top(from), top(to)];
      if (a === 'shared') return b !== 'shared';
      if (a === 'infra') return b === 'gateway' || b === 'cli' || b === 'load';
      if (a === 'gateway') return b === 'infra' || b === 'cli' || b === 'load';
      return false;
    });
    expect(wrong.map((i) => `${i.from} -> ${i.to}`)).toEqual([]);
  });

  it('no two folders import each other both ways', () => {
    const edges = new Map<string, string>();
    for (const { from, to } of imports) {
      const [a, b] = [folderOf(from), folderOf(to)];
      if (a !== b && !edges.has(`${a} -> ${b}`)) edges.set(`${a} -> ${b}`, `${from} -> ${to}`);
    }
    const both = [...edges.keys()].filter((k) => {
      const [a, b] = k.split(' -> ');
      return a! < b! && edges.has(`${b} -> ${a}`);
    });
    expect(both.map((k) => `${edges.get(k)}  and back: ${edges.get(k.split(' -> ').reverse().join(' -> '))}`)).toEqual([]);
  });
});
