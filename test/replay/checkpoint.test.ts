/**
 * The replay checkpoint on its own: what one run records the next one knows, a file cut short by a crash is mended
 * before anything is appended to it, lines that do not read are counted and ignored, and close waits for the lines.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint, objectTag } from '../../gateway/replay/checkpoint.js';
import { tempDir } from '../support/files.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  dir = await tempDir('mailroom-checkpoint-');
});
afterAll(async () => {
  await dir?.remove();
});

const entry = (i: number, bucket = 'mail') => ({ messageId: `m${i}`, rule: 'inbox', bucket, key: `inbox/m${i}` });

describe('replay checkpoint', () => {
  it('knows, when opened again, every object recorded before; not the ones recorded in its own run', async () => {
    const path = join(dir.path, 'a.jsonl');
    const first = await Checkpoint.open(path);
    expect(first).toMatchObject({ known: 0, begun: 0, unreadable: 0 });
    // Recorded from many accepts at once: they go out in rounds, and each caller hears when its line is on disk.
    await Promise.all(Array.from({ length: 50 }, (_, i) => first.checkpoint.record([entry(i)])));
    await first.checkpoint.record([entry(50, 'other'), entry(51, 'other')]);
    expect(first.checkpoint.has(objectTag('mail', 'inbox/m0'))).toBe(false);
    await first.checkpoint.close();

    const second = await Checkpoint.open(path);
    expect(second).toMatchObject({ known: 52, begun: 0, unreadable: 0 });
    expect(second.checkpoint.has(objectTag('mail', 'inbox/m49'))).toBe(true);
    expect(second.checkpoint.has(objectTag('other', 'inbox/m50'))).toBe(true);
    // The same key in another bucket is another object.
    expect(second.checkpoint.has(objectTag('other', 'inbox/m1'))).toBe(false);
    await second.checkpoint.close();
    const lines = (await readFile(path, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(52);
    expect(JSON.parse(lines[0]!)).toEqual({ state: 'accepted', ...entry(0) });
  });

  it('an accept begun and not recorded (a crash between the two, a refusal) is told apart from one recorded', async () => {
    const path = join(dir.path, 'begun.jsonl');
    const { checkpoint } = await Checkpoint.open(path);
    await checkpoint.begin([entry(1)]);
    await checkpoint.begin([entry(2), entry(2, 'other')]);
    await checkpoint.record([entry(1)]);
    await checkpoint.close();
    const again = await Checkpoint.open(path);
    expect(again).toMatchObject({ known: 1, begun: 2 });
    expect(again.checkpoint.has(objectTag('mail', 'inbox/m1'))).toBe(true);
    expect(again.checkpoint.wasBegun(objectTag('mail', 'inbox/m1'))).toBe(false);
    expect(again.checkpoint.wasBegun(objectTag('other', 'inbox/m2'))).toBe(true);
    expect(again.checkpoint.has(objectTag('other', 'inbox/m2'))).toBe(false);
    await again.checkpoint.close();
  });

  it('a file cut short mid-line is cut back to its last whole line before a line is appended; a line that does not read is ignored', async () => {
    const path = join(dir.path, 'b.jsonl');
    const whole = `${JSON.stringify(entry(1))}\nnot json\n${JSON.stringify({ messageId: 'x' })}\n`;
    await writeFile(path, `${whole}{"messageId":"m2","rule":"inbox","buck`);
    const opened = await Checkpoint.open(path);
    // A line without a state counts as accepted.
    expect(opened).toMatchObject({ known: 1, unreadable: 3 });
    expect(await readFile(path, 'utf8')).toBe(whole);
    await opened.checkpoint.record([entry(3)]);
    await opened.checkpoint.close();
    const again = await Checkpoint.open(path);
    expect(again).toMatchObject({ known: 2, unreadable: 2 });
    expect(again.checkpoint.has(objectTag('mail', 'inbox/m3'))).toBe(true);
    await again.checkpoint.close();
  });

  it('close waits for lines recorded and not yet written', async () => {
    const path = join(dir.path, 'c.jsonl');
    const { checkpoint } = await Checkpoint.open(path);
    for (let i = 0; i < 200; i++) void checkpoint.record([entry(i)]);
    await checkpoint.close();
    expect((await readFile(path, 'utf8')).trim().split('\n')).toHaveLength(200);
  });
});
