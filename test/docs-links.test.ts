import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The README and docs/ are part of the product: every relative link in them, and every `docs/<file>.md#<anchor>`
 * that code cites, must lead somewhere. Anchors are computed as GitHub renders headings.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CODE_DIRS = ['bin', 'cli', 'docker', 'gateway', 'infra', 'load', 'scripts', 'shared', 'test'];

/** Lines outside fenced code blocks, with their 1-based numbers. */
function proseLines(text: string): Array<{ line: string; n: number }> {
  const out: Array<{ line: string; n: number }> = [];
  let fence: string | undefined;
  text.split('\n').forEach((line, i) => {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (m) {
      if (fence === undefined) fence = m[1]![0]!;
      else if (m[1]![0] === fence) fence = undefined;
      return;
    }
    if (fence === undefined) out.push({ line, n: i + 1 });
  });
  return out;
}

/** GitHub's heading ids (github-slugger): lowercase, punctuation dropped, spaces to hyphens, repeats numbered. */
export function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const { line } of proseLines(markdown)) {
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1]!);
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const text = h[1]!
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links keep their text
      .replace(/<[^>]+>/g, '')
      .replace(/[`*]/g, '');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Markdown links `[text](target)` outside code, as written. */
function linksOf(markdown: string): Array<{ target: string; n: number }> {
  const out: Array<{ target: string; n: number }> = [];
  for (const { line, n } of proseLines(markdown)) {
    const prose = line.replace(/`[^`]*`/g, '');
    for (const m of prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) out.push({ target: m[1]!, n });
  }
  return out;
}

const anchorCache = new Map<string, Set<string>>();
function anchorsOfFile(path: string): Set<string> {
  let a = anchorCache.get(path);
  if (!a) anchorCache.set(path, (a = anchorsOf(readFileSync(path, 'utf8'))));
  return a;
}

/** Why `target` (a relative link from `fromFile`) does not resolve, or undefined when it does. */
function brokenLink(fromFile: string, target: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return undefined; // https:, mailto:
  const [pathPart, anchor] = target.split('#', 2) as [string, string | undefined];
  const path = pathPart === '' ? fromFile : resolve(dirname(fromFile), decodeURIComponent(pathPart));
  if (!existsSync(path)) return `${relative(ROOT, path)} does not exist`;
  if (anchor === undefined || anchor === '') return undefined;
  if (!path.endsWith('.md') || statSync(path).isDirectory()) return `an anchor into ${relative(ROOT, path)}, which is no markdown file`;
  if (!anchorsOfFile(path).has(decodeURIComponent(anchor))) return `${relative(ROOT, path)} has no heading with the anchor #${anchor}`;
  return undefined;
}

function markdownFiles(): string[] {
  const docs = join(ROOT, 'docs');
  return [join(ROOT, 'README.md'), ...readdirSync(docs).filter((f) => f.endsWith('.md')).map((f) => join(docs, f))];
}

function codeFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...codeFiles(p));
    else if (/\.(ts|js|mjs|sh|rb|yml|json)$/.test(entry.name) || entry.name === 'Dockerfile') out.push(p);
  }
  return out;
}

describe('documentation links', () => {
  it('computes anchors as GitHub does', () => {
    const a = anchorsOf("# mailroom\n## Choices where SES's behaviour is not confirmed\n### `npm start`\n## Limits\n## Limits\n```\n# not a heading\n```\n");
    expect([...a]).toEqual(['mailroom', 'choices-where-sess-behaviour-is-not-confirmed', 'npm-start', 'limits', 'limits-1']);
  });

  it('every relative link and anchor in README.md and docs/*.md resolves', () => {
    const broken: string[] = [];
    for (const file of markdownFiles()) {
      for (const { target, n } of linksOf(readFileSync(file, 'utf8'))) {
        const why = brokenLink(file, target);
        if (why) broken.push(`${relative(ROOT, file)}:${n}: (${target}) — ${why}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('every docs/<file>.md#<anchor> cited in code exists', () => {
    const broken: string[] = [];
    for (const file of CODE_DIRS.filter((d) => existsSync(join(ROOT, d))).flatMap((d) => codeFiles(join(ROOT, d)))) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          for (const m of line.matchAll(/\bdocs\/([\w.-]+\.md)(?:#([\w-]+))?/g)) {
            const why = brokenLink(join(ROOT, 'README.md'), `docs/${m[1]}${m[2] ? `#${m[2]}` : ''}`);
            if (why) broken.push(`${relative(ROOT, file)}:${i + 1}: ${m[0]} — ${why}`);
          }
        });
    }
    expect(broken).toEqual([]);
  });
});
