/**
 * Every file source of `mailroom replay` against archives written by an independent writer (Python's mailbox
 * module): each message's DATA exactly as the source holds it, with CRLF line ends; where each message is; and each
 * kind of bad input reported with its location, the rest unaffected.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReplayProblem } from '../../gateway/replay/source.js';
import { openSource } from '../../gateway/replay/sources.js';
import { tempDir } from '../support/files.js';
import { readArg, sourceOptions, writeArchives, type Archives } from './helpers.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
let a: Archives;

beforeAll(async () => {
  dir = await tempDir('mailroom-replay-');
  a = await writeArchives(dir.path);
}, 120_000);

afterAll(async () => {
  await dir?.remove();
});

describe('mbox', () => {
  it('mboxrd: every message exactly, quoting undone, at its From line', async () => {
    const path = join(a.dir, a.manifest.mboxrd.path);
    const got = await readArg(path);
    expect(got.problems).toEqual([]);
    // The sender's own ">From " lines are ">>From " here: a line either reading would take, so the note counts them.
    expect(got.notes.map((n) => n.text)).toEqual([expect.stringMatching(/^3 line\(s\) .* read as mboxrd/)]);
    expect(got.messages.map((m) => m.location)).toEqual(a.manifest.mboxrd.messages.map((e) => `${path}:${e.line} (byte ${e.offset})`));
    for (const [i, e] of a.manifest.mboxrd.messages.entries()) {
      const m = got.messages[i]!;
      expect(m.data.equals(a.expected(e.name)), e.name).toBe(true);
      expect(m.prepared.dataLength).toBe(m.data.length);
    }
    const big = got.messages[a.manifest.mboxrd.messages.findIndex((e) => e.name === 'big')]!;
    expect(big.data.length).toBeGreaterThan(5 * 1024 * 1024);
  });

  it('mboxo (Python mailbox.mbox): every message as mboxo can give it back, with --mbox-format mboxo', async () => {
    const path = join(a.dir, a.manifest.mboxo.path);
    const got = await readArg(path, { mboxVariant: 'mboxo' });
    expect(got.problems).toEqual([]);
    expect(got.messages.map((m) => m.location)).toEqual(a.manifest.mboxo.messages.map((e) => `${path}:${e.line} (byte ${e.offset})`));
    for (const [i, e] of a.manifest.mboxo.messages.entries()) expect(got.messages[i]!.data.equals(a.expected(e.name, 'mboxo')), e.name).toBe(true);
    // The lines the two readings disagree on are counted in a note, so the operator learns the choice mattered.
    expect(got.notes.map((n) => n.text)).toEqual([expect.stringMatching(/^2 line\(s\) began with two or more ">" .* kept as mboxo writes them/)]);
  });

  it('mboxo read as mboxrd (the default) differs only on the lines the note counts, and says so', async () => {
    const got = await readArg(join(a.dir, a.manifest.mboxo.path));
    expect(got.notes.map((n) => n.text)).toEqual([expect.stringMatching(/^2 line\(s\) .* read as mboxrd .* --mbox-format mboxo/)]);
    const quoted = got.messages[a.manifest.mboxo.messages.findIndex((e) => e.name === 'quoted')]!.data.toString();
    expect(quoted).toContain('\r\n>From the sender, two >\r\n>>From three\r\n');
    for (const [i, e] of a.manifest.mboxo.messages.entries()) if (e.name !== 'quoted') expect(got.messages[i]!.data.equals(a.expected(e.name, 'mboxo')), e.name).toBe(true);
  });

  it('gives the From line sender and date, and the header fields, to the envelope', async () => {
    const got = await readArg(join(a.dir, a.manifest.mboxrd.path));
    const plain = got.messages[0]!.prepared;
    expect(plain.hints.fromLineSender).toBe('alice@sender.example');
    expect(plain.times[0]).toEqual({ at: new Date('2004-01-03T01:05:34Z'), from: 'mbox From line' });
    expect(plain.times[1]).toEqual({ at: new Date('2020-08-14T19:49:44Z'), from: 'Date header' });
    expect(plain.headers.find((h) => h.name === 'X-Original-To')?.value).toBe('support@example.com');
    const eightbit = got.messages[2]!.prepared;
    expect(eightbit.hints.fromLineSender).toBe('MAILER-DAEMON');
    expect(eightbit.headers.find((h) => h.name === 'To')?.value).toBe('Jörg <jörg@bücher.example>, "Doe, Jane" <jane@example.com>');
  });

  it('byte-identical messages keep separate identities; their content tags are equal', async () => {
    const got = await readArg(join(a.dir, a.manifest.mboxrd.path));
    const [t1, t2] = ['twin1', 'twin2'].map((n) => got.messages[a.manifest.mboxrd.messages.findIndex((e) => e.name === n)]!.prepared);
    expect(t1!.contentTag).toBe(t2!.contentTag);
    expect(t1!.identity).not.toBe(t2!.identity);
    // And the same on a second read.
    const again = await readArg(join(a.dir, a.manifest.mboxrd.path));
    expect(again.messages.map((m) => [m.prepared.identity, m.prepared.contentTag])).toEqual(got.messages.map((m) => [m.prepared.identity, m.prepared.contentTag]));
  });

  it('shares one descriptor for the messages\' second reads and closes it once every message is read or given up', async () => {
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    const bodies: Array<import('node:stream').Readable> = [];
    let n = 0;
    for await (const item of openSource(join(a.dir, a.manifest.mboxrd.path), sourceOptions())) {
      if (item instanceof ReplayProblem || !('prepare' in item)) continue;
      const m = await item.prepare();
      if (n++ % 3 === 2) m.discard();
      else bodies.push(m.body());
    }
    expect(fds()).toBe(before + 1); // the scan is done; bodies still to be read hold the file open
    for (const [i, b] of bodies.entries()) {
      if (i % 2) b.destroy(); // given up halfway: an in-flight read finishes before the file may close
      else for await (const _ of b as AsyncIterable<Buffer>) void _;
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(fds()).toBe(before);
  });

  it('a file cut in the middle of a line: its last message is reported where it starts, the others are whole', async () => {
    const path = join(a.dir, 'cut-midline.mbox');
    const got = await readArg(path, { mboxVariant: 'mboxo' });
    expect(got.messages.map((m) => m.data.equals(a.expected(a.manifest.mboxo.messages[got.messages.indexOf(m)]!.name, 'mboxo')))).toEqual(a.manifest.truncated.before.map(() => true));
    expect(got.problems).toHaveLength(1);
    expect(got.problems[0]).toMatchObject({ kind: 'malformed', location: `${path}:${a.manifest.truncated.line} (byte ${a.manifest.truncated.offset})` });
    expect(got.problems[0]!.reason).toMatch(/ends in the middle of a line/);
  });

  it('a file cut after a line: the last message lacks the closing empty line and is reported', async () => {
    const path = join(a.dir, 'cut-at-line.mbox');
    const got = await readArg(path);
    expect(got.messages).toHaveLength(a.manifest.truncated.before.length);
    expect(got.problems.map((p) => [p.kind, p.location])).toEqual([['malformed', `${path}:${a.manifest.truncated.line} (byte ${a.manifest.truncated.offset})`]]);
    expect(got.problems[0]!.reason).toMatch(/without the empty line that closes every message/);
  });

  it('a file that does not start with a From line is one message, not an mbox; a gzip file is refused with the fix', async () => {
    const gz = join(a.dir, 'archive.mbox.gz');
    writeFileSync(gz, gzipSync(readFileSync(join(a.dir, a.manifest.mboxrd.path))));
    const got = await readArg(gz);
    expect(got.problems.map((p) => [p.kind, p.location, p.reason])).toEqual([['malformed', gz, expect.stringMatching(/gzip-compressed: decompress it first/)]]);
  });
});

describe('Maildir', () => {
  it('new/ and cur/ of the Maildir and its Maildir++ folders, exact; tmp/ and dotfiles skipped; a picture reported', async () => {
    const root = join(a.dir, a.manifest.maildir.path);
    const got = await readArg(root);
    const byPath = new Map(got.messages.map((m) => [m.location, m]));
    expect(new Set(byPath.keys())).toEqual(new Set(a.manifest.maildir.messages.map((e) => join(a.dir, e.path))));
    for (const e of a.manifest.maildir.messages) expect(byPath.get(join(a.dir, e.path))!.data.equals(a.expected(e.name)), e.name).toBe(true);
    expect(got.problems.map((p) => [p.kind, p.location])).toEqual(a.manifest.maildir.notMail.map((p) => ['malformed', join(a.dir, p)]));
    expect(got.problems[0]!.reason).toMatch(/is not a mail message: its first line is not a header field/);
    expect([...byPath.keys()].some((p) => p.includes('/Maildir/tmp/') || p.endsWith('.hidden'))).toBe(false);
    // Maildir's time is the file's: the delivery time.
    const plain = a.manifest.maildir.messages.find((e) => e.name === 'plain')!;
    expect(byPath.get(join(a.dir, plain.path))!.prepared.times[0]).toEqual({ at: statSync(join(a.dir, plain.path)).mtime, from: 'file mtime' });
  });

  it('a message read between two runs (new/ → cur/ with flags) keeps its identity', async () => {
    const copy = join(a.dir, 'Maildir-copy');
    for (const sub of ['new', 'cur', 'tmp']) mkdirSync(join(copy, sub), { recursive: true });
    const plain = a.manifest.maildir.messages.find((e) => e.name === 'plain')!;
    const name = plain.path.split('/').pop()!;
    copyFileSync(join(a.dir, plain.path), join(copy, 'new', name));
    const before = await readArg(copy);
    renameSync(join(copy, 'new', name), join(copy, 'cur', `${name}:2,S`));
    const after = await readArg(copy);
    expect(after.messages[0]!.location).toMatch(/\/cur\/.*:2,S$/);
    expect(after.messages[0]!.prepared.identity).toBe(before.messages[0]!.prepared.identity);
    expect(after.messages[0]!.prepared.contentTag).toBe(before.messages[0]!.prepared.contentTag);
  });
});

describe('.eml files', () => {
  it('a directory, recursively: only .eml (any case), exact, the rest counted in a note', async () => {
    const root = join(a.dir, a.manifest.emldir.path);
    const got = await readArg(root);
    expect(got.problems).toEqual([]);
    expect(got.messages.map((m) => m.location)).toEqual(a.manifest.emldir.messages.map((e) => join(a.dir, e.path)));
    for (const [i, e] of a.manifest.emldir.messages.entries()) expect(got.messages[i]!.data.equals(a.expected(e.name)), e.name).toBe(true);
    expect(got.notes.map((n) => n.text)).toEqual(['1 entry without the .eml extension left alone']);
    // An export's file time is the export's: the Date header comes first.
    expect(got.messages[0]!.prepared.times.map((t) => t.from)).toEqual(['Date header', 'file mtime']);
  });

  it('one file', async () => {
    const path = join(a.dir, a.manifest.emldir.messages[1]!.path);
    const got = await readArg(path);
    expect(got.messages).toHaveLength(1);
    expect(got.messages[0]!.data.equals(a.expected('multipart'))).toBe(true);
  });

  it('a directory with no .eml in it, and a path that does not exist, are reported', async () => {
    const empty = join(a.dir, 'Maildir', 'tmp');
    expect((await readArg(empty)).problems.map((p) => [p.kind, p.location, p.reason])).toEqual([['failed', empty, expect.stringMatching(/holds no \.eml file and is not a Maildir/)]]);
    const missing = join(a.dir, 'no-such-archive.mbox');
    expect((await readArg(missing)).problems.map((p) => [p.kind, p.location, p.reason])).toEqual([['failed', missing, expect.stringMatching(/^does not exist: check the path/)]]);
  });

  it('a file changed after it was measured fails its body stream, and nothing else', async () => {
    const path = join(a.dir, 'changing.eml');
    writeFileSync(path, 'From: a@example.com\nTo: b@example.com\n\nfirst\n');
    for await (const item of openSource(path, sourceOptions())) {
      if (item instanceof ReplayProblem || !('prepare' in item)) throw new Error('expected a message');
      const m = await item.prepare();
      writeFileSync(path, 'From: a@example.com\nTo: b@example.com\n\nsecond\n');
      const err = await new Promise<unknown>((resolve) => {
        const body = m.body();
        body.on('error', resolve);
        body.on('end', () => resolve(undefined));
        body.resume();
      });
      expect(err).toBeInstanceOf(ReplayProblem);
      expect((err as ReplayProblem).reason).toMatch(/changed while it was being replayed/);
    }
  });
});

describe('standard input', () => {
  it('one message, saved privately and removed once read; its identity is its content', async () => {
    const before = new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('mailroom-replay-')));
    const input = () => Readable.from([readFileSync(join(a.dir, a.manifest.emldir.messages[0]!.path))]);
    const got = await readArg('-', { stdin: input() });
    expect(got.messages).toHaveLength(1);
    expect(got.messages[0]!.location).toBe('standard input');
    expect(got.messages[0]!.data.equals(a.expected('plain'))).toBe(true);
    expect(got.messages[0]!.prepared.identity).toBe('stdin');
    expect(new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('mailroom-replay-')))).toEqual(before);
  });

  it('more than the limit is reported without being saved whole', async () => {
    const big = Readable.from((function* () {
      for (let i = 0; i < 64; i++) yield Buffer.alloc(64 * 1024, 0x61);
    })());
    const got = await readArg('-', { stdin: big, maxBytes: 1024 * 1024 });
    expect(got.problems.map((p) => [p.kind, p.location, p.reason])).toEqual([['malformed', 'standard input', expect.stringMatching(/^is at least \d+ bytes, over the limit of 1048576 bytes/)]]);
  });
});
