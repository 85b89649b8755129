/**
 * `npm start` (= `mailroom local`) on a machine like this one: it starts its own Redis and moto, provisions the
 * example, takes a mail and shows it; where a tool is missing it says how to install it; Ctrl-C leaves nothing
 * running.
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { startProcess } from '../support/process.js';
import { mailroomCli, MAILROOM } from './child.js';
import { sendRaw, waitFor } from './helpers.js';

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const k of ['REDIS_URL', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL_KMS', 'AWS_ENDPOINT_URL_SNS', 'AWS_ENDPOINT_URL_SQS', 'AWS_PROFILE', 'MAILROOM_CONFIG']) delete env[k];
  return env;
}

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

describe('mailroom local', () => {
  it('starts Redis and moto, provisions the example, shows an arriving message, and cleans up on SIGTERM', async () => {
    const port = await freePort();
    const proc = startProcess(process.execPath, [MAILROOM, 'local', '--smtp-port', String(port)], cleanEnv());
    try {
      await waitFor('ready banner', async () => proc.output().includes('Arriving messages:'), 60_000, 200);
      const out = proc.output();
      expect(out).toContain(`swaks --server 127.0.0.1:${port} --from you@example.org --to someone@example.com`);
      const redisPort = Number(/Redis +redis:\/\/127\.0\.0\.1:(\d+) \(started here\)/.exec(out)?.[1]);
      const motoPort = Number(/AWS +http:\/\/127\.0\.0\.1:(\d+) \(moto, started here\)/.exec(out)?.[1]);
      // The banner names the ports Redis and moto listen on (and which must be closed after SIGTERM, below).
      expect(await listening(redisPort), `Redis at ${redisPort}`).toBe(true);
      expect(await listening(motoPort), `moto at ${motoPort}`).toBe(true);
      expect(out).toMatch(/KMS key "local" created: arn:aws:kms:us-east-1:\d{12}:key\//);

      const sent = await sendRaw(port, { from: 'you@example.org', to: ['someone@example.com'] }, 'From: you@example.org\r\nTo: someone@example.com\r\nSubject: hello local\r\n\r\nhi\r\n');
      await waitFor('arrival line', async () => proc.output().includes(`s3://mailroom-local-mail/inbox/${sent.messageId}`), 30_000, 200);
      expect(proc.output()).toContain('subject "hello local"');

      const exited = new Promise<number | null>((resolve) => proc.child.once('exit', (code) => resolve(code)));
      proc.child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(await listening(port)).toBe(false);
      expect(await listening(redisPort)).toBe(false);
      expect(await listening(motoPort)).toBe(false);
    } finally {
      await proc.stop();
    }
  }, 120_000);

  it('says how to install redis-server and moto_server when they are missing', async () => {
    const r = await mailroomCli(['local'], cleanEnv({ PATH: '/nonexistent' }) as Record<string, string>);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('redis-server is not installed: install it (Debian/Ubuntu: sudo apt-get install redis-server');
    expect(r.stderr).toContain("moto_server is not installed: install it (pip install 'moto[server]==5.2.1')");
  });
});
