/** The `mailroom worker` process: the flags it lists and refuses, and a spool directory it cannot make. */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/files.js';

const bin = fileURLToPath(new URL('../../bin/mailroom.js', import.meta.url));

describe('spool directory start-up errors', () => {
  it('`mailroom worker` with a spool path through a file says so and exits 1', async () => {
    const dir = await tempDir();
    try {
      await writeFile(join(dir.path, 'file'), '');
      const config = fileURLToPath(new URL('../../examples/minimal.json', import.meta.url));
      const spoolDir = join(dir.path, 'file', 'spool');
      const out = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
        execFile(process.execPath, [bin, 'worker', '--config', config, '--spool-dir', spoolDir], { env: { ...process.env, REDIS_URL: 'redis://127.0.0.1:1', LOG_LEVEL: 'silent' }, timeout: 20_000 }, (err, _o, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
        ),
      );
      expect(out.stderr).toContain(`mailroom worker: cannot make the spool directory ${spoolDir}: ${join(dir.path, 'file')} is a file, not a directory (ENOTDIR)`);
      expect(out.code).toBe(1);
    } finally {
      await dir.remove();
    }
  }, 30_000);
});

describe('mailroom worker flags', () => {
  const cli = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [bin, ...args], { timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })),
    );

  it('lists and takes no SMTP listener flags (the worker has no listener); gateway and smtp still do', async () => {
    const [worker, smtp] = await Promise.all([cli('worker', '--help'), cli('smtp', '--help')]);
    expect(worker.stdout).toContain('--concurrency');
    expect(worker.stdout).not.toMatch(/--smtp-port|--smtp-host|--lmtp-port/);
    expect(smtp.stdout).toMatch(/--smtp-port[\s\S]*--smtp-host[\s\S]*--lmtp-port/);
    const refused = await cli('worker', '--config', 'examples/minimal.json', '--smtp-port=2525');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('mailroom worker: --smtp-port is a setting of the SMTP front, which `mailroom worker` does not run: drop it');
  }, 30_000);
});
