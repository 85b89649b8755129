#!/usr/bin/env node
// Runs the compiled CLI when the package was built (dist/), else the TypeScript sources through tsx.
import { existsSync, readdirSync, statSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
/** A source file changed since the last build (a `git pull`, an edit): dist/ would run the old code without a word. */
function newerSource(builtAt) {
  for (const dir of ['cli', 'gateway', 'load', 'shared']) {
    const root = new URL(`../${dir}/`, import.meta.url);
    if (!existsSync(root)) continue; // an image with only dist/
    for (const name of readdirSync(root, { recursive: true })) {
      if (name.endsWith('.ts') && statSync(new URL(name, root)).mtimeMs > builtAt) return `${dir}/${name}`;
    }
  }
  return undefined;
}

if (existsSync(compiled)) {
  const stale = newerSource(statSync(compiled).mtimeMs);
  if (stale) process.stderr.write(`mailroom: warning: dist/ is older than ${stale}; running the old build — run \`npm run build\` (or delete dist/ to run the sources)\n`);
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../cli/main.ts', import.meta.url).href);
}
