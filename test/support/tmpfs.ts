import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  path: string;
  remove(): void;
}

/**
 * A private tmpfs of `bytes`, for tests that need a file system that really fills up (ENOSPC from the kernel, not
 * an injected error) or whose free space nobody else changes. Needs root (mount); undefined where mounting is not
 * allowed, and the caller says so.
 */
export function mountTmpfs(bytes: number): Tmpfs | undefined {
  const path = mkdtempSync(join(tmpdir(), 'mailroom-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', path], { stdio: 'ignore' });
  } catch {
    rmSync(path, { recursive: true, force: true });
    return undefined;
  }
  return {
    path,
    remove: () => {
      execFileSync('umount', ['-l', path], { stdio: 'ignore' });
      rmSync(path, { recursive: true, force: true });
    },
  };
}

/** Whether this machine lets the tests mount a tmpfs (root); checked once. */
export const canMountTmpfs = (() => {
  const t = mountTmpfs(64 * 1024);
  t?.remove();
  return t !== undefined;
})();
