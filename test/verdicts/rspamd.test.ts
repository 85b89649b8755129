/**
 * rspamd's HTTP protocol (/checkv2) against a real rspamd started by the test: GTUBE is spam (FAIL), plain mail is
 * not (PASS), a stopped rspamd is PROCESSING_FAILED; and the answers rspamd gives map to SES's verdicts as
 * docs/ses-format.md#verdicts says.
 */
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanVerdict } from '../../shared/ses/verdicts.js';
import { parseRspamdReply, Rspamd } from '../../gateway/verdicts/spam.js';
import { tempDir } from '../support/files.js';
import { startRspamd, type Scanner } from './support.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
let rspamd: Scanner;

beforeAll(async () => {
  dir = await tempDir('mailroom-rspamd-');
  rspamd = await startRspamd(dir.path);
}, 150_000);

afterAll(async () => {
  await rspamd?.stop();
  await dir?.remove();
});

const input = (m: Buffer) => ({ size: m.length, open: () => Readable.from([m]) });
const context = { messageId: 'test', mailFrom: 'a@sender.test', helo: 'mail.sender.test', clientIp: '127.0.0.1', recipients: ['support@example.com'], byHost: 'mx.gateway.test' };
const message = (body: string) => Buffer.from(`From: <a@sender.test>\r\nTo: <support@example.com>\r\nSubject: hello\r\nDate: Fri, 02 Jan 2026 03:04:05 +0000\r\nMessage-ID: <1@sender.test>\r\n\r\n${body}\r\n`);

describe('rspamd', () => {
  it('GTUBE: found (FAIL); plain mail: clean (PASS)', async () => {
    const scanner = new Rspamd({ endpoint: rspamd.endpoint, timeoutMs: 20_000, maxBytes: 1024 * 1024 });
    const gtube = await scanner.scan(input(message('XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X')), context);
    expect(gtube.outcome).toBe('found');
    expect(scanVerdict(gtube.outcome)).toBe('FAIL');
    const plain = await scanner.scan(input(message('See you at lunch tomorrow.')), context);
    expect(plain.outcome).toBe('clean');
    expect(scanVerdict(plain.outcome)).toBe('PASS');
  });

  it('over maxBytes: not sent (GRAY); nothing listening: PROCESSING_FAILED', async () => {
    const small = new Rspamd({ endpoint: rspamd.endpoint, timeoutMs: 20_000, maxBytes: 10 });
    expect((await small.scan(input(message('x')), context)).outcome).toBe('not-scanned');
    const gone = new Rspamd({ endpoint: '127.0.0.1:9', timeoutMs: 2_000, maxBytes: 1024 * 1024 });
    const r = await gone.scan(input(message('x')), context);
    expect(r.outcome).toBe('failed');
    expect(scanVerdict(r.outcome)).toBe('PROCESSING_FAILED');
  });

  it("maps each of rspamd's actions", () => {
    const reply = (action: string, extra = '') => `{"action":"${action}","score":1,"required_score":15${extra}}`;
    expect(parseRspamdReply(reply('no action')).outcome).toBe('clean');
    for (const a of ['reject', 'add header', 'rewrite subject']) expect(parseRspamdReply(reply(a)).outcome).toBe('found');
    for (const a of ['greylist', 'soft reject']) expect(parseRspamdReply(reply(a)).outcome).toBe('uncertain');
    expect(parseRspamdReply(reply('no action', ',"is_skipped":true')).outcome).toBe('not-scanned');
    // What rspamd answers for GTUBE: its checks stopped early, the reject stands.
    expect(parseRspamdReply(reply('reject', ',"is_skipped":true')).outcome).toBe('found');
    expect(parseRspamdReply('<html>').outcome).toBe('failed');
    expect(parseRspamdReply(reply('fly away')).outcome).toBe('failed');
  });
});
