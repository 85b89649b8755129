import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  addrSpecs,
  buildReceivedNotification,
  commonHeaders,
  decodeEncodedWords,
  destination,
  fitNotification,
  headerBlockLength,
  headerBlockOf,
  NOTIFICATION_MAX_BYTES,
  NotificationTooLargeError,
  parseHeaderBlock,
  readHeaderBlock,
  readHeaderBlockFromFile,
  serializeNotification,
  SNS_SUBJECT,
  splitAddressList,
  unfoldHeaderValue,
  type MailHeader,
  type ReceivedNotificationInput,
} from '../../shared/notification/index.js';
import { buildHeaderBlock } from '../../shared/ses/header-block.js';
import { SES_LIMITS } from '../../shared/ses/limits.js';

/**
 * Spec §4.3, the 2019 notification [S20], verbatim except the "… sender's remaining headers …" placeholder element,
 * which is left out of `headers`.
 */
const SAMPLE_2019 = String.raw`{"notificationType":"Received",
 "mail":{"timestamp":"2019-04-23T14:32:52.371Z","source":"bob@sender.example",
  "messageId":"bs82kksd5uhl2b598fhhro1scu3d05a39id0gdg1","destination":["no-reply@receiver.example"],
  "headersTruncated":false,
  "headers":[
   {"name":"Return-Path","value":"<bob@sender.example>"},
   {"name":"Received","value":"from mail-it1-f181.google.com (mail-it1-f181.google.com [209.85.166.181]) by inbound-smtp.us-east-1.amazonaws.com with SMTP id bs82kksd5uhl2b598fhhro1scu3d05a39id0gdg1 for no-reply@receiver.example; Tue, 23 Apr 2019 14:32:52 +0000 (UTC)"},
   {"name":"X-SES-Spam-Verdict","value":"PASS"},
   {"name":"X-SES-Virus-Verdict","value":"PASS"},
   {"name":"Received-SPF","value":"pass (spfCheck: domain of _spf.google.com designates 209.85.166.181 as permitted sender) client-ip=209.85.166.181; envelope-from=bob@sender.example; helo=mail-it1-f181.google.com;"},
   {"name":"Authentication-Results","value":"amazonses.com; spf=pass (spfCheck: domain of _spf.google.com designates 209.85.166.181 as permitted sender) client-ip=209.85.166.181; envelope-from=bob@sender.example; helo=mail-it1-f181.google.com; dkim=pass header.i=@gmail.com; dmarc=pass header.from=gmail.com;"},
   {"name":"X-SES-RECEIPT","value":"AEFBQUFBQUFBQUFITUxh…(opaque)…"},
   {"name":"X-SES-DKIM-SIGNATURE","value":"a=rsa-sha256; q=dns/txt; b=dr/CYYSt…; c=relaxed/simple; s=6gbrjpgwjskckoa6a5zn6fwqkn67xbtw; d=amazonses.com; t=1556029972; v=1; bh=ywQreeOkadAdZ4/Mb1zduBsKNiG1+BXALry0J1bAdw4=; h=From:To:Cc:Bcc:Subject:Date:Message-ID:MIME-Version:Content-Type:X-SES-RECEIPT;"},
   {"name":"Received","value":"by mail-it1-f181.google.com with SMTP id v8so2790032itf.0 for <no-reply@receiver.example>; Tue, 23 Apr 2019 07:32:52 -0700 (PDT)"},
   {"name":"Content-Type","value":"multipart/alternative; boundary=\"000000000000b0b0c80587337519\""}],
  "commonHeaders":{"returnPath":"bob@sender.example",
   "from":["Bob Sender <bob@sender.example>"],
   "date":"Tue, 23 Apr 2019 11:32:42 -0300","to":["no-reply@receiver.example"],
   "messageId":"<CAJzr1CqtvvXRsUvC_ZuOex6jMEyLJcxR-n0fL4c0cBZrSAeAeA@mail.gmail.com>","subject":"Fwd: dadda"}},
 "receipt":{"timestamp":"2019-04-23T14:32:52.371Z","processingTimeMillis":477,
  "recipients":["no-reply@receiver.example"],
  "spamVerdict":{"status":"PASS"},"virusVerdict":{"status":"PASS"},"spfVerdict":{"status":"PASS"},
  "dkimVerdict":{"status":"PASS"},"dmarcVerdict":{"status":"PASS"},
  "action":{"type":"S3","topicArn":"arn:aws:sns:us-east-1:123456789012:SNSForwardEmails",
   "bucketName":"receive-email-bucket","objectKeyPrefix":"","objectKey":"bs82kksd5uhl2b598fhhro1scu3d05a39id0gdg1"}}}`;

const SPF_2019 =
  'pass (spfCheck: domain of _spf.google.com designates 209.85.166.181 as permitted sender) client-ip=209.85.166.181; envelope-from=bob@sender.example; helo=mail-it1-f181.google.com;';

/** The stored header block as SES wrote it: its own block folded per §2.1, then the sender's (Gmail-folded) headers. */
const SES_BLOCK_2019 = [
  'Return-Path: <bob@sender.example>',
  'Received: from mail-it1-f181.google.com (mail-it1-f181.google.com [209.85.166.181])',
  ' by inbound-smtp.us-east-1.amazonaws.com with SMTP id bs82kksd5uhl2b598fhhro1scu3d05a39id0gdg1',
  ' for no-reply@receiver.example;',
  ' Tue, 23 Apr 2019 14:32:52 +0000 (UTC)',
  'X-SES-Spam-Verdict: PASS',
  'X-SES-Virus-Verdict: PASS',
  `Received-SPF: ${SPF_2019}`,
  'Authentication-Results: amazonses.com;',
  ` spf=${SPF_2019}`,
  ' dkim=pass header.i=@gmail.com;',
  ' dmarc=pass header.from=gmail.com;',
].map((l) => `${l}\r\n`);
const SIGNED_2019 = [
  'X-SES-RECEIPT: AEFBQUFBQUFBQUFITUxh…(opaque)…',
  'X-SES-DKIM-SIGNATURE: a=rsa-sha256; q=dns/txt; b=dr/CYYSt…; c=relaxed/simple; s=6gbrjpgwjskckoa6a5zn6fwqkn67xbtw; d=amazonses.com; t=1556029972; v=1; bh=ywQreeOkadAdZ4/Mb1zduBsKNiG1+BXALry0J1bAdw4=; h=From:To:Cc:Bcc:Subject:Date:Message-ID:MIME-Version:Content-Type:X-SES-RECEIPT;',
  'Received: by mail-it1-f181.google.com with SMTP id v8so2790032itf.0',
  '        for <no-reply@receiver.example>; Tue, 23 Apr 2019 07:32:52 -0700 (PDT)',
].map((l) => `${l}\r\n`);
/** What the placeholder stands for: the sample's commonHeaders imply these fields (Gmail's order). */
const REMAINING_2019: MailHeader[] = [
  { name: 'MIME-Version', value: '1.0' },
  { name: 'From', value: 'Bob Sender <bob@sender.example>' },
  { name: 'Date', value: 'Tue, 23 Apr 2019 11:32:42 -0300' },
  { name: 'Message-ID', value: '<CAJzr1CqtvvXRsUvC_ZuOex6jMEyLJcxR-n0fL4c0cBZrSAeAeA@mail.gmail.com>' },
  { name: 'Subject', value: 'Fwd: dadda' },
  { name: 'To', value: 'no-reply@receiver.example' },
];
const CONTENT_TYPE_2019 = 'Content-Type: multipart/alternative; boundary="000000000000b0b0c80587337519"\r\n';
const BODY_2019 = '\r\n--000000000000b0b0c80587337519\r\nContent-Type: text/plain; charset="UTF-8"\r\n\r\nFrom: not a header\r\n';

const INPUT_2019: Omit<ReceivedNotificationInput, 'headerBlock'> = {
  timestamp: new Date('2019-04-23T14:32:52.371Z'),
  processingTimeMillis: 477,
  source: 'bob@sender.example',
  messageId: 'bs82kksd5uhl2b598fhhro1scu3d05a39id0gdg1',
  recipients: ['no-reply@receiver.example'],
  verdicts: { spam: 'PASS', virus: 'PASS', spf: 'PASS', dkim: 'PASS', dmarc: 'PASS' },
  action: { topicArn: 'arn:aws:sns:us-east-1:123456789012:SNSForwardEmails', bucketName: 'receive-email-bucket' },
};

/** Every object's key list, by path, so key order is compared at each level. */
function keyOrder(value: unknown, path = '$'): Array<[string, string[]]> {
  if (Array.isArray(value)) return value.flatMap((v, i) => keyOrder(v, `${path}[${i}]`));
  if (value === null || typeof value !== 'object') return [];
  return [[path, Object.keys(value)], ...Object.entries(value).flatMap(([k, v]) => keyOrder(v, `${path}.${k}`))];
}

describe('a real 2019 SES notification (docs/ses-format.md#notification-document), rebuilt from its inputs', () => {
  const raw = [...SES_BLOCK_2019, ...SIGNED_2019, ...REMAINING_2019.map((h) => `${h.name}: ${h.value}\r\n`), CONTENT_TYPE_2019].join('') + BODY_2019;
  const sample = JSON.parse(SAMPLE_2019);
  // The sample elides the sender's remaining headers before Content-Type; the rebuilt list has them there.
  const expected = structuredClone(sample);
  expected.mail.headers.splice(9, 0, ...REMAINING_2019);
  const actual = buildReceivedNotification({ ...INPUT_2019, headerBlock: raw });

  it('matches field by field', () => {
    expect(actual.notificationType).toBe(sample.notificationType);
    const { headers, ...mail } = actual.mail;
    const { headers: sampleHeaders, ...sampleMail } = sample.mail;
    expect(mail).toEqual(sampleMail);
    const elided = (h: MailHeader) => REMAINING_2019.some((r) => r.name === h.name && r.value === h.value);
    expect(headers.filter((h) => !elided(h))).toEqual(sampleHeaders);
    expect(headers).toEqual(expected.mail.headers);
    expect(actual.receipt).toEqual(sample.receipt);
    expect(actual).toEqual(expected);
  });

  it('has the sample key order at every level', () => {
    expect(keyOrder(actual)).toEqual(keyOrder(expected));
    expect(Object.keys(actual.mail)).toEqual(['timestamp', 'source', 'messageId', 'destination', 'headersTruncated', 'headers', 'commonHeaders']);
  });

  it('serializes compactly, byte-identical to the sample', () => {
    const json = serializeNotification(actual);
    expect(json).toBe(JSON.stringify(expected));
    expect(json.startsWith('{"notificationType":"Received","mail":{"timestamp":"2019-04-23T14:32:52.371Z","source"')).toBe(true);
    expect(json).toContain('"value":"multipart/alternative; boundary=\\"000000000000b0b0c80587337519\\""}');
  });

  it('without the elided headers, the header list is exactly the sample list', () => {
    const strict = buildReceivedNotification({ ...INPUT_2019, headerBlock: [...SES_BLOCK_2019, ...SIGNED_2019, CONTENT_TYPE_2019, '\r\n'].join('') });
    expect(strict.mail.headers).toEqual(sample.mail.headers);
  });

  it('the SES block part is what buildHeaderBlock writes for the same inputs', () => {
    const block = buildHeaderBlock({
      mailFrom: 'bob@sender.example',
      helo: 'mail-it1-f181.google.com',
      clientIp: '209.85.166.181',
      clientHostname: 'mail-it1-f181.google.com',
      byHost: 'inbound-smtp.us-east-1.amazonaws.com',
      messageId: INPUT_2019.messageId,
      recipients: INPUT_2019.recipients,
      receivedAt: INPUT_2019.timestamp,
      scan: { spam: 'PASS', virus: 'PASS' },
      spf: { result: 'pass', domain: '_spf.google.com' },
      dkim: [{ result: 'pass', domain: 'gmail.com' }],
      dmarc: { result: 'pass', headerFrom: 'gmail.com' },
      authservId: 'amazonses.com',
    });
    expect(block).toBe(SES_BLOCK_2019.join(''));
  });

  it('publishes under the observed SNS subject', () => {
    expect(SNS_SUBJECT).toBe('Amazon SES Email Receipt Notification');
  });
});

describe('header parsing', () => {
  it('unfolds each line break plus its whitespace run into one space and keeps spaces on a line', () => {
    expect(unfoldHeaderValue(' a\r\n\t\t b')).toBe('a b');
    expect(unfoldHeaderValue(' Fri,  4 Oct 2024')).toBe('Fri,  4 Oct 2024');
    expect(unfoldHeaderValue(' x;\r\n        y')).toBe('x; y');
    expect(unfoldHeaderValue('\r\n tail')).toBe('tail');

    const { headers } = parseHeaderBlock(
      [
        'Authentication-Results: mx.google.com;       dkim=pass\r\n',
        'DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n        d=gmail.com; s=20161025;\r\n\tb=LsLc\r\n 818YM3v\r\n',
        'Subject:\t tabbed\r\n',
        'Subject :obsolete\r\n',
        'X-Empty:\r\n',
        'X-Bare-LF: one\n two\n',
        '\r\n',
        'Not: a header\r\n',
      ].join(''),
    );
    expect(headers).toEqual([
      { name: 'Authentication-Results', value: 'mx.google.com;       dkim=pass' },
      { name: 'DKIM-Signature', value: 'v=1; a=rsa-sha256; c=relaxed/relaxed; d=gmail.com; s=20161025; b=LsLc 818YM3v' },
      { name: 'Subject', value: 'tabbed' },
      { name: 'Subject', value: 'obsolete' },
      { name: 'X-Empty', value: '' },
      { name: 'X-Bare-LF', value: 'one two' },
    ]);
  });

  it('keeps duplicates in order with their names as written', () => {
    const { headers } = parseHeaderBlock('Received: a\r\nreceived: b\r\nX-Y: 1\r\nRECEIVED: c\r\n\r\n');
    expect(headers).toEqual([
      { name: 'Received', value: 'a' },
      { name: 'received', value: 'b' },
      { name: 'X-Y', value: '1' },
      { name: 'RECEIVED', value: 'c' },
    ]);
  });

  it('skips lines that are not fields', () => {
    const { headers } = parseHeaderBlock(' orphan continuation\r\nFrom sender@x Mon Jan  1 00:00:00 2024\r\nA: 1\r\nno colon here\r\nB: 2\r\n');
    expect(headers).toEqual([
      { name: 'A', value: '1' },
      { name: 'B', value: '2' },
    ]);
  });

  it('reads raw UTF-8, and 8-bit latin1 when a field is not UTF-8', () => {
    const bytes = Buffer.concat([Buffer.from('Subject: Grüße\r\nX-Old: '), Buffer.from('Grüße', 'latin1'), Buffer.from('\r\n')]);
    expect(parseHeaderBlock(bytes).headers).toEqual([
      { name: 'Subject', value: 'Grüße' },
      { name: 'X-Old', value: 'Grüße' },
    ]);
  });

  describe('10 KB truncation', () => {
    const limit = SES_LIMITS.notificationHeaderBytes;
    const field = (name: string, bytes: number) => `${name}: ${'a'.repeat(bytes - name.length - 4)}\r\n`;

    it('keeps a block of exactly 10240 bytes whole', () => {
      const block = field('X-A', limit - 30) + field('X-B', 30);
      expect(Buffer.byteLength(block)).toBe(limit);
      const parsed = parseHeaderBlock(block + '\r\nbody');
      expect(parsed.headersTruncated).toBe(false);
      expect(parsed.headers.map((h) => h.name)).toEqual(['X-A', 'X-B']);
    });

    it('cuts, at 10241 bytes, the field that passes the limit and all after it', () => {
      const block = field('X-A', limit - 30) + field('X-B', 31) + 'Subject: after the cut\r\n';
      const parsed = parseHeaderBlock(block);
      expect(parsed.headersTruncated).toBe(true);
      expect(parsed.headers.map((h) => h.name)).toEqual(['X-A']);
      expect(parsed.allHeaders.map((h) => h.name)).toEqual(['X-A', 'X-B', 'Subject']);
    });

    it('counts folded lines and multi-byte characters in bytes', () => {
      // 'é' is two bytes: the first field is 10235 bytes in 5121 characters; the folded one (21 bytes) passes 10240.
      const folded = 'X-Folded: a\r\n b\r\n\tc\r\n';
      const block = `X-U: ${'é'.repeat(5114)}\r\n` + folded;
      expect(Buffer.byteLength(block)).toBe(limit + 16);
      expect(parseHeaderBlock(block, limit + 16).headersTruncated).toBe(false);
      const parsed = parseHeaderBlock(block);
      expect(parsed.headersTruncated).toBe(true);
      expect(parsed.headers.map((h) => h.name)).toEqual(['X-U']);
    });

    it('still derives commonHeaders from the whole block', () => {
      const n = buildReceivedNotification({
        ...INPUT_2019,
        headerBlock: field('X-Pad', limit) + 'Subject: late\r\nTo: a@b.example\r\n\r\n',
      });
      expect(n.mail.headersTruncated).toBe(true);
      expect(n.mail.headers).toEqual([{ name: 'X-Pad', value: 'a'.repeat(limit - 9) }]);
      expect(n.mail.commonHeaders).toEqual({ to: ['a@b.example'], subject: 'late' });
      expect(n.mail.destination).toEqual(['a@b.example']);
    });
  });
});

describe('reading the header block from the stored message head', () => {
  it('finds the blank line, CRLF or bare LF', () => {
    expect(headerBlockLength(Buffer.from('A: 1\r\nB: 2\r\n\r\nbody'))).toBe(12);
    expect(headerBlockLength(Buffer.from('A: 1\nB: 2\n\nbody'))).toBe(10);
    expect(headerBlockLength(Buffer.from('\r\nbody'))).toBe(0);
    expect(headerBlockLength(Buffer.from('A: 1\r\nB: 2\r\n'))).toBeUndefined();
  });

  it('stops at a blank line that straddles chunks and leaves the rest unread', async () => {
    const chunks = ['A: 1\r\nB: 2\r', '\n\r', '\nbody…', 'never read'].map((s) => Buffer.from(s));
    let pulled = 0;
    async function* source() {
      for (const c of chunks) {
        pulled++;
        yield c;
      }
    }
    const head = await readHeaderBlock(source());
    expect(head.block.toString()).toBe('A: 1\r\nB: 2\r\n');
    expect(head.complete).toBe(true);
    expect(pulled).toBe(3);
  });

  it('treats a message without a blank line as all header', async () => {
    const head = await readHeaderBlock(Readable.from([Buffer.from('A: 1\r\n'), Buffer.from('B: 2\r\n')]));
    expect(head).toEqual({ block: Buffer.from('A: 1\r\nB: 2\r\n'), complete: true });
  });

  it('stops at the limit on a whole line', async () => {
    const head = await readHeaderBlock(Readable.from([Buffer.from('A: 1\r\nB: 22222222\r\n\r\n')]), 12);
    expect(head).toEqual({ block: Buffer.from('A: 1\r\n'), complete: false });
  });

  it('a message held in memory gives the same header block as its stream, cut or not', async () => {
    const cases: Array<[string, number?]> = [
      ['A: 1\r\nB: 2\r\n\r\nbody'],
      ['A: 1\nB: 2\n\nbody'],
      ['\r\nbody'],
      ['A: 1\r\nB: 2\r\n'],
      ['A: 1\r\nB: 22222222\r\n\r\n', 12],
      ['A: 1\r\nB: 2\r\n\r\n', 14],
      ['A: 1\r\n B: folded\r\n\r\nx\r\n\r\ny', 256],
      ['', undefined],
    ];
    for (const [text, limit] of cases) {
      const bytes = Buffer.from(text);
      // Streams in 3-byte chunks, so blank lines straddle chunk ends.
      const chunks = Array.from({ length: Math.ceil(bytes.length / 3) }, (_, i) => bytes.subarray(i * 3, i * 3 + 3));
      expect(headerBlockOf(bytes, limit), JSON.stringify(text)).toEqual(await readHeaderBlock(Readable.from(chunks), limit));
    }
  });

  it('reads a file head without reading the whole message', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailroom-head-'));
    try {
      const path = join(dir, 'message.eml');
      const headers = 'Subject: big\r\nTo: a@b.example\r\n';
      await writeFile(path, headers + '\r\n' + 'x'.repeat(2 * 1024 * 1024));
      const head = await readHeaderBlockFromFile(path);
      expect(head).toEqual({ block: Buffer.from(headers), complete: true });
      const cut = await readHeaderBlockFromFile(path, 20);
      expect(cut).toEqual({ block: Buffer.from('Subject: big\r\n'), complete: false });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('commonHeaders', () => {
  it('splits address lists at top-level commas only', () => {
    expect(splitAddressList('"Doe, John" <john@x.example>, jane@x.example (Jane, J.) , <a@x.example>')).toEqual([
      '"Doe, John" <john@x.example>',
      'jane@x.example (Jane, J.)',
      '<a@x.example>',
    ]);
    expect(splitAddressList('"a \\" , b" <q@x.example>,  ,b@x.example')).toEqual(['"a \\" , b" <q@x.example>', 'b@x.example']);
    expect(splitAddressList('Team: a@x.example, b@x.example;, c@x.example')).toEqual(['Team: a@x.example, b@x.example;', 'c@x.example']);
    expect(splitAddressList('Re: unquoted <a@x.example>, b@x.example')).toEqual(['Re: unquoted <a@x.example>', 'b@x.example']);
  });

  it('extracts addr-specs', () => {
    expect(addrSpecs('"Doe, John" <John@X.example>')).toEqual(['John@X.example']);
    expect(addrSpecs('jane@x.example (Jane <not this>)')).toEqual(['jane@x.example']);
    expect(addrSpecs('"q <u> o"@x.example')).toEqual(['"q <u> o"@x.example']);
    expect(addrSpecs('<@relay.example:a@x.example>')).toEqual(['a@x.example']);
    expect(addrSpecs('Team: a@x.example, "B" <b@x.example>;')).toEqual(['a@x.example', 'b@x.example']);
    expect(addrSpecs('undisclosed-recipients:;')).toEqual([]);
  });

  it('gives present fields only, in the documented order, elements as written', () => {
    const headers: MailHeader[] = [
      { name: 'Subject', value: '=?UTF-8?B?SGVsbG8g8J+RiyB3b3JsZA==?=' },
      { name: 'Message-ID', value: '<id@x.example>' },
      { name: 'Bcc', value: 'hidden@x.example' },
      { name: 'CC', value: '"Roe, Richard" <r@x.example>' },
      { name: 'To', value: '"Doe, John" <john@x.example>, =?UTF-8?Q?J=C3=B6rg?= <j@x.example>' },
      { name: 'to', value: 'second@x.example' },
      { name: 'Date', value: 'Fri,  4 Oct 2024 10:00:00 +0000' },
      { name: 'Reply-To', value: 'reply@x.example' },
      { name: 'Sender', value: 'list@x.example' },
      { name: 'From', value: 'Alice <alice@x.example>' },
      { name: 'Return-Path', value: '<bounce@x.example>' },
      { name: 'Return-Path', value: '<second@x.example>' },
      { name: 'Subject', value: 'second subject' },
    ];
    const common = commonHeaders(headers);
    expect(Object.keys(common)).toEqual(['returnPath', 'from', 'sender', 'replyTo', 'date', 'to', 'cc', 'bcc', 'messageId', 'subject']);
    expect(common).toEqual({
      returnPath: 'bounce@x.example',
      from: ['Alice <alice@x.example>'],
      sender: ['list@x.example'],
      replyTo: ['reply@x.example'],
      date: 'Fri,  4 Oct 2024 10:00:00 +0000',
      to: ['"Doe, John" <john@x.example>', '=?UTF-8?Q?J=C3=B6rg?= <j@x.example>', 'second@x.example'],
      cc: ['"Roe, Richard" <r@x.example>'],
      bcc: ['hidden@x.example'],
      messageId: '<id@x.example>',
      subject: 'Hello 👋 world',
    });
    expect(destination(headers)).toEqual(['john@x.example', 'j@x.example', 'second@x.example', 'r@x.example']);
    expect(commonHeaders([{ name: 'Subject', value: 'only' }])).toEqual({ subject: 'only' });
    expect(commonHeaders([{ name: 'To', value: '' }])).toEqual({});
  });

  it('decodes RFC 2047 encoded-words in the subject', () => {
    expect(decodeEncodedWords('=?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=')).toBe('Grüße aus Köln');
    expect(decodeEncodedWords('=?ISO-8859-1?Q?Caf=E9?= =?iso-8859-1?b?IGNy6G1l?=')).toBe('Café crème');
    expect(decodeEncodedWords('Re: =?UTF-8?B?w6k=?= and =?UTF-8?B?w6g=?= done')).toBe('Re: é and è done');
    // 'é' (C3 A9) split across two words still decodes; whitespace between encoded-words is dropped.
    expect(decodeEncodedWords('=?UTF-8?B?w6?=\r\n =?UTF-8?Q?=A9t=C3=A9?=')).toBe('été');
    expect(decodeEncodedWords('=?utf-8*en?Q?hi?=')).toBe('hi');
    expect(decodeEncodedWords('=?x-unknown?Q?abc?= plain')).toBe('=?x-unknown?Q?abc?= plain');
    expect(decodeEncodedWords('no words, =? not one ?=')).toBe('no words, =? not one ?=');
  });

  it('a decoded subject may hold CR, LF and NUL: kept, and escaped in the JSON (which stays valid)', () => {
    const encoded = `=?utf-8?B?${Buffer.from('line one\r\nBcc: x@y.example\0end').toString('base64')}?=`;
    const n = buildReceivedNotification({ ...INPUT_2019, headerBlock: `Subject: ${encoded}\r\n\r\n` });
    expect(n.mail.commonHeaders.subject).toBe('line one\r\nBcc: x@y.example\0end');
    const json = serializeNotification(n);
    expect(json).toContain('"subject":"line one\\r\\nBcc: x@y.example\\u0000end"');
    expect(JSON.parse(json)).toEqual(n);
    // The raw field in `headers` keeps the encoded-word as written.
    expect(n.mail.headers).toEqual([{ name: 'Subject', value: encoded }]);
  });
});

describe('buildReceivedNotification', () => {
  const headerBlock = 'From: a@x.example\r\nTo: b@y.example\r\nSubject: Grüße\r\n\r\n';

  it('builds the object key from the prefix via objectKey()', () => {
    const n = buildReceivedNotification({ ...INPUT_2019, headerBlock, action: { ...INPUT_2019.action, objectKeyPrefix: 'mail' } });
    expect(n.receipt.action).toEqual({
      type: 'S3',
      topicArn: INPUT_2019.action.topicArn,
      bucketName: 'receive-email-bucket',
      objectKeyPrefix: 'mail',
      objectKey: 'mail/bs82kksd5uhl2b598fhhro1scu3d05a39id0gdg1',
    });
    const slash = buildReceivedNotification({ ...INPUT_2019, headerBlock, action: { ...INPUT_2019.action, objectKeyPrefix: 'emails/' } });
    expect(slash.receipt.action.objectKey).toBe('emails/bs82kksd5uhl2b598fhhro1scu3d05a39id0gdg1');
  });

  it('writes dmarcPolicy right after dmarcVerdict, only when DMARC fails', () => {
    const failed = buildReceivedNotification({
      ...INPUT_2019,
      headerBlock,
      verdicts: { ...INPUT_2019.verdicts, dmarc: 'FAIL' },
      dmarcPolicy: 'reject',
    });
    expect(Object.keys(failed.receipt)).toEqual([
      'timestamp',
      'processingTimeMillis',
      'recipients',
      'spamVerdict',
      'virusVerdict',
      'spfVerdict',
      'dkimVerdict',
      'dmarcVerdict',
      'dmarcPolicy',
      'action',
    ]);
    expect(failed.receipt.dmarcPolicy).toBe('reject');
    const passed = buildReceivedNotification({ ...INPUT_2019, headerBlock, dmarcPolicy: 'reject' });
    expect('dmarcPolicy' in passed.receipt).toBe(false);
  });

  it('keeps non-ASCII as raw UTF-8 in the JSON', () => {
    const json = serializeNotification(buildReceivedNotification({ ...INPUT_2019, headerBlock }));
    expect(json).toContain('"subject":"Grüße"');
    expect(json).not.toContain('\\u');
  });

  it('refuses a processing time that is not a whole number of milliseconds', () => {
    expect(() => buildReceivedNotification({ ...INPUT_2019, headerBlock, processingTimeMillis: 1.5 })).toThrow(RangeError);
    expect(() => buildReceivedNotification({ ...INPUT_2019, headerBlock, processingTimeMillis: -1 })).toThrow(RangeError);
  });

  it('copies the recipients instead of aliasing the caller array', () => {
    const recipients = ['b@y.example'];
    const n = buildReceivedNotification({ ...INPUT_2019, headerBlock, recipients });
    recipients.push('later@y.example');
    expect(n.receipt.recipients).toEqual(['b@y.example']);
  });
});

describe('the notification always fits SNS', () => {
  const FIELD = SES_LIMITS.notificationHeaderBytes;
  const bytes = (n: unknown) => Buffer.byteLength(serializeNotification(n as never));
  const build = (headerBlock: string | Buffer) => buildReceivedNotification({ ...INPUT_2019, headerBlock });

  it('a To: of 9,000 addresses (170 KB): destination and to keep their first addresses up to 10 KB each, headersTruncated, under 256 KB', () => {
    const addresses = Array.from({ length: 9_000 }, (_, i) => `recipient-${String(i).padStart(5, '0')}@example.com`);
    const block = `From: a@x.example\r\nTo: ${addresses.join(', ')}\r\nSubject: many\r\n\r\nbody`;
    expect(block.length).toBeGreaterThan(170_000);
    const n = build(block);
    expect(bytes(n)).toBeLessThanOrEqual(NOTIFICATION_MAX_BYTES);
    expect(n.mail.headersTruncated).toBe(true);
    // Whole addresses, in order, as many as 10,240 bytes hold.
    const fit = Math.floor(FIELD / addresses[0]!.length);
    expect(n.mail.destination).toEqual(addresses.slice(0, fit));
    expect(n.mail.commonHeaders.to).toEqual(addresses.slice(0, fit));
    expect(n.mail.commonHeaders.subject).toBe('many');
    expect(n.mail.commonHeaders.from).toEqual(['a@x.example']);
  });

  it('a subject (or date, message id) over 10 KB is cut at a character boundary', () => {
    const n = build(`Subject: ${'é'.repeat(6_000)}\r\nMessage-ID: <${'m'.repeat(20_000)}@x>\r\n\r\n`);
    expect(n.mail.commonHeaders.subject).toBe('é'.repeat(FIELD / 2));
    expect(Buffer.byteLength(n.mail.commonHeaders.messageId!)).toBe(FIELD);
    expect(n.mail.headersTruncated).toBe(true);
  });

  it('headers that JSON must escape (controls become \\u0000, 6 bytes each) are halved, largest first, until the document fits', () => {
    // Every field derived from the block at its per-field bound, in the bytes that cost the most once serialized.
    const ctl = (len: number) => '\x01'.repeat(len);
    const list = (len: number) => Array.from({ length: len / 2 }, () => '\x01').join(',');
    const fields = ['From', 'Sender', 'Reply-To', 'To', 'Cc', 'Bcc'].map((name) => `${name}: ${list(FIELD)}\r\n`);
    const single = ['Return-Path', 'Date', 'Message-ID', 'Subject'].map((name) => `${name}: ${ctl(FIELD)}\r\n`);
    const block = [...fields, ...single, `X-Pad: ${ctl(30_000)}\r\n`, '\r\n'].join('');
    const n = build(block);
    const json = serializeNotification(n);
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(NOTIFICATION_MAX_BYTES);
    expect(n.mail.headersTruncated).toBe(true);
    // The per-field bound keeps all 5,120 elements of a 10 KB list; the halving took more.
    expect(n.mail.commonHeaders.to!.length).toBeLessThan(FIELD / 2);
    expect(JSON.parse(json)).toEqual(n);
    // The envelope and the receipt are never cut.
    expect(n.receipt.recipients).toEqual(INPUT_2019.recipients);
    expect(n.mail.source).toBe(INPUT_2019.source);
  });

  it('a document already under the limit is left as built (the 2019 sample is byte-identical, above)', () => {
    const n = build('Subject: short\r\n\r\n');
    expect(n.mail.headersTruncated).toBe(false);
    expect(() => fitNotification(n, 10)).toThrow(NotificationTooLargeError);
  });
});
