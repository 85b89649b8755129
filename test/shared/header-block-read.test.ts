import { describe, expect, it } from 'vitest';
import { buildHeaderBlock, formatReceivedDate, type HeaderBlockInput } from '../../shared/ses/header-block.js';
import { parseReceivedDate, readStoredHeaderBlock, STORED_BLOCK_READ_LIMIT } from '../../shared/ses/header-block-read.js';

const MESSAGE_ID = '4f2f8gu2t8fkov1aidn6vb92k10gsrp1doa8de01';

/** The sender's own header block, with a Return-Path and Received of its own that must stay. */
const DATA = Buffer.from(
  [
    'Return-Path: <bounce@lists.example>',
    'Received: by mail-io1-f41.google.com with SMTP id v6so11827618iow.11',
    '        for <inbox+xxxx@mail.example.com>; Fri, 14 Aug 2020 12:49:44 -0700 (PDT)',
    'Authentication-Results: mx.other.example; spf=pass',
    'From: Alice <alice@sender.example>',
    'Subject: hello',
    '',
    'body',
    '',
  ].join('\r\n'),
);

const gatewayInput: HeaderBlockInput = {
  mailFrom: 'alice@sender.example',
  helo: 'mail.sender.example',
  clientIp: '192.0.2.10',
  byHost: 'mx1.mailroom.example',
  messageId: MESSAGE_ID,
  recipients: ['support@example.com', 'sales@example.com'],
  receivedAt: new Date('2024-10-04T08:09:10.456Z'),
};

/** The fields SES signs, as they appear in real objects (values shortened). */
const SES_SIGNED = [
  'X-SES-RECEIPT: AEFBQUFBQUFBQUFITUxhd0lKNWNhY2Ni',
  'X-SES-DKIM-SIGNATURE: a=rsa-sha256; q=dns/txt; b=IlBDYhfKzN4Ly4=; c=relaxed/simple; s=224i4yxa5dv7c2xz3womw6peuasteono; d=amazonses.com; t=1597434585; v=1; bh=EHhulQ4FeXWlglHhsEJHZvmTi6Mua7yQbb2zgjT/kA4=; h=From:To:Cc:Bcc:Subject:Date:Message-ID:MIME-Version:Content-Type:X-SES-RECEIPT;',
].join('\r\n');

function stored(block: string): Buffer {
  return Buffer.concat([Buffer.from(block), DATA]);
}

describe('readStoredHeaderBlock', () => {
  it('reads every block the builder writes, and finds the DATA right after it', () => {
    const variants: HeaderBlockInput[] = [
      gatewayInput,
      { ...gatewayInput, clientHostname: 'mail.sender.example', scan: { spam: 'GRAY', virus: 'GRAY' } },
      { ...gatewayInput, clientIp: '2001:db8::25', mailFrom: '' },
      { ...gatewayInput, clientIp: '::ffff:192.0.2.10' },
      // Replayed mail with no SMTP client: `Received: by … with local id …`.
      (({ helo: _h, clientIp: _ip, clientHostname: _n, ...rest }) => rest)(gatewayInput),
      {
        ...gatewayInput,
        byHost: 'inbound-smtp.us-east-1.amazonaws.com',
        spf: { result: 'pass', domain: '_spf.google.com' },
        dkim: [{ result: 'pass', domain: 'gmail.com' }, { result: 'permerror', domain: 'x.example' }],
        dmarc: { result: 'pass', headerFrom: 'gmail.com' },
        scan: { spam: 'PASS', virus: 'FAIL' },
        authservId: 'amazonses.com',
      },
      // A gateway's own results: authserv-id is its name in `by`.
      { ...gatewayInput, spf: { result: 'fail', domain: 'sender.example' }, dkim: [], dmarc: { result: 'fail', headerFrom: 'sender.example' }, scan: { spam: 'FAIL', virus: 'PROCESSING_FAILED' } },
    ];
    for (const input of variants) {
      const block = buildHeaderBlock(input);
      const r = readStoredHeaderBlock(stored(block), true);
      expect(r.state).toBe('block');
      if (r.state !== 'block') continue;
      expect(r.block.length).toBe(Buffer.byteLength(block));
      expect(stored(block).subarray(r.block.length).equals(DATA)).toBe(true);
      expect(r.block.mailFrom).toBe(input.mailFrom);
      expect(r.block.messageId).toBe(MESSAGE_ID);
      expect(r.block.recipient).toBe(input.recipients[0]);
      expect(r.block.byHost).toBe(input.byHost);
      expect(r.block.receivedAt.toISOString()).toBe('2024-10-04T08:09:10.000Z'); // seconds: what the block keeps
      expect(r.block.client).toEqual(input.clientIp === undefined ? undefined : { helo: input.helo, ...(input.clientHostname ? { hostname: input.clientHostname } : {}), ip: input.clientIp.replace(/^::ffff:/, '') });
      expect(r.block.scan).toEqual(input.scan ? { spam: input.scan.spam, virus: input.scan.virus } : undefined);
      expect(r.block.receivedSpf !== undefined).toBe(input.spf !== undefined);
      expect(r.block.authenticationResults?.startsWith(`${input.authservId ?? input.byHost};`)).toBe(input.spf ? true : undefined);
      expect(r.block.signedBySes).toBe(false);
    }
  });

  it("reads SES's own block with its signed fields, and leaves the sender's Return-Path, Received and Authentication-Results in the DATA", () => {
    const block = buildHeaderBlock({
      ...gatewayInput,
      byHost: 'inbound-smtp.us-east-1.amazonaws.com',
      clientHostname: 'mail-io1-f41.google.com',
      spf: { result: 'pass', domain: '_spf.google.com' },
      dkim: [{ result: 'pass', domain: 'gmail.com' }],
      dmarc: { result: 'pass', headerFrom: 'gmail.com' },
      authservId: 'amazonses.com',
    });
    const withSigned = `${block}${SES_SIGNED}\r\n`;
    const r = readStoredHeaderBlock(stored(withSigned), true);
    expect(r.state).toBe('block');
    if (r.state !== 'block') return;
    expect(r.block.signedBySes).toBe(true);
    expect(r.block.length).toBe(Buffer.byteLength(withSigned));
    expect(stored(withSigned).subarray(r.block.length).toString()).toBe(DATA.toString());
  });

  it('asks for more bytes until the block is known to end, and gives up at the read limit', () => {
    const whole = stored(buildHeaderBlock({ ...gatewayInput, scan: { spam: 'PASS', virus: 'PASS' } }));
    const blockLength = Buffer.byteLength(buildHeaderBlock({ ...gatewayInput, scan: { spam: 'PASS', virus: 'PASS' } }));
    // Any cut before the name of the field after the block is complete: more is needed ("R" may be Received-SPF).
    for (const cut of [0, 10, 40, blockLength - 1, blockLength, blockLength + 1, blockLength + 11]) expect(readStoredHeaderBlock(whole.subarray(0, cut), false).state).toBe('more');
    expect(readStoredHeaderBlock(whole.subarray(0, blockLength + 'Return-Path:'.length), false).state).toBe('block');
    const endless = Buffer.concat([Buffer.from(buildHeaderBlock(gatewayInput)), Buffer.from(`X-SES-RECEIPT: ${'a'.repeat(STORED_BLOCK_READ_LIMIT)}`)]);
    const r = readStoredHeaderBlock(endless.subarray(0, STORED_BLOCK_READ_LIMIT), false);
    expect(r).toEqual({ state: 'not-stored-format', reason: 'no header block ends within its first 64 KiB' });
  });

  it('says why a message is not in the stored format', () => {
    const cases: Array<[string, RegExp]> = [
      ['From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n', /does not begin with a Return-Path/],
      ['Return-Path: a@example.com\r\nReceived: x\r\n\r\n', /not written <address>/],
      ['Return-Path: <a@example.com>\r\nReceived: from x by y; Fri, 14 Aug 2020 19:49:44 +0000\r\n\r\n', /not followed by SES's Received/],
      ['Return-Path: <a@example.com>\r\nSubject: x\r\n\r\n', /not followed by SES's Received/],
      [`Return-Path: <a@example.com>\r\nReceived: by h with SMTP id ${MESSAGE_ID} for b@example.com; 14 Aug 2020 19:49:44\r\n\r\n`, /date of its Received field/],
      ['\x89PNG\r\n\x1a\n', /does not begin with a Return-Path/],
    ];
    for (const [text, reason] of cases) {
      const r = readStoredHeaderBlock(Buffer.from(text, 'latin1'), true);
      expect(r.state).toBe('not-stored-format');
      if (r.state === 'not-stored-format') expect(r.reason).toMatch(reason);
    }
  });

  it('keeps out a verdict or signed field that comes out of order (the sender’s own)', () => {
    const block = buildHeaderBlock({ ...gatewayInput, scan: { spam: 'PASS', virus: 'PASS' } });
    const text = `${block}X-SES-Spam-Verdict: FAIL\r\nSubject: x\r\n\r\n`;
    const r = readStoredHeaderBlock(Buffer.from(text), true);
    expect(r.state === 'block' && r.block.length).toBe(Buffer.byteLength(block));
  });
});

describe('parseReceivedDate', () => {
  it('is the inverse of formatReceivedDate, and refuses other forms', () => {
    for (const iso of ['2024-10-04T08:09:10Z', '2000-02-29T23:59:59Z', '1999-12-31T00:00:00Z']) {
      expect(parseReceivedDate(formatReceivedDate(new Date(iso)))?.toISOString()).toBe(new Date(iso).toISOString());
    }
    expect(parseReceivedDate('Fri, 14 Aug 2020 19:49:44 +0000 (UTC)')?.toISOString()).toBe('2020-08-14T19:49:44.000Z');
    expect(parseReceivedDate('Sat, 14 Aug 2020 19:49:44 +0000 (UTC)')).toBeUndefined(); // wrong weekday
    expect(parseReceivedDate('Fri, 31 Feb 2020 19:49:44 +0000 (UTC)')).toBeUndefined();
    expect(parseReceivedDate('Fri, 14 Aug 2020 19:49:44 -0700')).toBeUndefined();
  });
});
