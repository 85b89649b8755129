/**
 * `mailroom replay` as an operator runs it: flags and their errors, the dry run's listing and JSON, exit codes,
 * standard input, and the progress display on a pseudo-terminal (util-linux `script`) and on a plain stream.
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newCounters } from '../../gateway/replay/driver.js';
import { ProgressDisplay } from '../../gateway/replay/progress.js';
import { replayFlags } from '../../cli/commands/replay.js';
import { UsageError } from '../../cli/command/command.js';
import { isMessageId } from '../../shared/ses/message-id.js';
import { tempDir } from '../support/files.js';
import { writeArchives, type Archives } from './helpers.js';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '..', '..', 'bin', 'mailroom.js');

let dir: Awaited<ReturnType<typeof tempDir>>;
let a: Archives;
let config: string;

beforeAll(async () => {
  dir = await tempDir('mailroom-replay-');
  a = await writeArchives(dir.path);
  config = join(dir.path, 'mailroom.json');
  writeFileSync(
    config,
    JSON.stringify({
      region: 'us-east-1',
      accountId: '123456789012',
      ruleSetName: 'replay-test',
      rules: [
        { name: 'support', recipients: ['support@example.com'], s3Action: { bucketName: 'mail', objectKeyPrefix: 'support' } },
        { name: 'inbox', recipients: ['example.com'], scanEnabled: true, s3Action: { bucketName: 'mail', objectKeyPrefix: 'inbox/' } },
      ],
    }),
  );
}, 120_000);

afterAll(async () => {
  await dir?.remove();
});

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], input?: Buffer): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn('node', [CLI, 'replay', ...args], { env: { ...process.env, MAILROOM_CONFIG: '' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input);
  });
}

describe('arguments', () => {
  it('each bad flag is refused naming the flag and the fix', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ timestamp: 'then' }, /^--timestamp "then" is neither source nor now: write --timestamp source/],
      [{ 'mbox-format': 'mboxcl' }, /^--mbox-format "mboxcl" is neither mboxrd nor mboxo/],
      [{ rate: '0' }, /^--rate "0" is not a number of messages a second greater than 0/],
      [{ rate: '1e3' }, /^--rate "1e3" is not a number/],
      [{ concurrency: 'many' }, /^--concurrency "many" is not a whole number from 1 to 1000/],
      [{ concurrency: '0' }, /^--concurrency "0" is not a whole number from 1 to 1000/],
      [{ from: 'nobody' }, /^--from "nobody" is not an address: write it as local@domain, or --from '<>'/],
      [{ to: ['a@example.com', 'x y'] }, /^--to "x y" is not an address/],
      [{ rule: ' ' }, /^--rule is empty/],
    ];
    for (const [values, message] of cases) {
      const err = (() => {
        try {
          replayFlags(values as Parameters<typeof replayFlags>[0]);
        } catch (e) {
          return e;
        }
      })();
      expect(err, JSON.stringify(values)).toBeInstanceOf(UsageError);
      expect((err as Error).message).toMatch(message);
    }
    expect(replayFlags({ rate: '2.5', concurrency: '16', from: '<>', to: ['Info@пример.рф'], 'mbox-format': 'MBOXO', timestamp: 'now' })).toEqual({
      dryRun: false,
      json: false,
      deliver: false,
      checkBucket: true,
      timestamp: 'now',
      mboxVariant: 'mboxo',
      rate: 2.5,
      concurrency: 16,
      from: '',
      to: ['Info@xn--e1afmkfd.xn--p1ai'],
    });
  });

  it('the command says what is wrong with its arguments and its config (exit 2)', async () => {
    const mbox = join(a.dir, a.manifest.mboxrd.path);
    const cases: Array<[string[], RegExp]> = [
      [['--config', config, '--dry-run'], /name at least one source/],
      [[mbox, '--config', config, '--rule', 'sales'], /--rule "sales" names no receipt rule of .*mailroom\.json: use one of "support", "inbox"/],
      [[mbox, '--config', config, '--timestamp', 'then'], /--timestamp "then" is neither source nor now/],
      [[mbox], /--config: no config file given\n\s+fix: pass --config <file>/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  });
});

describe('--dry-run', () => {
  it("lists each message's rule, bucket and key; the summary goes to stderr; exit 0 when all would be stored", async () => {
    const mbox = join(a.dir, a.manifest.mboxrd.path);
    const r = await cli([mbox, '--config', config, '--dry-run']);
    expect(r.stderr).not.toMatch(/malformed: |unmatched: |failed: /);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    const plain = a.manifest.mboxrd.messages[0]!;
    const first = lines.filter((l) => l.startsWith(`${mbox}:${plain.line} (byte ${plain.offset})  `));
    // support@ matches both rules: two objects under one message id.
    expect(first.map((l) => l.split('  ')[1])).toEqual(['support', 'inbox']);
    const ids = first.map((l) => /^s3:\/\/mail\/(?:support\/|inbox\/)([0-9a-v]{40})$/.exec(l.split('  ')[2]!)![1]!);
    expect(ids[0]).toBe(ids[1]);
    expect(isMessageId(ids[0]!)).toBe(true);
    expect(r.stderr).toMatch(/mailroom replay \(dry run: nothing stored\): 8 messages, [\d.]+ MB in \d+s\n\s+would be stored\s+8\n\s+already there\s+0\n\s+unmatched\s+0\n\s+malformed\s+0\n\s+failed\s+0\n/);
    // The same ids on a second run.
    const again = await cli([mbox, '--config', config, '--dry-run']);
    expect(again.stdout.split('\n').sort()).toEqual(r.stdout.split('\n').sort());
  });

  it('--json: one line per message, problem and note, the summary last; exit 1 when a message was not stored', async () => {
    const r = await cli([join(a.dir, a.manifest.maildir.path), join(a.dir, 'cut-at-line.mbox'), join(a.dir, 'nowhere'), '--config', config, '--dry-run', '--json', '--timestamp', 'now']);
    expect(r.code).toBe(1);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.at(-1)).toMatchObject({ type: 'summary', dryRun: true, stored: 6 + a.manifest.truncated.before.length, malformed: 2, failed: 1, unmatched: 0 });
    const problems = events.filter((e) => e.type === 'problem');
    expect(problems.map((p) => [p.kind, p.location])).toEqual(
      expect.arrayContaining([
        ['malformed', join(a.dir, a.manifest.maildir.notMail[0]!)],
        ['malformed', `${join(a.dir, 'cut-at-line.mbox')}:${a.manifest.truncated.line} (byte ${a.manifest.truncated.offset})`],
        ['failed', join(a.dir, 'nowhere')],
      ]),
    );
    const plain = events.find((e) => e.type === 'message' && e.location === join(a.dir, a.manifest.maildir.messages[0]!.path))!;
    expect(plain).toMatchObject({
      mailFrom: 'alice@sender.example',
      mailFromSource: 'Return-Path',
      recipients: ['support@example.com'],
      recipientsSource: 'X-Original-To',
      timestamp: null,
      timestampSource: 'now (--timestamp now)',
      dataLength: a.manifest.messages.plain!.bytes,
      rules: [
        { rule: 'support', bucket: 'mail', key: `support/${String(plain.messageId)}` },
        { rule: 'inbox', bucket: 'mail', key: `inbox/${String(plain.messageId)}` },
      ],
    });
    // Problems are on stderr too, for the operator watching.
    expect(r.stderr).toContain(`mailroom replay: failed: ${join(a.dir, 'nowhere')} does not exist`);
  });

  it('--rule, --from and --to on a message from standard input', async () => {
    const r = await cli(['-', '--config', config, '--dry-run', '--json', '--rule', 'support', '--from', '<>', '--to', 'Someone@Example.COM'], readFileSync(join(a.dir, 'expected', 'eightbit.eml')));
    expect(r.code).toBe(0);
    const message = JSON.parse(r.stdout.split('\n')[0]!) as Record<string, unknown>;
    expect(message).toMatchObject({ location: 'standard input', mailFrom: '', recipients: ['Someone@Example.COM'], rules: [{ rule: 'support', bucket: 'mail' }] });
  });
});

describe('progress', () => {
  it('on a pseudo-terminal: a bar redrawn in place with messages, MB, rate and ETA; problems above it; the summary after', async () => {
    const args = [join(a.dir, a.manifest.mboxrd.path), join(a.dir, a.manifest.maildir.path), '--config', config, '--dry-run', '--rate', '8'];
    const command = `stty cols 160; node ${CLI} replay ${args.map((x) => `'${x}'`).join(' ')} >/dev/null`;
    const { stdout: tty } = await run('script', ['-q', '-e', '-c', command, '/dev/null'], { timeout: 60_000 }).catch((e: { stdout: string }) => ({ stdout: e.stdout }));
    const frames = tty.split('\r\x1b[2K').filter((f) => f.startsWith('replay: '));
    expect(frames.length).toBeGreaterThan(5);
    const last = frames.filter((f) => f.includes('%')).at(-1)!;
    expect(last).toMatch(/^replay: \[=*>? *\] \d+%  \d+(\/\d+)? messages  [\d.]+\/[\d.]+ MB  [\d.]+ msg\/s  [\d.]+ MB\/s  ETA \S+/);
    // A problem line is printed on a cleared line, and the bar comes back after it.
    expect(tty).toMatch(/\r\x1b\[2Kmailroom replay: malformed: .*photo\.jpg is not a mail message[^\r\n]*\r?\n\r\x1b\[2Kreplay: /);
    expect(tty).toMatch(/mailroom replay \(dry run: nothing stored\): 15 messages/);
  }, 60_000);

  it('elsewhere: a plain line every few seconds, no control characters', async () => {
    const writes: string[] = [];
    const counters = newCounters();
    let clock = 0; // one second of replay per tick of the display
    const p = new ProgressDisplay({ write: (t: string) => writes.push(t), isTTY: false }, counters, { bytes: 10 * 1024 * 1024, messages: 100 }, { intervalMs: 30, now: () => clock });
    p.start();
    for (let i = 0; i < 5; i++) {
      counters.stored += 10;
      counters.bytes += 1024 * 1024;
      clock += 1000;
      await new Promise((r) => setTimeout(r, 40));
    }
    counters.malformed = 2;
    await new Promise((r) => setTimeout(r, 40));
    p.line('mailroom replay: malformed: x is cut short');
    p.stop();
    expect(writes.length).toBeGreaterThan(3);
    expect(writes.join('')).not.toMatch(/[\r\x1b]/);
    expect(writes.every((w) => w.endsWith('\n'))).toBe(true);
    // 10 messages and 1 MB a second: 5 MB to go is 5 s.
    expect(writes.filter((w) => w.startsWith('replay: ')).at(-1)).toMatch(/^replay: 50%  52\/100 messages  5\.0\/10\.0 MB  1[01] msg\/s  1\.0 MB\/s  ETA [56]s  2 not stored\n$/);
  });
});
