/**
 * SIGTERM: stop accepting (421 to idle sessions and new commands), finish the DATA in flight with its 250, let
 * workers finish, exit 0 — and the message acknowledged during shutdown is delivered (here after a restart).
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import type { Started } from '../support/process.js';
import { killHard, startMailroom, writeConfig } from './child.js';
import { ACCOUNT, createBuckets, listKeys, RawSmtp, REGION, waitFor, startBackends, type Backends } from './helpers.js';

let backends: Backends;
let proc: Started | undefined;

beforeAll(async () => {
  backends = await startBackends('mailroom-shutdown-');
  await createBuckets(backends.aws, 'shutdown');
}, 120_000);

afterAll(async () => {
  if (proc) await killHard(proc);
  await backends?.stop();
});

describe('SIGTERM', () => {
  it('421 for idle sessions, the DATA in flight still gets its 250, exit 0, and that message is delivered', async () => {
    const port = await freePort();
    const configFile = await writeConfig(backends.dir.path, 'shutdown.json', {
      region: REGION,
      accountId: ACCOUNT,
      ruleSetName: 'shutdown',
      rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: 'shutdown' } }],
      gateway: { hostname: 'mx.shutdown.test', spoolDir: join(backends.dir.path, 'spool'), smtp: { port, reverseDns: false }, redis: { url: backends.redis.url, prefix: 'shutdown' }, worker: { shutdownTimeoutMs: 5_000 } },
    });
    proc = await startMailroom('gateway', configFile, { ...backends.moto.env }, port);

    const idle = await RawSmtp.connect(port);
    expect(await idle.command('EHLO idle.example.net')).toMatch(/^250/);
    const busy = await RawSmtp.connect(port);
    await busy.command('EHLO busy.example.net');
    await busy.command('MAIL FROM:<sender@origin.example>');
    await busy.command('RCPT TO:<user@example.com>');
    expect(await busy.command('DATA')).toMatch(/^354/);
    busy.write('Subject: in flight\r\n\r\nfirst half\r\n');

    const exited = new Promise<number | null>((resolve) => proc!.child.once('exit', (code) => resolve(code)));
    proc.child.kill('SIGTERM');
    expect(await idle.reply(5_000)).toMatch(/^421 /);

    // No new sessions.
    const fresh = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('data', (d) => (s.destroy(), resolve(d.toString())));
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      s.once('close', () => resolve('closed'));
    });
    expect(['ECONNREFUSED', 'closed'].includes(fresh) || fresh.startsWith('421')).toBe(true);

    busy.write('second half\r\n.\r\n');
    const accepted = await busy.reply(10_000);
    expect(accepted).toMatch(/^250 Ok [0-9a-v]{40}$/);
    const id = accepted.slice('250 Ok '.length);
    expect(await busy.command('MAIL FROM:<sender@origin.example>')).toMatch(/^421 /);
    busy.close();
    expect(await exited).toBe(0);

    // Delivered by the first process before it exited, or by the next one.
    if (!(await listKeys(backends.aws, 'shutdown')).includes(id!)) proc = await startMailroom('gateway', configFile, { ...backends.moto.env }, port);
    await waitFor('acknowledged message delivered', async () => (await listKeys(backends.aws, 'shutdown')).includes(id!), 30_000, 250);
  }, 90_000);
});
