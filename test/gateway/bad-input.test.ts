/**
 * Hostile and odd input, each with its reply, and nothing stored wrongly: what is accepted is stored as exactly the
 * SES header block + the DATA bytes, what is refused leaves nothing behind.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivedNotification } from '../../shared/notification/index.js';
import { buildHeaderBlock } from '../../shared/ses/header-block.js';
import { ACCOUNT, createBuckets, createTopicWithQueue, listKeys, rawObject, RawSmtp, receiveSns, REGION, startTestGateway, waitFor, startBackends, type Backends } from './helpers.js';

const HOST = 'mx.bad-input.test';
const BUCKET = 'bad-input';
let backends: Backends;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let queueUrl: string;
const notifications = new Map<string, ReceivedNotification>();

beforeAll(async () => {
  backends = await startBackends('mailroom-bad-', { motoEnv: true });
  await createBuckets(backends.aws, BUCKET);
  const t = await createTopicWithQueue(backends.aws, 'bad-input');
  queueUrl = t.queueUrl;
  gw = await startTestGateway({
    region: REGION,
    accountId: ACCOUNT,
    ruleSetName: 'bad-input',
    rules: [
      { name: 'all', recipients: ['example.com'], s3Action: { bucketName: BUCKET, objectKeyPrefix: 'in', topicArn: t.topicArn } },
      // пример.рф, as DNS (and SES's rules) write it.
      { name: 'idn', recipients: ['xn--e1afmkfd.xn--p1ai'], s3Action: { bucketName: BUCKET, objectKeyPrefix: 'idn', topicArn: t.topicArn } },
      // Verdict headers in the stored block: the last of them is what a continuation line would extend.
      { name: 'scan', recipients: ['scan.example'], scanEnabled: true, s3Action: { bucketName: BUCKET, objectKeyPrefix: 'scan', topicArn: t.topicArn } },
    ],
    gateway: { hostname: HOST, spoolDir: join(backends.dir.path, 'spool'), smtp: { port: 0, reverseDns: false }, redis: { url: backends.redis.url, prefix: 'bad' }, worker: { concurrency: 4 } },
  });
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  await backends?.stop();
});

async function notificationOf(messageId: string): Promise<ReceivedNotification> {
  return waitFor(`notification of ${messageId}`, async () => {
    for (const e of await receiveSns(backends.aws, queueUrl, 10, 1_000)) {
      const n = JSON.parse(e.Message) as ReceivedNotification;
      notifications.set(n.mail.messageId, n);
    }
    return notifications.get(messageId);
  });
}

/** Sends one message on a fresh session; returns the reply to the end of DATA. */
async function send(payload: Buffer | string, opts: { mailParams?: string } = {}): Promise<string> {
  const c = await RawSmtp.connect(gw.port);
  try {
    expect(await c.command('EHLO client.example.net')).toMatch(/^250/);
    expect(await c.command(`MAIL FROM:<sender@origin.example>${opts.mailParams ?? ''}`)).toMatch(/^250/);
    expect(await c.command('RCPT TO:<user@example.com>')).toMatch(/^250/);
    return await c.data(payload);
  } finally {
    c.close();
  }
}

/** Asserts the stored object is exactly header block + DATA (DATA = payload + the CRLF before the final dot). */
async function expectStoredExactly(reply: string, data: Buffer): Promise<ReceivedNotification> {
  const m = /^250 Ok ([0-9a-v]{40})$/.exec(reply);
  expect(m, reply).not.toBeNull();
  const id = m![1]!;
  const n = await notificationOf(id);
  const hb = buildHeaderBlock({ mailFrom: 'sender@origin.example', helo: 'client.example.net', clientIp: '127.0.0.1', byHost: HOST, messageId: id, recipients: ['user@example.com'], receivedAt: new Date(n.mail.timestamp) });
  const stored = await rawObject(backends.aws, BUCKET, `in/${id}`);
  expect(stored.equals(Buffer.concat([Buffer.from(hb, 'utf8'), data]))).toBe(true);
  return n;
}

const CRLF = '\r\n';
const bin = (s: string) => Buffer.from(s, 'latin1');

describe('malformed commands get their reply and the session stays usable', () => {
  it('answers each with 5xx and still accepts a good message afterwards', async () => {
    const before = (await listKeys(backends.aws, BUCKET)).length;
    const c = await RawSmtp.connect(gw.port);
    expect(await c.command('MAIL FROM:<a@b.example>')).toMatch(/^503 /); // before EHLO
    expect(await c.command('EHLO')).toMatch(/^501 /);
    expect(await c.command('EHLO bad\x01host')).toMatch(/^501 /);
    expect(await c.command('EHLO client.example.net')).toMatch(/^250/);
    expect(await c.command('FROBNICATE now')).toMatch(/^500 /);
    expect(await c.command('RCPT TO:<user@example.com>')).toMatch(/^503 /); // before MAIL
    expect(await c.command('DATA')).toMatch(/^503 /);
    expect(await c.command('MAIL FROM:sender@origin.example')).toMatch(/^501 /); // no angle brackets
    expect(await c.command('MAIL FROM:<sender@origin.example> SIZE=lots')).toMatch(/^501 /);
    expect(await c.command(bin('MAIL FROM:<nul\x00byte@origin.example>'))).toMatch(/^501 /);
    expect(await c.command(`MAIL FROM:<${'a'.repeat(10_000)}@origin.example>`)).toMatch(/^501 /);
    expect(await c.command(`NOOP ${'z'.repeat(10_000)}`)).toMatch(/^250/);
    expect(await c.command('MAIL FROM:<sender@origin.example>')).toMatch(/^250/);
    expect(await c.command('MAIL FROM:<again@origin.example>')).toMatch(/^503 /); // nested MAIL
    expect(await c.command('RCPT TO:<>')).toMatch(/^501 /);
    expect(await c.command(bin('RCPT TO:<user\r@example.com>'))).toMatch(/^5/);
    expect(await c.command('RCPT TO:<user@example.com>')).toMatch(/^250/);
    const reply = await c.data(`Subject: after the noise${CRLF}${CRLF}fine`);
    await expectStoredExactly(reply, bin(`Subject: after the noise${CRLF}${CRLF}fine${CRLF}`));
    c.close();
    expect((await listKeys(backends.aws, BUCKET)).length).toBe(before + 1);
  });
});

describe('DATA is stored exactly as received', () => {
  it('SMTP smuggling sequences (\\n.\\n, \\r.\\n, \\n.\\r\\n) do not end the message', async () => {
    const before = (await listKeys(backends.aws, BUCKET)).length;
    const payload = `Subject: smuggle${CRLF}${CRLF}one\n.\nMAIL FROM:<evil@attacker.example>${CRLF}two\r.\nRCPT TO:<victim@example.com>${CRLF}three\n.\r\nDATA${CRLF}four`;
    const reply = await send(payload);
    await expectStoredExactly(reply, bin(payload + CRLF));
    expect((await listKeys(backends.aws, BUCKET)).length).toBe(before + 1);
  });

  it('NUL bytes, a 10,000-character line and 8-bit bytes pass through untouched', async () => {
    const eight = Buffer.from(Array.from({ length: 128 }, (_, i) => 0x80 + i));
    const data = Buffer.concat([bin(`Subject: raw bytes${CRLF}Content-Transfer-Encoding: 8bit${CRLF}${CRLF}nul:\x00:nul${CRLF}${'L'.repeat(10_000)}${CRLF}`), eight, bin(CRLF)]);
    await expectStoredExactly(await send(data, { mailParams: ' BODY=8BITMIME' }), Buffer.concat([data, bin(CRLF)]));
  });

  it('a message of headers only, one with an empty body, and an empty DATA', async () => {
    const onlyHeaders = `Subject: no body${CRLF}From: a@origin.example`;
    const n1 = await expectStoredExactly(await send(onlyHeaders), bin(onlyHeaders + CRLF));
    expect(n1.mail.commonHeaders.subject).toBe('no body');
    expect(n1.mail.headers.at(-1)).toEqual({ name: 'From', value: 'a@origin.example' });

    const emptyBody = `Subject: empty body${CRLF}`;
    await expectStoredExactly(await send(emptyBody), bin(emptyBody + CRLF));

    // "DATA", then the terminator right away: zero bytes of DATA; the object is the SES block alone.
    const c = await RawSmtp.connect(gw.port);
    await c.command('EHLO client.example.net');
    await c.command('MAIL FROM:<sender@origin.example>');
    await c.command('RCPT TO:<user@example.com>');
    expect(await c.command('DATA')).toMatch(/^354/);
    c.write(`.${CRLF}`);
    const reply = await c.reply();
    c.close();
    const n = await expectStoredExactly(reply, Buffer.alloc(0));
    expect(n.mail.headers.map((h) => h.name)).toEqual(['Return-Path', 'Received']);
  });

  it('non-UTF-8 header bytes are stored as sent and read as latin1 in the notification', async () => {
    const data = Buffer.concat([bin('Subject: caf'), Buffer.from([0xe9]), bin(` cr${CRLF}${CRLF}body${CRLF}`)]);
    const n = await expectStoredExactly(await send(data), Buffer.concat([data, bin(CRLF)]));
    expect(n.mail.commonHeaders.subject).toBe('café cr');
  });

  it('5,000 headers: stored whole, notification headersTruncated', async () => {
    const headers = Array.from({ length: 5_000 }, (_, i) => `X-Filler-${i}: value ${i}`).join(CRLF);
    const payload = `Subject: many headers${CRLF}${headers}${CRLF}${CRLF}body`;
    const n = await expectStoredExactly(await send(payload), bin(payload + CRLF));
    expect(n.mail.headersTruncated).toBe(true);
    expect(n.mail.headers.length).toBeLessThan(5_000);
    expect(n.mail.commonHeaders.subject).toBe('many headers');
  });
});

describe('a header that grows the notification', () => {
  it('a To: of 9,000 addresses (170 KB) is stored whole and announced: the notification fits SNS, cut and marked headersTruncated', async () => {
    const to = Array.from({ length: 9_000 }, (_, i) => `recipient-${String(i).padStart(5, '0')}@example.com`).join(', ');
    const payload = `Subject: to everyone${CRLF}To: ${to}${CRLF}${CRLF}body`;
    const n = await expectStoredExactly(await send(payload), bin(payload + CRLF));
    expect(Buffer.byteLength(JSON.stringify(n))).toBeLessThanOrEqual(256 * 1024);
    expect(n.mail.headersTruncated).toBe(true);
    expect(n.mail.destination[0]).toBe('recipient-00000@example.com');
    expect(n.mail.destination.length).toBeLessThan(9_000);
    expect(n.mail.commonHeaders.subject).toBe('to everyone');
  });
});

describe('internationalised domains', () => {
  // smtp-server decodes every domain to Unicode; MTAs send A-labels and rules hold them.
  const utf8 = (s: string) => Buffer.from(s, 'utf8');
  async function stored(reply: string): Promise<{ n: ReceivedNotification; head: string }> {
    const m = /^250 Ok ([0-9a-v]{40})$/.exec(reply);
    expect(m, reply).not.toBeNull();
    const n = await notificationOf(m![1]!);
    const head = (await rawObject(backends.aws, BUCKET, `idn/${m![1]!}`)).subarray(0, 400).toString('utf8');
    return { n, head };
  }

  it('an A-label recipient matches its rule, and the envelope is stored as the client sent it', async () => {
    const c = await RawSmtp.connect(gw.port);
    try {
      await c.command('EHLO client.example.net');
      expect(await c.command('MAIL FROM:<bounce@xn--80ak6aa92e.com>')).toMatch(/^250/);
      expect(await c.command('RCPT TO:<info@xn--e1afmkfd.xn--p1ai>')).toMatch(/^250/);
      const { n, head } = await stored(await c.data(`Subject: idn${CRLF}${CRLF}body`));
      expect(n.mail.source).toBe('bounce@xn--80ak6aa92e.com');
      expect(n.receipt.recipients).toEqual(['info@xn--e1afmkfd.xn--p1ai']);
      expect(n.receipt.action).toMatchObject({ objectKeyPrefix: 'idn' });
      expect(head).toMatch(/^Return-Path: <bounce@xn--80ak6aa92e\.com>\r\n/);
      expect(head).toContain(`\r\n for info@xn--e1afmkfd.xn--p1ai;\r\n`);
      // A rule without scanning: no verdict headers stored, DISABLED in the notification (docs/ses-format.md#verdicts-when-scanning-is-off).
      expect(head).not.toMatch(/X-SES-(Spam|Virus)-Verdict/);
      expect(n.receipt).toMatchObject({ spamVerdict: { status: 'DISABLED' }, virusVerdict: { status: 'DISABLED' }, spfVerdict: { status: 'GRAY' }, dkimVerdict: { status: 'GRAY' }, dmarcVerdict: { status: 'GRAY' } });
    } finally {
      c.close();
    }
  });

  it('an SMTPUTF8 client writing the domain in Unicode reaches the same rule, stored in the DNS form', async () => {
    const c = await RawSmtp.connect(gw.port);
    try {
      await c.command('EHLO client.example.net');
      expect(await c.command(utf8('MAIL FROM:<отправитель@пример.рф> SMTPUTF8'))).toMatch(/^250/);
      expect(await c.command(utf8('RCPT TO:<info@пример.рф>'))).toMatch(/^250/);
      // A domain no rule names is refused in the form the rules would name it.
      expect(await c.command(utf8('RCPT TO:<info@другой.рф>'))).toMatch(/^550 5\.1\.1 <info@xn--[a-z0-9-]+\.xn--p1ai>/);
      const { n } = await stored(await c.data(`Subject: idn${CRLF}${CRLF}body`));
      expect(n.mail.source).toBe('отправитель@xn--e1afmkfd.xn--p1ai');
      expect(n.receipt.recipients).toEqual(['info@xn--e1afmkfd.xn--p1ai']);
    } finally {
      c.close();
    }
  });
});

describe('recipients that normalise to one address', () => {
  it('an ideographic dot, a full-width letter, a soft hyphen or another case in the domain: accepted, listed once', async () => {
    const utf8 = (t: string) => Buffer.from(t, 'utf8');
    const c = await RawSmtp.connect(gw.port);
    try {
      await c.command('EHLO client.example.net');
      expect(await c.command('MAIL FROM:<sender@origin.example> SMTPUTF8')).toMatch(/^250/);
      for (const rcpt of ['x@example\u3002com', 'x@\uff45xample.com', 'x@exa\u00admple.com', 'x@EXAMPLE.com', 'x@example.com', 'y@example.com']) {
        expect(await c.command(utf8(`RCPT TO:<${rcpt}>`)), rcpt).toMatch(/^250/);
      }
      const m = /^250 Ok ([0-9a-v]{40})$/.exec(await c.data(`Subject: one each${CRLF}${CRLF}body`));
      expect(m).not.toBeNull();
      expect((await notificationOf(m![1]!)).receipt.recipients).toEqual(['x@example.com', 'y@example.com']);
    } finally {
      c.close();
    }
  });
});

describe('a client that does not wait for 354', () => {
  // Against RFC 2920, but real senders ("blast" pipeliners) do it: whole transactions, bodies included, in one write.
  it('gets every transaction of one write accepted and its QUIT answered', async () => {
    const tx = (i: number) => `MAIL FROM:<sender@origin.example>${CRLF}RCPT TO:<user@example.com>${CRLF}DATA${CRLF}Subject: blast ${i}${CRLF}${CRLF}body ${i}${CRLF}.${CRLF}`;
    const socket = connect(gw.port, '127.0.0.1');
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('data', () => resolve())); // the greeting
    socket.write(`EHLO client.example.net${CRLF}`);
    await waitFor('EHLO reply', async () => (/\r\n250 [^\r\n]*\r\n$/.test(text) ? true : undefined), 5_000, 20);
    socket.write([1, 2, 3, 4].map(tx).join('') + `QUIT${CRLF}`);
    await Promise.race([ended, new Promise((r) => setTimeout(r, 15_000))]);
    socket.destroy();
    const ids = [...text.matchAll(/^250 Ok ([0-9a-v]{40})\r$/gm)].map((m) => m[1]!);
    expect(ids, text).toHaveLength(4);
    expect(text).toMatch(/^221 /m);
    for (const id of ids) expect((await notificationOf(id)).mail.commonHeaders.subject).toMatch(/^blast [1-4]$/);
  });
});

describe('the recipient limit', () => {
  it('refuses RCPT past gateway.smtp.maxRecipients with 452 4.5.3 and a hint; a repeated one still counts once', async () => {
    const c = await RawSmtp.connect(gw.port);
    try {
      await c.command('EHLO client.example.net');
      expect(await c.command('MAIL FROM:<sender@origin.example>')).toMatch(/^250/);
      for (let i = 0; i < 100; i++) expect(await c.command(`RCPT TO:<r${i}@example.com>`)).toMatch(/^250/);
      expect(await c.command('RCPT TO:<r100@example.com>')).toBe('452 4.5.3 Too many recipients: at most 100 per message, send the rest in another transaction');
      expect(await c.command('RCPT TO:<R0@example.com>')).toMatch(/^250/);
      const m = /^250 Ok ([0-9a-v]{40})$/.exec(await c.data(`Subject: many${CRLF}${CRLF}body`));
      expect(m).not.toBeNull();
      expect((await notificationOf(m![1]!)).receipt.recipients).toHaveLength(100);
    } finally {
      c.close();
    }
  });
});

describe("DATA cannot write into the gateway's header block", () => {
  /** One message to `rcpt` on a fresh session; the reply to the end of DATA. */
  async function sendTo(rcpt: string, payload: string): Promise<string> {
    const c = await RawSmtp.connect(gw.port);
    try {
      expect(await c.command('EHLO client.example.net')).toMatch(/^250/);
      expect(await c.command('MAIL FROM:<sender@origin.example>')).toMatch(/^250/);
      expect(await c.command(`RCPT TO:<${rcpt}>`)).toMatch(/^250/);
      return await c.data(payload);
    } finally {
      c.close();
    }
  }
  /** The gateway's own fields as it wrote them: name and value of each, in the notification's words. */
  const ownFields = (n: ReceivedNotification, count: number) => n.mail.headers.slice(0, count);

  it('a first line that starts with a space or tab (a continuation with no field before it) is refused with 554 5.6.0; nothing is stored', async () => {
    const before = (await listKeys(backends.aws, BUCKET)).length;
    for (const [rcpt, payload] of [
      ['user@scan.example', ` PASS${CRLF}Subject: x${CRLF}${CRLF}body`],
      ['user@example.com', `\tby evil.example with SMTP id forged;${CRLF}Subject: x${CRLF}${CRLF}body`],
    ] as const) {
      expect(await sendTo(rcpt, payload)).toMatch(/^554 5\.6\.0 /);
    }
    expect((await listKeys(backends.aws, BUCKET)).length).toBe(before);
  });

  it('the session stays usable after the refusal', async () => {
    const c = await RawSmtp.connect(gw.port);
    try {
      await c.command('EHLO client.example.net');
      await c.command('MAIL FROM:<sender@origin.example>');
      await c.command('RCPT TO:<user@scan.example>');
      expect(await c.data(` PASS${CRLF}${CRLF}body`)).toMatch(/^554 5\.6\.0 /);
      expect(await c.command('MAIL FROM:<sender@origin.example>')).toMatch(/^250/);
      expect(await c.command('RCPT TO:<user@scan.example>')).toMatch(/^250/);
      expect(await c.data(`Subject: fine${CRLF}${CRLF}body`)).toMatch(/^250 Ok /);
    } finally {
      c.close();
    }
  });

  it('DATA starting with an empty line, or with a line that is no field, leaves the verdict headers as the gateway wrote them', async () => {
    for (const payload of [`${CRLF}only a body`, `no colon on this line${CRLF}Subject: x${CRLF}${CRLF}body`]) {
      const reply = await sendTo('user@scan.example', payload);
      const m = /^250 Ok ([0-9a-v]{40})$/.exec(reply);
      expect(m, reply).not.toBeNull();
      const n = await notificationOf(m![1]!);
      expect(ownFields(n, 4).map((h) => [h.name, h.name.startsWith('X-SES') ? h.value : 'ok'])).toEqual([
        ['Return-Path', 'ok'],
        ['Received', 'ok'],
        ['X-SES-Spam-Verdict', 'GRAY'],
        ['X-SES-Virus-Verdict', 'GRAY'],
      ]);
      const stored = await rawObject(backends.aws, BUCKET, `scan/${m![1]!}`);
      expect(stored.toString('latin1')).toContain(`X-SES-Virus-Verdict: GRAY${CRLF}${payload}${CRLF}`);
    }
  });
});
