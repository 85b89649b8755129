/**
 * Verdicts end to end: mail sent over SMTP to a gateway with authentication on, its resolver pointed at dnsmasq on
 * loopback, and real spamd and clamd scanning for a scan-enabled rule. For each case the stored header block and the
 * notification are checked field by field against docs/ses-format.md (header block, verdicts, authentication
 * results). Then the scanners and DNS are stopped: mail is still delivered, with PROCESSING_FAILED — and a message
 * whose verdicts were kept before keeps them through its retries.
 */
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivingConfigInput } from '../../shared/config/index.js';
import type { ReceivedNotification } from '../../shared/notification/index.js';
import { buildHeaderBlock, type HeaderBlockInput } from '../../shared/ses/header-block.js';
import { ACCOUNT, createBuckets, createTopicWithQueue, receiveSns, REGION, sendRaw, startBackends, startTestGateway, storedBytes, waitFor, type Backends } from '../gateway/helpers.js';
import { dkimKey, EICAR, EICAR_SIGNATURE, signWithDkimpy, signWithNodemailer, startClamd, startDns, startSpamd, type DkimKey, type Dns, type Scanner } from './support.js';

const HOST = 'mx.gateway.test';
const HELO = 'mail.client.test';
const PREFIX = 'vt';

let backends: Backends;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let topic: { topicArn: string; queueUrl: string };
let dns: Dns;
let spamd: Scanner;
let clamd: Scanner;
let nm: DkimKey;
let py: DkimKey;
const notifications = new Map<string, ReceivedNotification>();

function config(): ReceivingConfigInput {
  return {
    region: REGION,
    accountId: ACCOUNT,
    ruleSetName: 'verdicts',
    rules: [
      { name: 'scanned', recipients: ['support@example.com'], scanEnabled: true, s3Action: { bucketName: 'mail-v', topicArn: topic.topicArn } },
      { name: 'archive', recipients: ['example.com'], s3Action: { bucketName: 'mail-w' } },
      { name: 'late', recipients: ['late@example.org'], scanEnabled: true, s3Action: { bucketName: 'mail-late', topicArn: topic.topicArn } },
    ],
    gateway: {
      hostname: HOST,
      spoolDir: join(backends.dir.path, 'spool'),
      smtp: { port: 0, reverseDns: false },
      redis: { url: backends.redis.url, prefix: PREFIX },
      worker: { concurrency: 4, backoffBaseMs: 200, backoffMaxMs: 1000 },
      dns: { servers: [dns.server], timeoutMs: 500, tries: 1 },
      authentication: { enabled: true },
      scan: { spamd: { endpoint: spamd.endpoint, timeoutMs: 30_000 }, clamd: { endpoint: clamd.endpoint, timeoutMs: 30_000 } },
    },
  };
}

beforeAll(async () => {
  backends = await startBackends('mailroom-verdicts-e2e-', { motoEnv: true });
  nm = dkimKey('nm', 'signed.test');
  py = dkimKey('py', 'signed.test');
  [dns, spamd, clamd] = await Promise.all([
    startDns(backends.dir.path, {
      'spf-pass.test': 'v=spf1 ip4:127.0.0.1 -all',
      'spf-fail.test': 'v=spf1 ip4:192.0.2.1 -all',
      'spf-soft.test': 'v=spf1 ip4:192.0.2.1 ~all',
      'signed.test': 'v=spf1 ip4:127.0.0.1 -all',
      [`${nm.selector}._domainkey.signed.test`]: nm.record,
      [`${py.selector}._domainkey.signed.test`]: py.record,
      '_dmarc.signed.test': 'v=DMARC1; p=reject',
      '_dmarc.dmarc-quarantine.test': 'v=DMARC1; p=quarantine',
      '_dmarc.dmarc-none.test': 'v=DMARC1; p=none',
    }),
    startSpamd(join(backends.dir.path, 'spamd')),
    startClamd(join(backends.dir.path, 'clamd')),
  ]);
  await createBuckets(backends.aws, 'mail-v', 'mail-w');
  topic = await createTopicWithQueue(backends.aws, 'verdicts');
  gw = await startTestGateway(config());
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  await Promise.all([dns?.stop(), spamd?.stop(), clamd?.stop()]);
  await backends?.stop();
});

/** The notification for a message, from the one queue every notification goes to. */
async function notificationOf(messageId: string, timeoutMs = 60_000): Promise<ReceivedNotification> {
  return waitFor(
    `the notification of ${messageId}`,
    async () => {
      for (const env of await receiveSns(backends.aws, topic.queueUrl, 1, 1000)) {
        const n = JSON.parse(env.Message) as ReceivedNotification;
        notifications.set(n.mail.messageId, n);
      }
      return notifications.get(messageId);
    },
    timeoutMs,
    0,
  );
}

function plain(from: string, subject: string, body = 'Hello, see you at lunch tomorrow.\r\n', extra = ''): Buffer {
  return Buffer.from(`From: <${from}>\r\nTo: <support@example.com>\r\nSubject: ${subject}\r\nDate: Fri, 02 Jan 2026 03:04:05 +0000\r\nMessage-ID: <${subject.replace(/\W/g, '')}@client.test>\r\n${extra}\r\n${body}`);
}

interface Expected {
  spf: NonNullable<HeaderBlockInput['spf']>;
  dkim: NonNullable<HeaderBlockInput['dkim']>;
  dmarc?: HeaderBlockInput['dmarc'];
  scan: NonNullable<HeaderBlockInput['scan']>;
  verdicts: { spamVerdict: string; virusVerdict: string; spfVerdict: string; dkimVerdict: string; dmarcVerdict: string; dmarcPolicy?: string };
}

/** Sends `data`, then checks the stored block byte for byte and the notification's verdicts; returns both. */
async function deliveredAs(data: Buffer, mailFrom: string, expected: Expected): Promise<{ id: string; block: string; n: ReceivedNotification }> {
  const sent = await sendRaw(gw.port, { from: mailFrom, to: ['support@example.com'] }, data, { name: HELO });
  const id = sent.messageId;
  expect(id).not.toBe('');
  const n = await notificationOf(id);
  const block = buildHeaderBlock({
    mailFrom,
    helo: HELO,
    clientIp: '127.0.0.1',
    byHost: HOST,
    messageId: id,
    recipients: ['support@example.com'],
    receivedAt: new Date(n.mail.timestamp),
    scan: expected.scan,
    spf: expected.spf,
    dkim: expected.dkim,
    ...(expected.dmarc ? { dmarc: expected.dmarc } : {}),
  });
  const stored = await storedBytes(backends.aws, 'mail-v', id);
  expect(stored.body.subarray(0, Buffer.byteLength(block)).toString()).toBe(block);
  expect(stored.body.subarray(Buffer.byteLength(block)).equals(data)).toBe(true);
  const { spamVerdict, virusVerdict, spfVerdict, dkimVerdict, dmarcVerdict, dmarcPolicy } = n.receipt;
  expect({ spamVerdict: spamVerdict.status, virusVerdict: virusVerdict.status, spfVerdict: spfVerdict.status, dkimVerdict: dkimVerdict.status, dmarcVerdict: dmarcVerdict.status, ...(dmarcPolicy ? { dmarcPolicy } : {}) }).toEqual(expected.verdicts);
  // The notification's header list starts with the same block, SES's names in SES's order.
  expect(n.mail.headers.slice(0, 6).map((h) => h.name)).toEqual(['Return-Path', 'Received', 'X-SES-Spam-Verdict', 'X-SES-Virus-Verdict', 'Received-SPF', 'Authentication-Results']);
  return { id, block, n };
}

const CLEAN = { spam: 'PASS', virus: 'PASS' } as const;

describe('SPF, DKIM and DMARC in the header block and the notification', () => {
  it('DKIM by nodemailer: pass; SPF pass; DMARC pass — with the exact wording of each field', async () => {
    const data = await signWithNodemailer(nm, { from: 'a@signed.test', to: 'support@example.com', subject: 'signed by nodemailer', text: 'Hello, see you at lunch tomorrow.' });
    const { block, n } = await deliveredAs(data, 'a@signed.test', {
      spf: { result: 'pass', domain: 'signed.test' },
      dkim: [{ result: 'pass', domain: 'signed.test' }],
      dmarc: { result: 'pass', headerFrom: 'signed.test' },
      scan: CLEAN,
      verdicts: { spamVerdict: 'PASS', virusVerdict: 'PASS', spfVerdict: 'PASS', dkimVerdict: 'PASS', dmarcVerdict: 'PASS' },
    });
    const spf = 'pass (spfCheck: domain of signed.test designates 127.0.0.1 as permitted sender) client-ip=127.0.0.1; envelope-from=a@signed.test; helo=mail.client.test;';
    expect(block).toContain(`\r\nX-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\nReceived-SPF: ${spf}\r\n`);
    expect(block).toContain(`\r\nAuthentication-Results: ${HOST};\r\n spf=${spf}\r\n dkim=pass header.i=@signed.test;\r\n dmarc=pass header.from=signed.test;\r\n`);
    expect(block).not.toContain('amazonses.com');
    expect(n.mail.headers.find((h) => h.name === 'Authentication-Results')?.value).toBe(`${HOST}; spf=${spf} dkim=pass header.i=@signed.test; dmarc=pass header.from=signed.test;`);

    // The other rule's copy (no scanning) carries the same results, computed once for the message.
    const archived = (await storedBytes(backends.aws, 'mail-w', n.mail.messageId)).body.toString();
    expect(archived).not.toContain('X-SES-Spam-Verdict');
    expect(archived).toContain(`\r\nAuthentication-Results: ${HOST};\r\n spf=${spf}\r\n dkim=pass header.i=@signed.test;\r\n dmarc=pass header.from=signed.test;\r\n`);
  });

  it('DKIM by Python dkim (an independent signer): pass', async () => {
    const data = await signWithDkimpy(backends.dir.path, py, plain('a@signed.test', 'signed by python'));
    await deliveredAs(data, 'a@signed.test', {
      spf: { result: 'pass', domain: 'signed.test' },
      dkim: [{ result: 'pass', domain: 'signed.test' }],
      dmarc: { result: 'pass', headerFrom: 'signed.test' },
      scan: CLEAN,
      verdicts: { spamVerdict: 'PASS', virusVerdict: 'PASS', spfVerdict: 'PASS', dkimVerdict: 'PASS', dmarcVerdict: 'PASS' },
    });
  });

  it('a message big enough to stream from its own spool file (600 KB): DKIM by Python dkim passes and both scanners read it from the spool', async () => {
    const body = Array.from({ length: 9000 }, (_, i) => `Line ${i} of a long report, nothing to see here, just some words.`).join('\r\n') + '\r\n';
    const data = await signWithDkimpy(backends.dir.path, py, plain('a@signed.test', 'big signed', body));
    expect(data.length).toBeGreaterThan(256 * 1024);
    await deliveredAs(data, 'a@signed.test', {
      spf: { result: 'pass', domain: 'signed.test' },
      dkim: [{ result: 'pass', domain: 'signed.test' }],
      dmarc: { result: 'pass', headerFrom: 'signed.test' },
      scan: CLEAN,
      verdicts: { spamVerdict: 'PASS', virusVerdict: 'PASS', spfVerdict: 'PASS', dkimVerdict: 'PASS', dmarcVerdict: 'PASS' },
    });
  });

  it('a body changed after signing: dkim=fail (FAIL); DMARC fails under p=reject (FAIL, dmarcPolicy reject)', async () => {
    const signed = await signWithNodemailer(nm, { from: 'a@signed.test', to: 'support@example.com', subject: 'tampered', text: 'Please pay 10 EUR.' });
    const data = Buffer.from(signed.toString('latin1').replace('Please pay 10 EUR.', 'Please pay 99 EUR.'), 'latin1');
    // MAIL FROM of another domain: SPF passes for it, but only DKIM could align with From, and it failed.
    const { block } = await deliveredAs(data, 'a@spf-pass.test', {
      spf: { result: 'pass', domain: 'spf-pass.test' },
      dkim: [{ result: 'fail', domain: 'signed.test' }],
      dmarc: { result: 'fail', headerFrom: 'signed.test' },
      scan: CLEAN,
      verdicts: { spamVerdict: 'PASS', virusVerdict: 'PASS', spfVerdict: 'PASS', dkimVerdict: 'FAIL', dmarcVerdict: 'FAIL', dmarcPolicy: 'reject' },
    });
    expect(block).toContain('\r\n dkim=fail header.i=@signed.test;\r\n dmarc=fail header.from=signed.test;\r\n');
  });

  it('unsigned, SPF softfail, no DMARC record: dkim=none, spf=softfail, dmarc=none — all GRAY', async () => {
    const { block } = await deliveredAs(plain('a@spf-soft.test', 'softfail'), 'a@spf-soft.test', {
      spf: { result: 'softfail', domain: 'spf-soft.test' },
      dkim: [],
      dmarc: { result: 'none', headerFrom: 'spf-soft.test' },
      scan: CLEAN,
      verdicts: { spamVerdict: 'PASS', virusVerdict: 'PASS', spfVerdict: 'GRAY', dkimVerdict: 'GRAY', dmarcVerdict: 'GRAY' },
    });
    expect(block).toContain(
      'Received-SPF: softfail (spfCheck: domain of transitioning spf-soft.test does not designate 127.0.0.1 as permitted sender) client-ip=127.0.0.1; envelope-from=a@spf-soft.test; helo=mail.client.test;\r\n',
    );
    expect(block).toContain('\r\n dkim=none;\r\n dmarc=none header.from=spf-soft.test;\r\n');
  });

  it('SPF fail (FAIL) and DMARC quarantine (FAIL, dmarcPolicy quarantine)', async () => {
    const { block } = await deliveredAs(plain('a@dmarc-quarantine.test', 'quarantine'), 'a@spf-fail.test', {
      spf: { result: 'fail', domain: 'spf-fail.test' },
      dkim: [],
      dmarc: { result: 'fail', headerFrom: 'dmarc-quarantine.test' },
      scan: CLEAN,
      verdicts: { spamVerdict: 'PASS', virusVerdict: 'PASS', spfVerdict: 'FAIL', dkimVerdict: 'GRAY', dmarcVerdict: 'FAIL', dmarcPolicy: 'quarantine' },
    });
    expect(block).toContain('Received-SPF: fail (spfCheck: domain of spf-fail.test does not designate 127.0.0.1 as permitted sender) client-ip=127.0.0.1;');
  });

  it('SPF none (GRAY) and DMARC p=none (GRAY, dmarcPolicy none)', async () => {
    const { block } = await deliveredAs(plain('a@dmarc-none.test', 'policy none'), 'a@spf-none.test', {
      spf: { result: 'none', domain: 'spf-none.test' },
      dkim: [],
      dmarc: { result: 'fail', headerFrom: 'dmarc-none.test' },
      scan: CLEAN,
      verdicts: { spamVerdict: 'PASS', virusVerdict: 'PASS', spfVerdict: 'GRAY', dkimVerdict: 'GRAY', dmarcVerdict: 'GRAY', dmarcPolicy: 'none' },
    });
    expect(block).toContain('Received-SPF: none (spfCheck: domain of spf-none.test does not designate permitted sender hosts) client-ip=127.0.0.1;');
  });
});

describe('spam and virus scans with real spamd and clamd', () => {
  it('GTUBE: spam FAIL (X-SES-Spam-Verdict: FAIL, spamVerdict FAIL)', async () => {
    const data = plain('a@spf-pass.test', 'gtube', 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n');
    const { block } = await deliveredAs(data, 'a@spf-pass.test', {
      spf: { result: 'pass', domain: 'spf-pass.test' },
      dkim: [],
      dmarc: { result: 'none', headerFrom: 'spf-pass.test' },
      scan: { spam: 'FAIL', virus: 'PASS' },
      verdicts: { spamVerdict: 'FAIL', virusVerdict: 'PASS', spfVerdict: 'PASS', dkimVerdict: 'GRAY', dmarcVerdict: 'GRAY' },
    });
    expect(block).toContain('\r\nX-SES-Spam-Verdict: FAIL\r\nX-SES-Virus-Verdict: PASS\r\n');
  });

  it(`an attachment matching the test's signature (${EICAR_SIGNATURE}): virus FAIL`, async () => {
    const body = `--b\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=eicar.com\r\nContent-Transfer-Encoding: base64\r\n\r\n${Buffer.from(EICAR).toString('base64')}\r\n--b--\r\n`;
    const data = plain('a@spf-pass.test', 'eicar', body, 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n');
    const { block } = await deliveredAs(data, 'a@spf-pass.test', {
      spf: { result: 'pass', domain: 'spf-pass.test' },
      dkim: [],
      dmarc: { result: 'none', headerFrom: 'spf-pass.test' },
      scan: { spam: 'PASS', virus: 'FAIL' },
      verdicts: { spamVerdict: 'PASS', virusVerdict: 'FAIL', spfVerdict: 'PASS', dkimVerdict: 'GRAY', dmarcVerdict: 'GRAY' },
    });
    expect(block).toContain('\r\nX-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: FAIL\r\n');
  });
});

describe('when DNS and the scanners are gone', () => {
  it('mail is still delivered with PROCESSING_FAILED; a message whose verdicts were kept keeps them through its retries', async () => {
    const redis = new Redis(backends.redis.url);
    try {
      // The 'late' rule's bucket does not exist yet: its delivery computes and keeps the verdicts, then fails and retries.
      const early = await signWithNodemailer(nm, { from: 'a@signed.test', to: 'late@example.org', subject: 'kept verdicts', text: 'Hello, see you at lunch tomorrow.' });
      const sent = await sendRaw(gw.port, { from: 'a@signed.test', to: ['late@example.org'] }, early, { name: HELO });
      const id = sent.messageId;
      const key = await waitFor('its verdicts kept in Redis', async () => {
        for (const k of await redis.keys(`${PREFIX}:node:*:verdicts:*`)) if (await redis.hexists(k, id)) return k;
        return undefined;
      });
      const kept = JSON.parse((await redis.hget(key, id))!) as { auth: { spf: { result: string }; dkim: Array<{ result: string }> }; scan: { spam: string; virus: string } };
      expect(kept.auth.spf.result).toBe('pass');
      expect(kept.auth.dkim).toEqual([{ result: 'pass', domain: 'signed.test' }]);
      expect(kept.scan).toEqual({ spam: 'clean', virus: 'clean' });
      expect(await redis.ttl(key)).toBeGreaterThan(29 * 24 * 3600);

      await Promise.all([dns.stop(), spamd.stop(), clamd.stop()]);

      // A new message (from domains no answer is cached for): every check fails, and it is delivered all the same.
      const { block } = await deliveredAs(plain('b@fresh.test', 'all down'), 'b@fresh.test', {
        spf: { result: 'temperror', domain: 'fresh.test' },
        dkim: [],
        dmarc: { result: 'temperror', headerFrom: 'fresh.test' },
        scan: { spam: 'PROCESSING_FAILED', virus: 'PROCESSING_FAILED' },
        verdicts: { spamVerdict: 'PROCESSING_FAILED', virusVerdict: 'PROCESSING_FAILED', spfVerdict: 'PROCESSING_FAILED', dkimVerdict: 'GRAY', dmarcVerdict: 'PROCESSING_FAILED' },
      });
      expect(block).toContain('Received-SPF: temperror (spfCheck: temporary error in processing during lookup of fresh.test) client-ip=127.0.0.1;');

      // Now the bucket: the retry stores what the first attempt computed, not what DNS and the scanners say now.
      await createBuckets(backends.aws, 'mail-late');
      const n = await notificationOf(id);
      expect([n.receipt.spfVerdict.status, n.receipt.dkimVerdict.status, n.receipt.dmarcVerdict.status, n.receipt.spamVerdict.status, n.receipt.virusVerdict.status]).toEqual(['PASS', 'PASS', 'PASS', 'PASS', 'PASS']);
      const stored = (await storedBytes(backends.aws, 'mail-late', id)).body.toString();
      expect(stored).toContain('\r\nX-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\nReceived-SPF: pass (spfCheck: domain of signed.test designates 127.0.0.1 as permitted sender)');
      expect(stored).toContain(' dkim=pass header.i=@signed.test;\r\n dmarc=pass header.from=signed.test;\r\n');
      // Released with its spool file.
      await waitFor('its verdicts dropped with the spool file', async () => (await redis.exists(key)) === 0, 30_000);
    } finally {
      redis.disconnect();
    }
  }, 120_000);
});
