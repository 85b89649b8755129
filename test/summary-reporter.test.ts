/** The "N passed, N failed, N skipped" line CI reads must count a file whose hook failed (its tests then only skip). */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './support/files.js';

const ROOT = join(import.meta.dirname, '..');
let dir: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  dir = await tempDir('mailroom-reporter-');
  // globals: the files live outside the project, where `import 'vitest'` would not resolve.
  await writeFile(join(dir.path, 'hook.test.js'), "describe('a server that does not start', () => { beforeAll(() => { throw new Error('boom'); }); it('uses it', () => {}); });\n");
  await writeFile(join(dir.path, 'fine.test.js'), "it('passes', () => {});\n");
  await writeFile(
    join(dir.path, 'vitest.config.mjs'),
    `export default { test: { globals: true, include: ['*.test.js'], reporters: [${JSON.stringify(join(ROOT, 'test', 'support', 'summary-reporter.ts'))}] } };\n`,
  );
});
afterAll(() => dir?.remove());

describe('summary reporter', () => {
  it('counts a file whose beforeAll failed as failed', async () => {
    const out = await new Promise<{ code: number; stdout: string }>((resolve) =>
      execFile(process.execPath, [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--root', dir.path, '--config', join(dir.path, 'vitest.config.mjs')], { cwd: dir.path, timeout: 60_000, env: { ...process.env, MAILROOM_SUMMARY_LABEL: '', MAILROOM_SUMMARY_FILE: '' } }, (err, stdout) =>
        resolve({ code: err ? 1 : 0, stdout }),
      ),
    );
    expect(out.code).toBe(1);
    expect(out.stdout.trim().split('\n').at(-1)).toBe('1 passed, 1 failed, 1 skipped');
  }, 90_000);
});
