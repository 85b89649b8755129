/**
 * The verdicts' resolver and authentication against a real DNS server on loopback (dnsmasq with the test's records):
 * caching, deadlines, and SPF, DKIM (signed by nodemailer and by Python's dkim) and DMARC results with the SES
 * verdicts they give (docs/ses-format.md#verdicts).
 */
import { createHash } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dkimVerdict, dmarcVerdict, spfVerdict } from '../../shared/ses/verdicts.js';
import { authenticateMessage, MAX_KEY_LOOKUPS } from '../../gateway/verdicts/auth.js';
import { CachingResolver } from '../../gateway/verdicts/dns.js';
import { tempDir } from '../support/files.js';
import { dkimKey, signWithDkimpy, signWithNodemailer, startDns, type DkimKey, type Dns } from './support.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
let dns: Dns;
let silent: Socket;
let nm: DkimKey;
let py: DkimKey;

const settings = (servers: string[], over: Partial<ConstructorParameters<typeof CachingResolver>[0]> = {}) => ({ servers, timeoutMs: 300, tries: 1, cacheSize: 100, cacheTtlMs: 60_000, ...over });

beforeAll(async () => {
  dir = await tempDir('mailroom-verdicts-dns-');
  nm = dkimKey('nm', 'signed.test');
  py = dkimKey('py', 'signed.test');
  dns = await startDns(dir.path, {
    'spf-pass.test': 'v=spf1 ip4:127.0.0.1 -all',
    'spf-fail.test': 'v=spf1 ip4:192.0.2.1 -all',
    'spf-soft.test': 'v=spf1 ip4:192.0.2.1 ~all',
    'helo.test': 'v=spf1 ip4:127.0.0.1 -all',
    'signed.test': 'v=spf1 ip4:192.0.2.1 -all',
    [`${nm.selector}._domainkey.signed.test`]: nm.record,
    [`${py.selector}._domainkey.signed.test`]: py.record,
    '_dmarc.signed.test': 'v=DMARC1; p=reject',
    '_dmarc.dmarc-reject.test': 'v=DMARC1; p=reject',
    '_dmarc.dmarc-quarantine.test': 'v=DMARC1; p=quarantine',
    '_dmarc.dmarc-none.test': 'v=DMARC1; p=none',
    '_dmarc.spf-pass.test': 'v=DMARC1; p=reject',
  });
  // A DNS server that never answers: every query to it times out.
  silent = createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
}, 60_000);

afterAll(async () => {
  silent?.close();
  await dns?.stop();
  await dir?.remove();
});

describe('CachingResolver', () => {
  it('answers from the configured server, then from its cache; "no such name" is cached too', async () => {
    const r = new CachingResolver(settings([dns.server]));
    expect(await r.query('spf-pass.test', 'TXT')).toEqual([['v=spf1 ip4:127.0.0.1 -all']]);
    expect(await r.query('SPF-PASS.test.', 'TXT')).toEqual([['v=spf1 ip4:127.0.0.1 -all']]);
    await expect(r.query('nothing.test', 'TXT')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(r.query('nothing.test', 'TXT')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(r.sent).toBe(2);
    // A long record comes back in its 255-byte strings, which the checks join.
    const key = (await r.query(`${nm.selector}._domainkey.signed.test`, 'TXT')) as string[][];
    expect(key[0]!.join('')).toBe(nm.record);
    // Each caller gets its own copy.
    const a = (await r.query('spf-pass.test', 'TXT')) as string[][];
    a[0]![0] = 'changed';
    expect(await r.query('spf-pass.test', 'TXT')).toEqual([['v=spf1 ip4:127.0.0.1 -all']]);
  });

  it('keeps at most cacheSize answers, least recently used out first; cacheSize 0 keeps none', async () => {
    const r = new CachingResolver(settings([dns.server], { cacheSize: 2 }));
    await r.query('spf-pass.test', 'TXT');
    await r.query('spf-fail.test', 'TXT');
    await r.query('spf-pass.test', 'TXT'); // used again: now the most recent
    await r.query('spf-soft.test', 'TXT'); // drops spf-fail
    expect(r.cached).toBe(2);
    const sent = r.sent;
    await r.query('spf-pass.test', 'TXT');
    expect(r.sent).toBe(sent);
    await r.query('spf-fail.test', 'TXT');
    expect(r.sent).toBe(sent + 1);

    const none = new CachingResolver(settings([dns.server], { cacheSize: 0 }));
    await none.query('spf-pass.test', 'TXT');
    await none.query('spf-pass.test', 'TXT');
    expect(none.sent).toBe(2);
    expect(none.cached).toBe(0);
  });

  it('a server that does not answer: ETIMEOUT within timeoutMs × tries; after 5 in a row, queries fail at once', async () => {
    const port = silent.address().port;
    const r = new CachingResolver(settings([`127.0.0.1:${port}`], { timeoutMs: 200, tries: 2 }));
    const t = Date.now();
    await expect(r.query('a.test', 'TXT')).rejects.toMatchObject({ code: 'ETIMEOUT' });
    expect(Date.now() - t).toBeLessThan(1500);
    for (const n of ['b', 'c', 'd', 'e']) await expect(r.query(`${n}.test`, 'TXT')).rejects.toMatchObject({ code: 'ETIMEOUT' });
    const sent = r.sent;
    const f = Date.now();
    await expect(r.query('f.test', 'TXT')).rejects.toMatchObject({ code: 'ETIMEOUT' });
    expect(Date.now() - f).toBeLessThan(50);
    expect(r.sent).toBe(sent);
  });
});

function plain(from: string, subject: string, body = 'Hello.\r\n'): Buffer {
  return Buffer.from(`From: <${from}>\r\nTo: <support@example.com>\r\nSubject: ${subject}\r\nDate: Fri, 02 Jan 2026 03:04:05 +0000\r\nMessage-ID: <${subject.replace(/\W/g, '')}@test>\r\n\r\n${body}`);
}

describe('authenticateMessage through the gateway resolver', () => {
  const resolve = () => new CachingResolver(settings([dns.server])).resolve;
  const client = { helo: 'mail.client.test', clientIp: '127.0.0.1' };

  it('DKIM signed by nodemailer and by Python dkim: pass, PASS, and DMARC passes on the aligned signature', async () => {
    const byNodemailer = await signWithNodemailer(nm, { from: 'a@signed.test', to: 'support@example.com', subject: 'nodemailer signed', text: 'Hello from nodemailer.' });
    const byPython = await signWithDkimpy(dir.path, py, plain('a@signed.test', 'python signed'));
    expect(byPython.toString()).toMatch(/^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/simple; d=signed\.test;\r\n i=@signed\.test; q=dns\/txt; s=py;/);
    for (const message of [byNodemailer, byPython]) {
      const r = await authenticateMessage(message, { mailFrom: 'a@signed.test', ...client }, resolve());
      expect(r.dkim).toEqual([{ result: 'pass', domain: 'signed.test' }]);
      expect(dkimVerdict(r.dkim.map((d) => d.result))).toBe('PASS');
      // SPF of signed.test does not list 127.0.0.1, DKIM alone makes DMARC pass.
      expect(r.spf).toEqual({ result: 'fail', domain: 'signed.test', envelopeFrom: 'a@signed.test' });
      expect(r.dmarc).toEqual({ result: 'pass', headerFrom: 'signed.test', policy: 'reject' });
      expect(dmarcVerdict(r.dmarc!.result, r.dmarc!.policy)).toEqual({ status: 'PASS' });
    }
  });

  it('a body changed after signing: fail, FAIL; DMARC then fails under p=reject', async () => {
    for (const signed of [
      await signWithNodemailer(nm, { from: 'a@signed.test', to: 'support@example.com', subject: 'tampered', text: 'Pay 10 EUR.' }),
      await signWithDkimpy(dir.path, py, plain('a@signed.test', 'tampered python', 'Pay 10 EUR.\r\n')),
    ]) {
      const tampered = Buffer.from(signed.toString('latin1').replace('Pay 10 EUR.', 'Pay 99 EUR.'), 'latin1');
      const r = await authenticateMessage(tampered, { mailFrom: 'a@signed.test', ...client }, resolve());
      expect(r.dkim).toEqual([{ result: 'fail', domain: 'signed.test' }]);
      expect(dkimVerdict(r.dkim.map((d) => d.result))).toBe('FAIL');
      expect(r.dmarc).toEqual({ result: 'fail', headerFrom: 'signed.test', policy: 'reject' });
      expect(dmarcVerdict(r.dmarc!.result, r.dmarc!.policy)).toEqual({ status: 'FAIL', policy: 'reject' });
    }
  });

  it('unsigned: no DKIM result (written dkim=none), GRAY', async () => {
    const r = await authenticateMessage(plain('a@spf-pass.test', 'unsigned'), { mailFrom: 'a@spf-pass.test', ...client }, resolve());
    expect(r.dkim).toEqual([]);
    expect(dkimVerdict([])).toBe('GRAY');
  });

  it('SPF pass, fail, softfail and none, with their SES verdicts', async () => {
    const cases = [
      ['spf-pass.test', 'pass', 'PASS'],
      ['spf-fail.test', 'fail', 'FAIL'],
      ['spf-soft.test', 'softfail', 'GRAY'],
      ['spf-none.test', 'none', 'GRAY'],
    ] as const;
    for (const [domain, result, verdict] of cases) {
      const r = await authenticateMessage(plain(`a@${domain}`, domain), { mailFrom: `a@${domain}`, ...client }, resolve());
      expect(r.spf).toEqual({ result, domain, envelopeFrom: `a@${domain}` });
      expect(spfVerdict(r.spf!.result)).toBe(verdict);
    }
    // The null reverse-path: SPF checks postmaster@<HELO>.
    const bounce = await authenticateMessage(plain('mailer-daemon@helo.test', 'bounce'), { mailFrom: '', helo: 'helo.test', clientIp: '127.0.0.1' }, resolve());
    expect(bounce.spf).toEqual({ result: 'pass', domain: 'helo.test', envelopeFrom: 'postmaster@helo.test' });
  });

  it('DMARC reject, quarantine and none for an unaligned message; SPF alignment passes it', async () => {
    const cases = [
      ['dmarc-reject.test', { status: 'FAIL', policy: 'reject' }],
      ['dmarc-quarantine.test', { status: 'FAIL', policy: 'quarantine' }],
      ['dmarc-none.test', { status: 'GRAY', policy: 'none' }],
      ['no-dmarc.test', { status: 'GRAY' }],
    ] as const;
    for (const [domain, verdict] of cases) {
      // MAIL FROM passes SPF, but for another domain than From: nothing aligned.
      const r = await authenticateMessage(plain(`a@${domain}`, domain), { mailFrom: 'a@spf-pass.test', ...client }, resolve());
      expect(r.spf?.result).toBe('pass');
      expect(r.dmarc?.headerFrom).toBe(domain);
      expect(dmarcVerdict(r.dmarc!.result, r.dmarc!.policy)).toEqual(verdict);
    }
    const aligned = await authenticateMessage(plain('a@spf-pass.test', 'aligned'), { mailFrom: 'a@spf-pass.test', ...client }, resolve());
    expect(aligned.dmarc).toEqual({ result: 'pass', headerFrom: 'spf-pass.test', policy: 'reject' });
  });

  it('a message without an SMTP client (replay) gets no SPF result; DKIM and DMARC still run', async () => {
    const signed = await signWithNodemailer(nm, { from: 'a@signed.test', to: 'support@example.com', subject: 'replayed', text: 'From an archive.' });
    const r = await authenticateMessage(signed, { mailFrom: 'a@signed.test' }, resolve());
    expect(r.spf).toBeUndefined();
    expect(spfVerdict(undefined)).toBe('GRAY');
    expect(r.dkim).toEqual([{ result: 'pass', domain: 'signed.test' }]);
    expect(r.dmarc?.result).toBe('pass');
  });

  it('DNS down: temperror everywhere, PROCESSING_FAILED', async () => {
    const port = silent.address().port;
    const down = new CachingResolver(settings([`127.0.0.1:${port}`], { timeoutMs: 100, tries: 1 })).resolve;
    const signed = await signWithNodemailer(nm, { from: 'a@signed.test', to: 'support@example.com', subject: 'dns down', text: 'x' });
    const r = await authenticateMessage(signed, { mailFrom: 'a@signed.test', ...client }, down);
    expect(r.spf?.result).toBe('temperror');
    expect(r.dkim).toEqual([{ result: 'temperror', domain: 'signed.test' }]);
    expect(r.dmarc?.result).toBe('temperror');
    expect([spfVerdict(r.spf!.result), dkimVerdict(['temperror']), dmarcVerdict('temperror', undefined).status]).toEqual(['PROCESSING_FAILED', 'PROCESSING_FAILED', 'PROCESSING_FAILED']);
  });

  it(`looks up at most ${MAX_KEY_LOOKUPS} keys for one message, however many signatures it carries`, async () => {
    const r = new CachingResolver(settings([dns.server]));
    // The right body hash, so that each signature gets as far as its key.
    const bh = createHash('sha256').update('Hello.\r\n').digest('base64');
    const sigs = Array.from({ length: 30 }, (_, i) => `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=many${i}.test; s=s; h=from; bh=${bh}; b=AAAA\r\n`).join('');
    const res = await authenticateMessage(Buffer.concat([Buffer.from(sigs), plain('a@spf-pass.test', 'many')]), { mailFrom: 'a@spf-pass.test', ...client }, r.resolve);
    expect(res.dkim).toHaveLength(30);
    expect(res.dkim.every((d) => d.result === 'permerror')).toBe(true);
    // 10 key lookups + SPF's and DMARC's own.
    expect(r.sent).toBeLessThanOrEqual(MAX_KEY_LOOKUPS + 4);
  });
});
