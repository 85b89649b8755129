/**
 * `mailroom load smtp` against small SMTP targets on loopback: the open loop keeps its schedule when replies are
 * slow, refusals and timeouts land in their error classes and the run still ends on time, STARTTLS and AUTH work
 * with the password kept off the command line, and what a bad argument or a remote target gets.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/files.js';
import { selfSignedCert } from '../gateway/helpers.js';
import { parseSmtpOptions, parseUploadOptions } from '../../load/options.js';
import { loadCli, smtpError, startTarget, type Target } from './helpers.js';

const TO = ['--to', 'user@example.com'];

describe('open loop', () => {
  let target: Target;
  beforeAll(async () => (target = await startTarget({ delayMs: 400, server: { closeTimeout: 1000 } })));
  afterAll(async () => target?.close());

  it('--rate starts messages on its schedule when every reply takes 400 ms, and measures from when each was due', async () => {
    const rate = 40;
    const r = await loadCli(['smtp', '--target', `127.0.0.1:${target.port}`, ...TO, '--rate', String(rate), '--duration', '2s', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = r.json!;
    expect(j.counts.scheduled).toBe(80);
    expect(j.counts.accepted).toBe(80);
    expect(j.counts.failed).toBe(0);
    // At the server: a MAIL FROM every 25 ms, not one per reply (a closed loop of 20 would do 50 a second at most,
    // and then only after the first replies).
    const at = target.mailFrom.map((e) => e.at);
    expect(at).toHaveLength(80);
    const span = at[at.length - 1]! - at[0]!;
    const offsets = at.map((t, i) => (t - at[0]! - i * (1000 / rate)).toFixed(0)).join(' ');
    expect(span, offsets).toBeGreaterThan(1_975 - 400);
    expect(span, offsets).toBeLessThan(1_975 + 400);
    // Each arrival against the schedule, anchored at the median offset: a stall of the machine (or of this test
    // process, which runs the target) may bunch a few, but the schedule does not drift with the replies.
    const late = at.map((t, i) => t - at[0]! - i * (1000 / rate));
    const median = [...late].sort((a, b) => a - b)[40]!;
    const off = late.map((x) => Math.abs(x - median)).sort((a, b) => a - b);
    expect(off[Math.floor(off.length * 0.9)], offsets).toBeLessThan(100);
    expect(j.timeline.sent.slice(0, 2)).toEqual([40, 40]);
    // Every message waited the 400 ms; the response (from its due time) includes it; percentiles in order.
    for (const l of [j.latency.accept!, j.latency.response!]) {
      expect(l.count).toBe(80);
      expect(l.min).toBeGreaterThanOrEqual(390);
      expect(l.p50).toBeLessThanOrEqual(l.p99);
      expect(l.p99).toBeLessThanOrEqual(l.max);
    }
    expect(j.latency.response!.p50).toBeGreaterThanOrEqual(j.latency.accept!.p50);
    expect(j.seconds.run).toBeLessThan(2 + 0.4 + 2);
  });

  it('a closed loop under the same replies is held to concurrency / reply time — what the open loop must not be', async () => {
    const before = target.mailFrom.length;
    const r = await loadCli(['smtp', '--target', `127.0.0.1:${target.port}`, ...TO, '--concurrency', '4', '--duration', '2s', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const sent = target.mailFrom.length - before;
    expect(sent).toBe(r.json!.counts.sent);
    expect(sent).toBeLessThanOrEqual(4 * Math.ceil(2 / 0.4) + 4);
    expect(r.json!.latency.response).toBeUndefined();
  });
});

describe('error classes, and the run ends on time', () => {
  let target: Target;
  beforeAll(
    async () =>
      (target = await startTarget({
        server: { closeTimeout: 500 },
        rcpt: (a) => (a.startsWith('nobody@') ? smtpError(550, '5.1.1 <nobody@example.com>: no such user here') : undefined),
        // every third message: 451 (a gateway that cannot queue); every fifth: 554; one in seven never answered
        reply: (n) => (n % 7 === 6 ? 'hang' : n % 3 === 2 ? smtpError(451, '4.3.0 Temporary failure, try again later') : n % 5 === 4 ? smtpError(554, '5.6.0 Message refused') : undefined),
      })),
  );
  afterAll(async () => target?.close());

  it('451 and 554 by their codes, a refused recipient, a reply that never comes as a timeout', async () => {
    const r = await loadCli(['smtp', '--target', `127.0.0.1:${target.port}`, '--to', 'user@example.com', '--to', 'nobody@example.com', '--concurrency', '6', '--duration', '3s', '--timeout', '1s', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = r.json!;
    const kind = (cls: string, code: string) => j.errors.list.find((e) => e.class === cls && e.code === code);
    expect(kind('smtp-4xx', '451 4.3.0')?.count).toBeGreaterThan(0);
    expect(kind('smtp-4xx', '451 4.3.0')?.stage).toBe('DATA');
    expect(kind('smtp-5xx', '554 5.6.0')?.count).toBeGreaterThan(0);
    expect(kind('smtp-5xx', '550 5.1.1')?.stage).toBe('RCPT TO');
    // Refused recipients are counted in the messages that were accepted (nodemailer reports them with the success).
    expect(kind('smtp-5xx', '550 5.1.1')?.count).toBe(j.counts.accepted);
    expect(kind('timeout', 'DATA')?.count).toBeGreaterThan(0);
    expect(j.errors.byClass['smtp-4xx']).toBe(kind('smtp-4xx', '451 4.3.0')!.count);
    expect(j.counts.failed).toBe((j.errors.byClass['smtp-4xx'] ?? 0) + (j.errors.byClass['smtp-5xx'] ?? 0) - kind('smtp-5xx', '550 5.1.1')!.count + (j.errors.byClass.timeout ?? 0));
    expect(j.counts.recipientsRefused).toBe(kind('smtp-5xx', '550 5.1.1')!.count);
    expect(Object.values(j.timeline.errors).flat().reduce((a, b) => a + b, 0)).toBe(j.errors.total);
    // 3 s of sending, then at most the 1 s timeout for what is in flight.
    expect(j.seconds.run).toBeLessThan(3 + 1 + 1.5);
  });

  it('an open loop against a server that stops answering ends one timeout after the last message was due', async () => {
    const hang = await startTarget({ server: { closeTimeout: 500 }, reply: () => 'hang' });
    try {
      const r = await loadCli(['smtp', '--target', `127.0.0.1:${hang.port}`, ...TO, '--rate', '50', '--connections', '5', '--duration', '2s', '--timeout', '1500ms', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const j = r.json!;
      expect(j.counts.accepted).toBe(0);
      expect(j.errors.byClass.timeout).toBe(j.counts.failed);
      expect(j.counts.failed).toBeGreaterThan(0);
      // Five connections each held for 1.5 s: most of the 100 due messages never found one free.
      expect(j.counts.unsent).toBeGreaterThan(50);
      expect(j.counts.sent + j.counts.unsent).toBe(j.counts.scheduled);
      expect(j.seconds.run).toBeLessThan(2 + 1.5 + 2);
    } finally {
      await hang.close();
    }
  });
});

describe('TLS and AUTH', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let target: Target;
  let cert: { certFile: string; keyFile: string };
  beforeAll(async () => {
    dir = await tempDir('mailroom-load-tls-');
    cert = await selfSignedCert(dir.path, { cn: 'localhost', altNames: 'IP:127.0.0.1' });
    const { readFile } = await import('node:fs/promises');
    target = await startTarget({
      server: {
        closeTimeout: 500,
        disabledCommands: [],
        key: await readFile(cert.keyFile),
        cert: await readFile(cert.certFile),
        authMethods: ['PLAIN', 'LOGIN'],
        onAuth(auth, _session, cb) {
          if (auth.username === 'relay1' && auth.password === 's3cret pass') return cb(null, { user: 'relay1' });
          cb(smtpError(535, '5.7.8 Authentication credentials invalid'));
        },
      },
    });
  });
  afterAll(async () => {
    await target?.close();
    await dir?.remove();
  });

  it('STARTTLS with the CA given, AUTH with the password from MAILROOM_LOAD_PASSWORD; the password is in no argument', async () => {
    const r = await loadCli(['smtp', '--target', `127.0.0.1:${target.port}`, ...TO, '--tls', 'starttls', '--ca', cert.certFile, '--auth', 'relay1', '--count', '20', '--concurrency', '2', '--json'], { env: { MAILROOM_LOAD_PASSWORD: 's3cret pass' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json!.counts.accepted).toBe(20);
    const seen = target.mailFrom.slice(-20);
    expect(seen.every((e) => e.secure && e.user === 'relay1')).toBe(true);
    expect(JSON.stringify(r.json)).not.toContain('s3cret');
    expect(r.stderr).not.toContain('s3cret');
  });

  it('the password from stdin', async () => {
    const r = await loadCli(['smtp', '--target', `127.0.0.1:${target.port}`, ...TO, '--tls', 'starttls', '--tls-insecure', '--auth', 'relay1', '--count', '3', '--json'], { env: { MAILROOM_LOAD_PASSWORD: undefined }, stdin: 's3cret pass\n' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json!.counts.accepted).toBe(3);
  });

  it('a wrong password stops the run before it starts, naming --auth and where the password comes from', async () => {
    const r = await loadCli(['smtp', '--target', `127.0.0.1:${target.port}`, ...TO, '--tls', 'starttls', '--tls-insecure', '--auth', 'relay1', '--count', '3'], { env: { MAILROOM_LOAD_PASSWORD: 'wrong' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/535 5\.7\.8/);
    expect(r.stderr).toMatch(/--auth relay1 and the password in MAILROOM_LOAD_PASSWORD/);
  });

  it('an untrusted certificate is refused unless --ca or --tls-insecure says otherwise', async () => {
    const r = await loadCli(['smtp', '--target', `127.0.0.1:${target.port}`, ...TO, '--tls', 'starttls', '--count', '3']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--tls .*--ca.*--tls-insecure/);
  });
});

describe('the command line', () => {
  it('refuses a target outside loopback without --allow-remote, before sending anything', async () => {
    const r = await loadCli(['smtp', '--target', '192.0.2.10:25', ...TO, '--count', '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/192\.0\.2\.10:25 is not on this machine.*--allow-remote/);
  });

  it('refuses an upload to AWS itself, or to an endpoint off this machine, without --allow-remote', async () => {
    const dir = await tempDir('mailroom-load-remote-');
    try {
      const file = join(dir.path, 'c.json');
      await writeFile(file, JSON.stringify({ region: 'us-east-1', accountId: '123456789012', ruleSetName: 'r', rules: [{ name: 'in', recipients: ['example.com'], s3Action: { bucketName: 'load-mail', topicArn: 'arn:aws:sns:us-east-1:123456789012:t' } }] }));
      const clean = { AWS_ENDPOINT_URL: undefined, AWS_ENDPOINT_URL_S3: undefined, AWS_ENDPOINT_URL_SNS: undefined, AWS_ENDPOINT_URL_KMS: undefined, AWS_REGION: 'us-east-1' };
      const aws = await loadCli(['upload', '--config', file, '--count', '1'], { env: clean });
      expect(aws.code).toBe(1);
      expect(aws.stderr).toMatch(/the upload would go to S3: AWS itself .*; SNS: AWS itself .*--allow-remote/);
      const off = await loadCli(['upload', '--config', file, '--count', '1'], { env: { ...clean, AWS_ENDPOINT_URL: 'http://192.0.2.7:4566' } });
      expect(off.code).toBe(1);
      expect(off.stderr).toMatch(/S3: http:\/\/192\.0\.2\.7:4566; SNS: http:\/\/192\.0\.2\.7:4566\. .*--allow-remote/);
    } finally {
      await dir.remove();
    }
  });

  it('says which flag is wrong and how to write it', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--rate', '10', '--concurrency', '5'], /--rate and --concurrency are two load shapes; give one/],
      [['--auth', 'relay1:secret'], /--auth takes the user name only .* never from a flag/],
      [['--size', '10'], /--size 10 is outside 1KB…40MB/],
      [['--size', 'big'], /--size "big" is not a size; write e\.g\. --size 10KB/],
      [['--duration', 'soon'], /--duration "soon" is not a duration; write e\.g\. --duration 30s/],
      [['--count', '1.5'], /--count "1.5" is not a whole number from 1/],
      [['--rate', '0'], /--rate "0" is not a rate in messages per second greater than 0/],
      [['--mix', 'heavy'], /--mix "heavy" is not a known mix; write --mix realistic/],
      [['--size', '10KB', '--mix', 'realistic'], /--size and --mix both set the message sizes; give one/],
      [['--tls', 'yes'], /--tls "yes" is not a TLS mode; write --tls starttls .* or --tls implicit/],
      [['--ca', 'ca.pem'], /--ca only applies with --tls starttls or --tls implicit/],
      [['--connections', '5'], /--connections applies to --rate/],
      [['--password', 'x'], /Unknown option '--password'/],
    ];
    for (const [args, re] of cases) expect(() => parseSmtpOptions(['--target', '127.0.0.1:2525', ...TO, ...args]), args.join(' ')).toThrow(re);
    expect(() => parseSmtpOptions(['--target', 'localhost', ...TO])).toThrow(/--target "localhost" is not HOST:PORT; write e\.g\. --target 127\.0\.0\.1:2525/);
    expect(() => parseSmtpOptions(['--target', '127.0.0.1:2525'])).toThrow(/no recipients: give --to ADDR .* or --config <file>/);
    expect(() => parseUploadOptions([], {})).toThrow(/--config is required/);
    expect(parseSmtpOptions(['--target', '[::1]:2525', ...TO]).target).toEqual({ host: '::1', port: 2525 });
    const d = parseSmtpOptions(['--target', '127.0.0.1:2525', ...TO]);
    expect([d.shape, d.durationMs, d.count, d.size]).toEqual([{ kind: 'closed', concurrency: 20 }, 60_000, undefined, { kind: 'fixed', bytes: 10240 }]);
    // As the command prints it: the flag's problem, then the usage; exit 2.
    const r = await loadCli(['smtp', '--target', '127.0.0.1:2525', ...TO, '--rate', '10', '--concurrency', '5']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^mailroom load: --rate and --concurrency are two load shapes[^]*usage: mailroom load smtp/);
    const report = await loadCli(['smtp', '--target', '127.0.0.1:2525', ...TO, '--report', join('/nonexistent-dir', 'r.html')]);
    expect(report.code).toBe(2);
    expect(report.stderr).toMatch(/--report .*cannot write into \/nonexistent-dir/);
  });
});
