/**
 * A real Postfix in front of the gateway, as an on-prem MTA that forwards copies: a private Postfix instance (its
 * own config and queue directory, smtpd on a free 127.0.0.1 port, nothing else of the machine's Postfix touched)
 * relays example.com to the gateway's SMTP port through `relayhost`, and lmtp.example.com to its LMTP port through
 * `transport_maps`. Mail injected into Postfix by SMTP must land in the bucket, and Postfix's log must show the
 * gateway's `250 Ok <messageId>` (one per recipient over LMTP).
 */
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { waitForPort } from '../support/process.js';
import { ACCOUNT, createBuckets, rawObject, rawMessage, REGION, run, sendRaw, startTestGateway, waitFor, startBackends, type Backends } from './helpers.js';

const POSTFIX = '/usr/sbin/postfix';
const canRun = existsSync(POSTFIX) && process.getuid?.() === 0;
const BUCKET = 'relayed';

/** A Postfix instance of its own: `postfix -c <dir>` with config, queue and log under one temporary directory. */
async function startPostfix(root: string, opts: { smtpdPort: number; relayPort: number; lmtpPort: number }) {
  const conf = join(root, 'etc');
  await mkdir(conf, { recursive: true });
  await mkdir(join(root, 'queue'));
  await mkdir(join(root, 'data'));
  // Postfix's daemons run as the postfix user and must reach the queue inside the (0700) temporary directory.
  await chmod(dirname(root), 0o755);
  await chmod(root, 0o755);
  const { uid, gid } = await run('id', ['-u', 'postfix']).then(async (u) => ({ uid: Number(u.stdout), gid: Number((await run('id', ['-g', 'postfix'])).stdout) }));
  await chown(join(root, 'data'), uid, gid);
  const maillog = join(root, 'maillog');
  await writeFile(
    join(conf, 'main.cf'),
    [
      'compatibility_level = 3.6',
      `queue_directory = ${join(root, 'queue')}`,
      `data_directory = ${join(root, 'data')}`,
      'meta_directory = /etc/postfix',
      'mail_owner = postfix',
      'setgid_group = postdrop',
      'myhostname = relay.postfix.test',
      'mydomain = postfix.test',
      'mydestination =',
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'mynetworks = 127.0.0.0/8',
      'relay_domains = example.com, lmtp.example.com',
      // The two ways an MTA hands mail to the gateway (docs/operations.md#operating-at-the-edge).
      `relayhost = [127.0.0.1]:${opts.relayPort}`,
      `transport_maps = inline:{ lmtp.example.com=lmtp:inet:127.0.0.1:${opts.lmtpPort} }`,
      'smtp_dns_support_level = disabled',
      'smtp_host_lookup = native',
      'lmtp_host_lookup = native',
      'smtp_tls_security_level = none',
      'smtpd_tls_security_level = none',
      'alias_maps =',
      'alias_database =',
      'biff = no',
      `maillog_file = ${maillog}`,
      `maillog_file_prefixes = ${root}`,
      'queue_run_delay = 1s',
      'minimal_backoff_time = 1s',
      'maximal_backoff_time = 2s',
      '',
    ].join('\n'),
  );
  const services = [
    `127.0.0.1:${opts.smtpdPort} inet n - n - - smtpd`,
    'cleanup unix n - n - 0 cleanup',
    'qmgr unix n - n 300 1 qmgr',
    'rewrite unix - - n - - trivial-rewrite',
    'bounce unix - - n - 0 bounce',
    'defer unix - - n - 0 bounce',
    'trace unix - - n - 0 bounce',
    'verify unix - - n - 1 verify',
    'proxymap unix - - n - - proxymap',
    'smtp unix - - n - - smtp',
    'relay unix - - n - - smtp',
    'lmtp unix - - n - - lmtp',
    'error unix - - n - - error',
    'retry unix - - n - - error',
    'discard unix - - n - - discard',
    'anvil unix - - n - 1 anvil',
    'scache unix - - n - 1 scache',
    'postlog unix-dgram n - n - 1 postlogd',
    'showq unix n - n - - showq',
    'flush unix n - n 1000? 0 flush',
  ];
  await writeFile(join(conf, 'master.cf'), `${services.join('\n')}\n`);
  await run(POSTFIX, ['-c', conf, 'start'], { timeout: 60_000 });
  await waitForPort(opts.smtpdPort, 20_000);
  return {
    maillog: () => readFile(maillog, 'utf8').catch(() => ''),
    stop: () => run(POSTFIX, ['-c', conf, 'stop'], { timeout: 60_000 }).then(() => undefined),
  };
}

describe.skipIf(!canRun)('a real Postfix relaying to the gateway (needs root and Debian postfix)', () => {
  let backends: Backends;
  let gw: Awaited<ReturnType<typeof startTestGateway>>;
  let postfix: Awaited<ReturnType<typeof startPostfix>>;
  let postfixPort: number;

  beforeAll(async () => {
    [backends, postfixPort] = await Promise.all([startBackends('mailroom-postfix-', { motoEnv: true }), freePort()]);
    await createBuckets(backends.aws, BUCKET);
    gw = await startTestGateway({
      region: REGION,
      accountId: ACCOUNT,
      ruleSetName: 'relay',
      rules: [{ name: 'relayed', recipients: ['example.com', 'lmtp.example.com'], s3Action: { bucketName: BUCKET, objectKeyPrefix: 'in' } }],
      gateway: { hostname: 'mx.gateway.test', spoolDir: join(backends.dir.path, 'spool'), smtp: { port: 0, lmtpPort: 0, reverseDns: false }, redis: { url: backends.redis.url, prefix: 'relay' } },
    });
    postfix = await startPostfix(join(backends.dir.path, 'postfix'), { smtpdPort: postfixPort, relayPort: gw.port, lmtpPort: gw.smtp!.addresses.lmtp!.port });
  }, 120_000);

  afterAll(async () => {
    await postfix?.stop().catch((err: Error) => console.error(`postfix stop: ${err.message}`));
    await gw?.stop();
    await backends?.stop();
  });

  /** Postfix's delivery lines for `rcpt`: `status=sent (<reply>)`. */
  async function sentReply(rcpt: string): Promise<string> {
    return waitFor(`Postfix delivering to ${rcpt}`, async () => {
      const log = await postfix.maillog();
      const m = new RegExp(`to=<${rcpt.replace(/[.+]/g, '\\$&')}>, relay=[^\\n]*status=sent \\((.*)\\)$`, 'm').exec(log);
      return m?.[1];
    }, 30_000, 250);
  }

  it('relayhost (SMTP): the message lands in the bucket with the gateway Received header on top of Postfix\'s', async () => {
    const raw = rawMessage([['From', 'sender@origin.example'], ['To', 'user@example.com'], ['Subject', 'via postfix smtp']], 'relayed body\r\n');
    const r = await sendRaw(postfixPort, { from: 'sender@origin.example', to: ['user@example.com'] }, raw);
    expect(r.response).toMatch(/^250 2\.0\.0 Ok: queued as /);
    const reply = await sentReply('user@example.com');
    const id = /^250 Ok (\S+)$/.exec(reply)?.[1];
    expect(id, reply).toBeDefined();
    const stored = (await waitFor(`object in/${id}`, () => rawObject(backends.aws, BUCKET, `in/${id}`), 30_000, 250)).toString('latin1');
    const received = [...stored.matchAll(/^Received: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*/gm)].map((m) => m[0]);
    expect(received[0]).toMatch(/^Received: from relay\.postfix\.test \(unknown \[127\.0\.0\.1\]\)\r\n by mx\.gateway\.test with SMTP id /);
    expect(received[1]).toMatch(/by relay\.postfix\.test \(Postfix\)/);
    expect(stored).toContain('Subject: via postfix smtp\r\n');
    expect(stored.endsWith('relayed body\r\n')).toBe(true);
  });

  it('transport lmtp: one LMTP reply per recipient, one stored message for both', async () => {
    const to = ['one@lmtp.example.com', 'two@lmtp.example.com'];
    const raw = rawMessage([['From', 'sender@origin.example'], ['To', to.join(', ')], ['Subject', 'via postfix lmtp']], 'lmtp body\r\n');
    await sendRaw(postfixPort, { from: 'sender@origin.example', to }, raw);
    const replies = await Promise.all(to.map(sentReply));
    const ids = replies.map((r, i) => new RegExp(`^250 Ok (\\S+) <${to[i]!.replace(/\./g, '\\.')}>$`).exec(r)?.[1]);
    expect(ids[0], replies.join(' | ')).toBeDefined();
    expect(ids[1]).toBe(ids[0]);
    const stored = (await waitFor(`object in/${ids[0]}`, () => rawObject(backends.aws, BUCKET, `in/${ids[0]}`), 30_000, 250)).toString('latin1');
    expect(stored).toMatch(/^Received: from relay\.postfix\.test \(unknown \[127\.0\.0\.1\]\)\r\n by mx\.gateway\.test with SMTP id /m);
    expect(stored).toContain('Subject: via postfix lmtp\r\n');
  });
});
