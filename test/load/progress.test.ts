/** The live line: rewritten in place on a terminal, plain lines elsewhere; messages between lines stay readable. */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Progress } from '../../load/progress.js';
import { Recorder } from '../../load/recorder.js';

function sink(isTTY: boolean) {
  const writes: string[] = [];
  const out = Object.assign(new Writable({ write: (c: Buffer, _e, cb) => (writes.push(c.toString()), cb()) }), { isTTY, columns: 60 });
  return { out, writes };
}

describe('progress', () => {
  it('on a terminal: one line rewritten every second, cut to the width, with sent, accepted, deliveries, p50/p99 and errors', async () => {
    const recorder = new Recorder();
    for (let i = 0; i < 7; i++) recorder.count('sent');
    for (let i = 0; i < 5; i++) recorder.count('accepted');
    recorder.latencyUs('accept', 2_500);
    recorder.error({ class: 'smtp-4xx', code: '451 4.3.0', stage: 'DATA', message: '451 4.3.0 later' });
    const { out, writes } = sink(true);
    const p = new Progress(out, { recorder, acceptedLabel: 'accepted', deliveries: () => ({ delivered: 3, expected: 5 }) });
    expect(p.line()).toMatch(/^ {3}0s sending {2}sent 7 {2}accepted 5 {2}delivered 3\/5 {2}0\/s {2}p50 – p99 – {2}errors 1$/);
    p.start();
    await new Promise((r) => setTimeout(r, 2_200));
    p.say('a note');
    p.stop();
    const lines = writes.filter((w) => w.startsWith('\r\x1b[2K') && w.length > 4);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const l of lines) expect(l.length - '\r\x1b[2K'.length).toBeLessThanOrEqual(59);
    // After its first second closed, the line carries that second's accept percentiles.
    expect(p.line()).toMatch(/p50 2\.50 ms p99 2\.50 ms/);
    expect(writes.join('')).toContain('\r\x1b[2Ka note\n');
  });

  it('elsewhere (a CI log): no escape codes, a plain line every 5 s', async () => {
    const recorder = new Recorder();
    const { out, writes } = sink(false);
    const p = new Progress(out, { recorder, acceptedLabel: 'uploaded', deliveries: () => undefined });
    p.start();
    await new Promise((r) => setTimeout(r, 1_300));
    p.stop();
    expect(writes).toEqual([]);
    expect(p.line()).toMatch(/sent 0 {2}uploaded 0 {2}0\/s/);
  });
});
