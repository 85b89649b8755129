import { describe, expect, it } from 'vitest';
import {
  buildHeaderBlock,
  continuesHeaderBlock,
  formatReceivedDate,
  HeaderInjectionError,
  headerFieldProblem,
  MAX_DKIM_LINES,
  type HeaderBlockInput,
} from '../../shared/ses/header-block.js';
import { parseHeaderBlock } from '../../shared/notification/headers.js';

const MESSAGE_ID = '4f2f8gu2t8fkov1aidn6vb92k10gsrp1doa8de01';

/** A real 2020 SES stored object (docs/ses-format.md#header-block), minus the SES-signed headers. */
const base: HeaderBlockInput = {
  mailFrom: 'alice@sender.example',
  helo: 'mail-io1-f41.google.com',
  clientIp: '209.85.166.41',
  clientHostname: 'mail-io1-f41.google.com',
  byHost: 'inbound-smtp.us-east-1.amazonaws.com',
  messageId: MESSAGE_ID,
  recipients: ['inbox+xxxx@mail.example.com', 'other@mail.example.com'],
  receivedAt: new Date('2020-08-14T19:49:44.512Z'),
  scan: { spam: 'PASS', virus: 'PASS' },
  spf: { result: 'pass', domain: '_spf.google.com' },
  dkim: [{ result: 'pass', domain: 'gmail.com' }],
  dmarc: { result: 'pass', headerFrom: 'gmail.com' },
  authservId: 'amazonses.com',
};

const SPF =
  'pass (spfCheck: domain of _spf.google.com designates 209.85.166.41 as permitted sender) client-ip=209.85.166.41; envelope-from=alice@sender.example; helo=mail-io1-f41.google.com;';

describe('buildHeaderBlock', () => {
  it('reproduces the observed SES block byte for byte (CRLF, fold positions, field order)', () => {
    expect(buildHeaderBlock(base)).toBe(
      [
        'Return-Path: <alice@sender.example>',
        'Received: from mail-io1-f41.google.com (mail-io1-f41.google.com [209.85.166.41])',
        ` by inbound-smtp.us-east-1.amazonaws.com with SMTP id ${MESSAGE_ID}`,
        ' for inbox+xxxx@mail.example.com;',
        ' Fri, 14 Aug 2020 19:49:44 +0000 (UTC)',
        'X-SES-Spam-Verdict: PASS',
        'X-SES-Virus-Verdict: PASS',
        `Received-SPF: ${SPF}`,
        'Authentication-Results: amazonses.com;',
        ` spf=${SPF}`,
        ' dkim=pass header.i=@gmail.com;',
        ' dmarc=pass header.from=gmail.com;',
        '',
      ].join('\r\n'),
    );
  });

  it('uses CRLF only and ends with CRLF so the DATA can follow directly', () => {
    const block = buildHeaderBlock(base);
    expect(block.endsWith('\r\n')).toBe(true);
    expect(block.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    expect(block).not.toMatch(/X-SES-RECEIPT|X-SES-DKIM-SIGNATURE/);
  });

  it('formats the date as EEE, dd MMM yyyy HH:mm:ss in UTC with a zero-padded day', () => {
    expect(formatReceivedDate(new Date('2024-10-04T03:05:09.999Z'))).toBe('Fri, 04 Oct 2024 03:05:09 +0000 (UTC)');
    // 23:30 on the 31st in UTC-5 is already the next day in UTC.
    expect(formatReceivedDate(new Date('2023-12-31T23:30:00-05:00'))).toBe('Mon, 01 Jan 2024 04:30:00 +0000 (UTC)');
    expect(() => formatReceivedDate(new Date('nope'))).toThrow(RangeError);
  });

  it('omits the verdict headers when the rule is not scan-enabled', () => {
    const block = buildHeaderBlock({ ...base, scan: undefined });
    expect(block).not.toContain('X-SES-');
    expect(parseHeaderBlock(block).headers.map((h) => h.name)).toEqual(['Return-Path', 'Received', 'Received-SPF', 'Authentication-Results']);
  });

  it('writes only the authentication results that were computed', () => {
    const none = buildHeaderBlock({ ...base, spf: undefined, dkim: undefined, dmarc: undefined });
    expect(parseHeaderBlock(none).headers.map((h) => h.name)).toEqual(['Return-Path', 'Received', 'X-SES-Spam-Verdict', 'X-SES-Virus-Verdict']);

    const dkimOnly = buildHeaderBlock({ ...base, spf: undefined, dmarc: undefined });
    expect(dkimOnly).not.toContain('Received-SPF');
    expect(dkimOnly).toContain('Authentication-Results: amazonses.com;\r\n dkim=pass header.i=@gmail.com;\r\n');
  });

  it('writes one dkim line per signature, and dkim=none for a checked unsigned message', () => {
    const two = buildHeaderBlock({
      ...base,
      dkim: [
        { result: 'permerror', domain: 'febos-cl.20230601.gappssmtp.com' },
        { result: 'pass', domain: 'febos.cl' },
      ],
    });
    expect(two).toContain('\r\n dkim=permerror header.i=@febos-cl.20230601.gappssmtp.com;\r\n dkim=pass header.i=@febos.cl;\r\n dmarc=');
    expect(buildHeaderBlock({ ...base, dkim: [] })).toContain('\r\n dkim=none;\r\n');
  });

  it('words non-pass SPF results inside the spfCheck comment', () => {
    const block = buildHeaderBlock({ ...base, spf: { result: 'softfail', domain: 'sender.example' } });
    expect(block).toContain(
      'Received-SPF: softfail (spfCheck: domain of transitioning sender.example does not designate 209.85.166.41 as permitted sender) client-ip=209.85.166.41;',
    );
    expect(block).toContain(' spf=softfail (spfCheck: ');
  });

  it('writes unknown rDNS as "unknown", IPv6 as an address literal, and unmaps IPv4-mapped addresses', () => {
    const unknown = buildHeaderBlock({ ...base, clientHostname: undefined });
    expect(unknown).toContain('Received: from mail-io1-f41.google.com (unknown [209.85.166.41])\r\n');

    const v6 = buildHeaderBlock({ ...base, clientIp: '2001:db8::25', clientHostname: 'mx.sender.example' });
    expect(v6).toContain('Received: from mail-io1-f41.google.com (mx.sender.example [IPv6:2001:db8::25])\r\n');
    expect(v6).toContain('client-ip=2001:db8::25;');

    const mapped = buildHeaderBlock({ ...base, clientIp: '::ffff:209.85.166.41' });
    expect(mapped).toContain('[209.85.166.41])');
    expect(mapped).not.toContain('::ffff:');
    expect(() => buildHeaderBlock({ ...base, clientIp: 'localhost' })).toThrow(RangeError);
  });

  it('puts the first matched recipient in `for`, bare', () => {
    expect(buildHeaderBlock(base)).toContain('\r\n for inbox+xxxx@mail.example.com;\r\n');
    expect(() => buildHeaderBlock({ ...base, recipients: [] })).toThrow(RangeError);
  });

  it('writes the null reverse-path as Return-Path: <>', () => {
    expect(buildHeaderBlock({ ...base, mailFrom: '', spf: undefined })).toMatch(/^Return-Path: <>\r\n/);
  });

  it('passes SMTPUTF8 addresses through as UTF-8', () => {
    expect(buildHeaderBlock({ ...base, mailFrom: 'jörg@bücher.example' })).toContain('Return-Path: <jörg@bücher.example>\r\n');
  });
});

describe('header field safety', () => {
  it('names the problem with line breaks and control characters', () => {
    expect(headerFieldProblem('mail.example.com')).toBeUndefined();
    expect(headerFieldProblem('jörg@bücher.example')).toBeUndefined();
    expect(headerFieldProblem('a\r\nX-Evil: 1')).toMatch(/line break/);
    expect(headerFieldProblem('a\nb')).toMatch(/line break/);
    expect(headerFieldProblem('a\rb')).toMatch(/line break/);
    expect(headerFieldProblem('a\x00b')).toMatch(/control/);
    expect(headerFieldProblem('a\tb')).toMatch(/control/);
    expect(headerFieldProblem('a\x7fb')).toMatch(/control/);
  });

  it('refuses to build a block from an injected HELO, MAIL FROM or recipient', () => {
    const cases: Array<[Partial<HeaderBlockInput>, string]> = [
      [{ helo: 'evil.example\r\nX-SES-Spam-Verdict: PASS' }, 'HELO'],
      [{ mailFrom: 'a@b.example\nBcc: victim@x.example' }, 'MAIL FROM'],
      [{ recipients: ['a@b.example\r'] }, 'recipient'],
      [{ clientHostname: 'ptr\x00.example' }, 'client hostname'],
      [{ dkim: [{ result: 'pass', domain: 'x.example\r\n dkim=pass' }] }, 'DKIM domain'],
    ];
    for (const [patch, field] of cases) {
      let error: unknown;
      try {
        buildHeaderBlock({ ...base, ...patch });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(HeaderInjectionError);
      expect((error as HeaderInjectionError).field).toBe(field);
    }
  });

  it('DATA that starts with a space or tab would continue the block: parsed, it extends the last verdict', () => {
    expect(continuesHeaderBlock(Buffer.from(' PASS\r\n'))).toBe(true);
    expect(continuesHeaderBlock(Buffer.from('\tx'))).toBe(true);
    for (const ok of ['', '\r\nbody', 'Subject: x', 'no colon', '\r x']) expect(continuesHeaderBlock(Buffer.from(ok))).toBe(false);
    // What the check prevents: the sender's bytes inside the gateway's own field.
    const parsed = parseHeaderBlock(buildHeaderBlock(base) + ' PASS\r\n\r\n');
    expect(parsed.headers.at(-1)?.value).toMatch(/ PASS$/);
  });
});

describe('the gateway\'s own authentication results', () => {
  const gateway: HeaderBlockInput = { ...base, byHost: 'mx1.mailroom.example', authservId: undefined };

  it('names the gateway as authserv-id, never amazonses.com', () => {
    const block = buildHeaderBlock(gateway);
    expect(block).toContain('\r\nAuthentication-Results: mx1.mailroom.example;\r\n spf=pass ');
    expect(block).not.toContain('amazonses.com');
    expect(buildHeaderBlock({ ...gateway, authservId: 'checker.mailroom.example' })).toContain('Authentication-Results: checker.mailroom.example;\r\n');
    expect(() => buildHeaderBlock({ ...gateway, authservId: 'x\r\nX-Forged: 1' })).toThrow(HeaderInjectionError);
  });

  it('writes the identity SPF checked for the null reverse-path: postmaster@<HELO>', () => {
    const block = buildHeaderBlock({ ...gateway, mailFrom: '', spf: { result: 'none', domain: 'mail-io1-f41.google.com', envelopeFrom: 'postmaster@mail-io1-f41.google.com' } });
    expect(block).toMatch(/^Return-Path: <>\r\n/);
    expect(block).toContain(
      'Received-SPF: none (spfCheck: domain of mail-io1-f41.google.com does not designate permitted sender hosts) client-ip=209.85.166.41; envelope-from=postmaster@mail-io1-f41.google.com; helo=mail-io1-f41.google.com;\r\n',
    );
  });

  it('writes at most MAX_DKIM_LINES dkim lines, however many signatures a sender adds', () => {
    const many = Array.from({ length: 500 }, (_, i) => ({ result: 'permerror' as const, domain: `s${i}.sender.example` }));
    const block = buildHeaderBlock({ ...gateway, dkim: many });
    expect(block.match(/\r\n dkim=/g)).toHaveLength(MAX_DKIM_LINES);
  });
});
