#!/usr/bin/env node
// Runs the compiled CLI when the package was built (dist/), else the TypeScript sources through tsx.
import { existsSync } from 'node:fs';

// The pinned AWS SDK warns on every run that *future* releases need Node 22; the README covers that plan, and a
// CLI whose every stderr starts with it buries real errors. Users can still set the variable to "false".
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../cli/main.ts', import.meta.url).href);
}
