/**
 * Real DNS, spamd and clamd for the verdict tests, each started on loopback by the test and stopped by it:
 * dnsmasq answering only the test's records (everything else under .test is NXDOMAIN), SpamAssassin's spamd with
 * Debian's rules (GTUBE among them), clamd with a one-signature database the test writes (no download works here).
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createTransport } from 'nodemailer';
import { freePort } from '../support/ports.js';
import { startProcess, type Started } from '../support/process.js';
import { waitFor } from '../gateway/helpers.js';

const run = promisify(execFile);

export interface Dns {
  /** `127.0.0.1:<port>`, for gateway.dns.servers. */
  server: string;
  port: number;
  stop(): Promise<void>;
}

/** TXT strings are at most 255 bytes each (RFC 1035); a longer record (a DKIM key) is split, resolvers join them. */
function txtStrings(value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) parts.push(JSON.stringify(value.slice(i, i + 255)));
  return parts.join(',');
}

/** dnsmasq on a free loopback port, authoritative-like for `local` (`.test`): the given TXT records, NXDOMAIN for the rest. */
export async function startDns(dir: string, txt: Record<string, string>, local: readonly string[] = ['test']): Promise<Dns> {
  const port = await freePort();
  const conf = join(dir, 'dnsmasq.conf');
  await writeFile(
    conf,
    ['no-resolv', 'no-hosts', 'no-poll', 'bind-interfaces', 'listen-address=127.0.0.1', `port=${port}`, ...local.map((d) => `local=/${d}/`), 'cache-size=0', ...Object.entries(txt).map(([name, value]) => `txt-record=${name},${txtStrings(value)}`), ''].join('\n'),
  );
  const proc = startProcess('dnsmasq', ['--keep-in-foreground', `--conf-file=${conf}`, '--pid-file', '--user=root', '--log-facility=-']);
  const { Resolver } = (await import('node:dns')).promises;
  const probe = new Resolver({ timeout: 200, tries: 1 });
  probe.setServers([`127.0.0.1:${port}`]);
  await ready('dnsmasq answering', proc, async () => probe.resolveTxt(`probe.${local[0] ?? 'test'}`).then(() => true, (e: NodeJS.ErrnoException) => e.code === 'ENOTFOUND' || (proc.child.exitCode !== null ? Promise.reject(new Error(proc.output())) : false)), 10_000, 100);
  return { server: `127.0.0.1:${port}`, port, stop: () => proc.stop() };
}

export interface Scanner {
  endpoint: string;
  stop(): Promise<void>;
  output(): string;
}

/** SpamAssassin's spamd on a free loopback port: Debian's rules, local tests only (-L), one child. */
export async function startSpamd(dir: string): Promise<Scanner> {
  const port = await freePort();
  await mkdir(dir, { recursive: true });
  const proc: Started = startProcess('spamd', [`--listen=127.0.0.1:${port}`, '-u', 'nobody', '-x', '-L', '--max-children=1', '--min-children=1', `--pidfile=${join(dir, 'spamd.pid')}`, '-s', 'stderr']);
  await ready('spamd answering PING', proc, () => ping(port, 'PING SPAMC/1.5\r\n\r\n', /PONG/, proc), 60_000, 200);
  return { endpoint: `127.0.0.1:${port}`, stop: () => proc.stop(), output: () => proc.output() };
}

/**
 * rspamd's normal worker on a free loopback port, from a config of the test's own: no modules' DNS (a resolver that is
 * not there), console logging, the actions' thresholds. GTUBE is rspamd's own (a reject), whatever the modules.
 */
export async function startRspamd(dir: string): Promise<Scanner> {
  const port = await freePort();
  await mkdir(dir, { recursive: true });
  const conf = join(dir, 'rspamd.conf');
  await writeFile(
    conf,
    [
      'options {',
      `  pidfile = "${join(dir, 'rspamd.pid')}";`,
      `  temp_dir = "${dir}";`,
      '  dns { nameserver = ["127.0.0.1:9"]; timeout = 0.5s; retransmits = 1; }',
      '}',
      'logging { type = "console"; level = "error"; }',
      'actions { reject = 15; add_header = 6; greylist = 4; }',
      `worker "normal" { bind_socket = "127.0.0.1:${port}"; mime = true; count = 1; }`,
      '',
    ].join('\n'),
  );
  const proc = startProcess('rspamd', ['-f', '-u', 'root', '-g', 'root', '-c', conf, '--no-fork']);
  await ready('rspamd answering /ping', proc, () => ping(port, 'GET /ping HTTP/1.0\r\n\r\n', /pong/, proc), 120_000, 500);
  return { endpoint: `127.0.0.1:${port}`, stop: () => proc.stop(), output: () => proc.output() };
}

/** The EICAR test file: not a virus, detected by the signature the test writes. */
export const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
export const EICAR_SIGNATURE = 'Mailroom.Test.EICAR';

/** clamd on a unix socket in `dir`, its database one body signature (.ndb) for the EICAR string. */
export async function startClamd(dir: string, opts: { streamMaxLength?: string } = {}): Promise<Scanner> {
  await mkdir(join(dir, 'db'), { recursive: true });
  await writeFile(join(dir, 'db', 'test.ndb'), `${EICAR_SIGNATURE}:0:*:${Buffer.from('EICAR-STANDARD-ANTIVIRUS-TEST-FILE').toString('hex')}\n`);
  const socket = join(dir, 'clamd.sock');
  await writeFile(
    join(dir, 'clamd.conf'),
    ['Foreground yes', `LocalSocket ${socket}`, `DatabaseDirectory ${join(dir, 'db')}`, `PidFile ${join(dir, 'clamd.pid')}`, `StreamMaxLength ${opts.streamMaxLength ?? '50M'}`, 'LogVerbose no', ''].join('\n'),
  );
  const proc = startProcess('clamd', ['-c', join(dir, 'clamd.conf')]);
  await ready('clamd answering PING', proc, () => ping(socket, 'zPING\0', /PONG/, proc), 60_000, 200);
  return { endpoint: socket, stop: () => proc.stop(), output: () => proc.output() };
}

/** Waits for `proc` to be ready; a process that never is gets stopped, not left running. */
async function ready(what: string, proc: Started, check: () => Promise<boolean>, timeoutMs: number, everyMs: number): Promise<void> {
  try {
    await waitFor(what, check, timeoutMs, everyMs);
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

async function ping(target: number | string, request: string, expect: RegExp, proc: Started): Promise<boolean> {
  if (proc.child.exitCode !== null) throw new Error(`scanner exited: ${proc.output()}`);
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const s = typeof target === 'number' ? connect(target, '127.0.0.1') : connect(target);
    let reply = '';
    s.setTimeout(2000, () => s.destroy());
    s.on('connect', () => s.end(request));
    s.on('data', (d: Buffer) => (reply += d.toString('latin1')));
    s.on('close', () => resolve(expect.test(reply)));
    s.on('error', () => resolve(false));
  });
}

export interface DkimKey {
  selector: string;
  domain: string;
  /** PKCS#1 PEM: what nodemailer and Python's dkim both read. */
  privateKey: string;
  /** The TXT record publishing it. */
  record: string;
}

export function dkimKey(selector: string, domain: string): DkimKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    selector,
    domain,
    privateKey: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    record: `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`,
  };
}

/** The message as nodemailer's DKIM signer writes it (its stream transport: nothing is sent). */
export async function signWithNodemailer(key: DkimKey, mail: { from: string; to: string; subject: string; text: string }): Promise<Buffer> {
  const transport = createTransport({ streamTransport: true, buffer: true, newline: 'windows', dkim: { domainName: key.domain, keySelector: key.selector, privateKey: key.privateKey } });
  const info = (await transport.sendMail({ ...mail, date: new Date('2026-01-02T03:04:05Z'), messageId: `<${key.selector}@${key.domain}>` })) as unknown as { message: Buffer };
  return info.message;
}

/** The message signed by Python's dkim (Debian's python3-dkim, its dkimsign command): a signer independent of ours. */
export async function signWithDkimpy(dir: string, key: DkimKey, message: Buffer): Promise<Buffer> {
  const keyFile = join(dir, `${key.selector}.pem`);
  await writeFile(keyFile, key.privateKey);
  const child = execFile('/usr/bin/dkimsign', [key.selector, key.domain, keyFile], { encoding: 'buffer', maxBuffer: 10 * 1024 * 1024 });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => err.push(b));
  child.stdin!.end(message);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`dkimsign failed (${code}): ${Buffer.concat(err).toString()}`);
  return Buffer.concat(out);
}

export { run };
