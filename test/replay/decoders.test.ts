/** The byte-level stages of replay against plain line-by-line reference readings, on every way of cutting the input. */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CrlfNormalizer } from '../../gateway/replay/crlf.js';
import { MboxDecoder, type MboxVariant } from '../../gateway/replay/mbox-decoder.js';
import { parseDateHeader, parseFromLineDate } from '../../gateway/replay/dates.js';

/** Cuts `data` at the given offsets. */
function pieces(data: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    out.push(data.subarray(from, c));
    from = c;
  }
  out.push(data.subarray(from));
  return out;
}

function randomCuts(length: number, count: number): number[] {
  return Array.from({ length: count }, () => Math.floor(Math.random() * (length + 1)));
}

/** The reference mbox reading, one whole line at a time. */
function referenceMbox(text: string, variant: MboxVariant): { messages: string[]; separators: string[] } {
  const lines = text.split(/(?<=\n)/);
  const messages: string[] = [];
  const separators: string[] = [];
  let current: string | undefined;
  for (const line of lines) {
    if (line.startsWith('From ')) {
      if (current !== undefined) messages.push(current);
      separators.push(line.replace(/\r?\n$/, ''));
      current = '';
      continue;
    }
    const m = /^(>+)From /.exec(line);
    let out = line;
    if (m && (variant === 'mboxrd' || m[1]!.length === 1)) out = line.slice(1);
    current = (current ?? '') + out;
  }
  if (current !== undefined) messages.push(current);
  return { messages, separators };
}

function decode(chunks: Buffer[], variant: MboxVariant) {
  const messages: string[] = [];
  const separators: Array<{ text: string; offset: number; line: number; end: number | undefined }> = [];
  let current: Buffer[] | undefined;
  const d = new MboxDecoder({
    variant,
    separators: true,
    sink: {
      content: (b) => current?.push(Buffer.from(b)),
      separator: (text, offset, line, end) => {
        if (current) messages.push(Buffer.concat(current).toString('latin1'));
        current = [];
        separators.push({ text: text.toString('latin1'), offset, line, end });
      },
    },
  });
  for (const c of chunks) d.write(c);
  d.end();
  if (current) messages.push(Buffer.concat(current).toString('latin1'));
  return { messages, separators, ambiguous: d.ambiguousLines };
}

const LINES = ['From x', 'From ', 'From:', 'Fro', 'F', '>From ', '>>From ', '>>>From x', '>From', '> From ', '>', '>>', 'hello', '', 'Frommage', '>Fro', 'From\r', '\r'];

function randomMbox(messages: number): string {
  let text = '';
  for (let m = 0; m < messages; m++) {
    text += `From sender${m}@example.com Thu Jan  1 00:00:0${m % 10} 2015\n`;
    const n = Math.floor(Math.random() * 12);
    for (let i = 0; i < n; i++) {
      let line = LINES[Math.floor(Math.random() * LINES.length)]!;
      // Quoted as the writer would: no line of a message may begin with "From ".
      if (line.startsWith('From ')) line = `>${line}`;
      text += `${line}${Math.random() < 0.2 ? '\r\n' : '\n'}`;
    }
    text += '\n';
  }
  return text;
}

describe('MboxDecoder', () => {
  for (const variant of ['mboxrd', 'mboxo'] as const) {
    it(`finds every separator and undoes ${variant} quoting however the input is cut`, () => {
      for (let round = 0; round < 300; round++) {
        const text = randomMbox(1 + (round % 5));
        const data = Buffer.from(text, 'latin1');
        const ref = referenceMbox(text, variant);
        const cuts = round % 3 === 0 ? Array.from({ length: data.length }, (_, i) => i) : randomCuts(data.length, round % 20);
        const got = decode(pieces(data, cuts), variant);
        expect(got.messages).toEqual(ref.messages);
        expect(got.separators.map((s) => s.text)).toEqual(ref.separators);
        for (const s of got.separators) {
          expect(text.slice(s.offset, s.offset + 5)).toBe('From ');
          expect(text.slice(0, s.offset).split('\n').length).toBe(s.line);
          expect(text[s.end! - 1]).toBe('\n');
        }
      }
    });
  }

  it('counts the lines where mboxo and mboxrd disagree', () => {
    const text = 'From a Thu Jan  1 00:00:00 2015\n>From one\n>>From two\n>>>From three\n\n';
    expect(decode([Buffer.from(text)], 'mboxrd')).toMatchObject({ messages: ['From one\n>From two\n>>From three\n\n'], ambiguous: 2 });
    expect(decode([Buffer.from(text)], 'mboxo')).toMatchObject({ messages: ['From one\n>>From two\n>>>From three\n\n'], ambiguous: 2 });
  });

  it('reports a From line the file ends in as unfinished, and keeps a prefix the file ends in', () => {
    const cut = decode([Buffer.from('From a Thu Jan  1 00:00:00 2015\nx\n\nFrom b Thu')], 'mboxrd');
    expect(cut.separators.at(-1)).toMatchObject({ text: 'From b Thu', end: undefined });
    expect(decode([Buffer.from('From a\n>>Fro')], 'mboxrd').messages).toEqual(['>>Fro']);
  });

  it('keeps only the first 4 KiB of an over-long From line and reads past the rest', () => {
    const long = `From a ${'x'.repeat(10_000)}\nbody\n\n`;
    const got = decode(pieces(Buffer.from(long), [100, 5000]), 'mboxrd');
    expect(got.separators[0]!.text).toHaveLength(4096);
    expect(got.messages).toEqual(['body\n\n']);
  });

  it('reads one message range (no separators) the same way', () => {
    const out: Buffer[] = [];
    const d = new MboxDecoder({ variant: 'mboxrd', separators: false, sink: { content: (b) => out.push(Buffer.from(b)), separator: () => {} } });
    for (const c of pieces(Buffer.from('Subject: x\n\n>From a\nFrom b\n'), [3, 13, 14, 15])) d.write(c);
    d.end();
    expect(Buffer.concat(out).toString()).toBe('Subject: x\n\nFrom a\nFrom b\n');
  });
});

describe('CrlfNormalizer', () => {
  const reference = (s: Buffer) => {
    let t = s.toString('latin1').replace(/\r?\n/g, '\r\n');
    if (t.length && !t.endsWith('\n')) t += t.endsWith('\r') ? '\n' : '\r\n';
    return t;
  };
  it('widens bare LF, keeps CRLF and lone CR, ends the last line, however the input is cut', () => {
    for (let round = 0; round < 500; round++) {
      const alphabet = Buffer.from('ab\r\n\n\r');
      const data = Buffer.from(Array.from({ length: Math.floor(Math.random() * 60) }, () => alphabet[Math.floor(Math.random() * alphabet.length)]!));
      const c = new CrlfNormalizer();
      const out = Buffer.concat([...pieces(data, randomCuts(data.length, round % 10)).map((p) => Buffer.from(c.write(p))), c.end()]);
      expect(out.toString('latin1')).toBe(reference(data));
    }
  });
  it('passes a CRLF chunk through without a copy', () => {
    const chunk = Buffer.from('a\r\nb\r\n');
    expect(new CrlfNormalizer().write(chunk)).toBe(chunk);
    expect(new CrlfNormalizer().end()).toHaveLength(0);
  });
  it('handles binary chunks of any size', () => {
    const data = randomBytes(1 << 20);
    const c = new CrlfNormalizer();
    const out = Buffer.concat([...pieces(data, randomCuts(data.length, 50)).map((p) => Buffer.from(c.write(p))), c.end()]);
    expect(out.equals(Buffer.from(reference(data), 'latin1'))).toBe(true);
  });
});

describe('dates', () => {
  it('reads RFC 5322 Date headers, obsolete forms included', () => {
    const cases: Array<[string, string | undefined]> = [
      ['Fri, 14 Aug 2020 12:49:44 -0700 (PDT)', '2020-08-14T19:49:44.000Z'],
      ['14 Aug 2020 12:49 +0200', '2020-08-14T10:49:00.000Z'],
      ['Thu, 1 Jan 98 00:00:00 EST', '1998-01-01T05:00:00.000Z'],
      ['Thu, 1 Jan 03 00:00:00 GMT', '2003-01-01T00:00:00.000Z'],
      ['Tue,  3 (comment) Jan 2023 10:00:00 +0000', '2023-01-03T10:00:00.000Z'],
      ['Mon, 3 January 2022 10:00:00 +0000', '2022-01-03T10:00:00.000Z'],
      ['Fri, 31 Feb 2020 12:49:44 +0000', undefined],
      ['yesterday', undefined],
      ['Fri, 14 Aug 2020 25:49:44 +0000', undefined],
    ];
    for (const [text, iso] of cases) expect(parseDateHeader(text)?.toISOString(), text).toBe(iso);
  });
  it('reads mbox From line stamps in the variants writers use', () => {
    const cases: Array<[string, string | undefined]> = [
      ['Sun Dec  6 20:41:35 2026', '2026-12-06T20:41:35.000Z'],
      ['Sat Jan  3 01:05:34 1996', '1996-01-03T01:05:34.000Z'],
      ['Wed Feb 13 14:28:12 2019 +0100', '2019-02-13T13:28:12.000Z'],
      ['Thu Jun 11 10:03:28 +0000 2020', '2020-06-11T10:03:28.000Z'],
      ['Fri Jun 23 02:56 2000', '2000-06-23T02:56:00.000Z'],
      ['Fri Jun 23 02:56:55 CET DST 2000', '2000-06-23T02:56:55.000Z'],
      ['Fri Jun 23 02:56:55 00', '2000-06-23T02:56:55.000Z'],
      ['Fri Jun 23 02:56:55 2000 remote from host', '2000-06-23T02:56:55.000Z'],
      ['not a date', undefined],
    ];
    for (const [text, iso] of cases) expect(parseFromLineDate(text)?.toISOString(), text).toBe(iso);
  });
});
