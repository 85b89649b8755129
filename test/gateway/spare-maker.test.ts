/** The thread that creates spare spool files hands their descriptors to the main thread for good. */
import { closeSync, fstatSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SpareMaker } from '../../gateway/spool/spare-maker.js';
import { tempDir } from '../support/files.js';

let dir: { path: string; remove: () => Promise<void> };
beforeAll(async () => {
  dir = await tempDir('mailroom-spare-maker-');
});
afterAll(() => dir?.remove());

it("a descriptor number it handed over and the main thread reused stays open when the thread stops (the main thread's, not the thread's, to close)", async () => {
  const maker = new SpareMaker();
  const made = await maker.make([join(dir.path, 'a'), join(dir.path, 'b')]);
  expect(made.error).toBeUndefined();
  expect(made.fds).toHaveLength(2);
  for (const fd of made.fds) closeSync(fd);
  // The lowest free numbers come back: the main thread now holds the numbers the thread created.
  writeFileSync(join(dir.path, 'other'), 'kept');
  const mine = [openSync(join(dir.path, 'other'), 'r'), openSync(join(dir.path, 'other'), 'r')];
  expect(mine.some((fd) => made.fds.includes(fd))).toBe(true);
  await maker.close();
  for (const fd of mine) {
    expect(fstatSync(fd).size).toBe(4);
    closeSync(fd);
  }
});
