/** A spool directory that cannot be made: the error names the directory, what is in the way, the setting and the fix. */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/files.js';

describe('spool directory start-up errors', () => {
  it('name the spool directory, the setting and the fix, for what a recursive mkdir meets', async () => {
    const { explainSpoolError } = await import('../../cli/commands/gateway.js');
    const dir = await tempDir();
    try {
      await writeFile(join(dir.path, 'file'), '');
      await symlink(join(dir.path, 'no-such-mount'), join(dir.path, 'dangling'));
      for (const [inTheWay, what] of [['file', 'a file'], ['dangling', 'a symbolic link to nothing']] as const) {
        const spoolDir = join(dir.path, inTheWay, 'spool');
        const err = (await mkdir(join(spoolDir, 'messages'), { recursive: true }).catch((e: unknown) => e)) as NodeJS.ErrnoException;
        expect(err.code).toBe('ENOTDIR');
        expect(explainSpoolError(err, spoolDir)).toMatch(
          new RegExp(`^cannot make the spool directory ${spoolDir}: ${join(dir.path, inTheWay)} is ${what}.*\\(ENOTDIR\\): move it out of the way, or choose another directory with --spool-dir / MAILROOM_SPOOL_DIR \\(gateway\\.spoolDir\\)$`),
        );
      }
      const enoent = Object.assign(new Error('ENOENT'), { code: 'ENOENT', syscall: 'mkdir', path: join(dir.path, 'dangling', 'spool') });
      expect(explainSpoolError(enoent, join(dir.path, 'dangling', 'spool'))).toMatch(/dangling is a symbolic link to nothing .*\(ENOENT; a volume not mounted.*\): mount the volume or mend the path, or choose another directory with --spool-dir/);
      const erofs = Object.assign(new Error('EROFS'), { code: 'EROFS', syscall: 'mkdir', path: '/spool' });
      expect(explainSpoolError(erofs, '/spool')).toContain('read-only file system): mount its volume read-write, or choose another directory with --spool-dir');
      // Not the spool's: a certificate file nobody may read stays the error it is.
      expect(explainSpoolError(Object.assign(new Error('EACCES'), { code: 'EACCES', path: '/etc/tls/key.pem' }), '/var/spool/mailroom')).toBeUndefined();
    } finally {
      await dir.remove();
    }
  });
});
