/** bin/mailroom.js runs dist/ when built; it says so when a source is newer than the build (a pull, an edit). */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/files.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
const source = () => join(dir.path, 'gateway/smtp/server.ts');

beforeAll(async () => {
  // A built checkout in miniature: the real bin/mailroom.js, a dist/ entry point that says it ran, one source file.
  dir = await tempDir();
  mkdirSync(join(dir.path, 'bin'));
  mkdirSync(join(dir.path, 'dist/cli'), { recursive: true });
  mkdirSync(join(dir.path, 'gateway/smtp'), { recursive: true });
  copyFileSync(new URL('../../bin/mailroom.js', import.meta.url), join(dir.path, 'bin/mailroom.js'));
  writeFileSync(join(dir.path, 'package.json'), '{"type":"module"}');
  writeFileSync(join(dir.path, 'dist/cli/main.js'), 'console.log("the build ran");\n');
  writeFileSync(source(), '// source\n');
});

afterAll(async () => dir?.remove());

function run(sourceAt: Date): { stdout: string; stderr: string } {
  utimesSync(source(), sourceAt, sourceAt);
  const r = spawnSync(process.execPath, [join(dir.path, 'bin/mailroom.js')], { encoding: 'utf8', timeout: 20_000 });
  return { stdout: r.stdout, stderr: r.stderr };
}

describe('bin/mailroom.js', () => {
  it('runs the build quietly when no source is newer', () => {
    expect(run(new Date(Date.now() - 60_000))).toEqual({ stdout: 'the build ran\n', stderr: '' });
  });

  it('warns, naming the file, when a source is newer than the build, and still runs the build', () => {
    const r = run(new Date(Date.now() + 60_000));
    expect(r.stdout).toBe('the build ran\n');
    expect(r.stderr).toMatch(/^mailroom: warning: dist\/ is older than gateway\/smtp\/server\.ts; running the old build — run `npm run build`/);
  });
});
