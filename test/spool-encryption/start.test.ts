/**
 * `mailroom gateway` with spool encryption configured but its key unusable refuses to start, saying the field and the
 * fix — a missing or open key file before the spool is touched, a KMS key it cannot get a data key from before the
 * SMTP port opens. (The compiled CLI, as an operator runs it: `npm run build` first.)
 */
import { chmod, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { tempDir } from '../support/files.js';
import { mailroomCli, writeConfig } from '../gateway/child.js';
import { ACCOUNT, REGION } from '../gateway/helpers.js';
import { keyFile } from './support.js';

let redis: RedisServer;
let dir: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedis(), tempDir('mailroom-seal-start-')]);
}, 60_000);
afterAll(async () => {
  await redis?.stop();
  await dir?.remove();
});

async function gatewayWith(name: string, encryption: Record<string, unknown>, env: Record<string, string> = {}) {
  const spoolDir = join(dir.path, `spool-${name}`);
  const file = await writeConfig(dir.path, `${name}.json`, {
    region: REGION,
    accountId: ACCOUNT,
    ruleSetName: 'start',
    rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: 'mail-bucket' } }],
    gateway: { spoolDir, smtp: { port: await freePort() }, redis: { url: redis.url, prefix: name }, spool: { encryption } },
  });
  const started = Date.now();
  const r = await mailroomCli(['gateway', '--config', file], { AWS_REGION: REGION, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', LOG_LEVEL: 'warn', ...env });
  return { ...r, file, spoolDir, ms: Date.now() - started };
}

const exists = (p: string) => stat(p).then(() => true, () => false);

describe('a gateway whose spool key is unusable does not start', () => {
  it('a missing key file: exit 1 naming the field and the fix; the spool untouched', async () => {
    const missing = join(dir.path, 'gone.key');
    const r = await gatewayWith('missing', { keyFile: missing });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`gateway.spool.encryption.keyFile: ${missing} does not exist`);
    expect(r.stderr).toContain('fix: restore it — mail sealed under it cannot be delivered without it; for a new key (with no sealed mail in the spool): (umask 077 && openssl rand -base64 32 >');
    expect(await exists(r.spoolDir), 'nothing made').toBe(false);
  });

  it('a key file others can read: exit 1 with chmod 600', async () => {
    const open = await keyFile(dir.path, 'open.key');
    await chmod(open, 0o640);
    const r = await gatewayWith('open', { keyFile: open });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`gateway.spool.encryption.keyFile: ${open} can be read by its group (mode 640): whoever reads it can read every sealed message`);
    expect(r.stderr).toContain(`fix: chmod 600 ${open}`);
    expect(await exists(r.spoolDir)).toBe(false);
  });

  it('a KMS key out of reach: exit 1 before the SMTP port opens, saying KMS refused or could not be reached', async () => {
    const arn = `arn:aws:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
    const r = await gatewayWith('kms', { kmsKeyArn: arn }, { AWS_ENDPOINT_URL: `http://127.0.0.1:${await freePort()}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`mailroom gateway: spool encryption cannot seal mail: no data key from KMS key ${arn}: KMS GenerateDataKey on ${arn} failed: ECONNREFUSED: .*\\(KMS unreachable or refusing: check AWS_ENDPOINT_URL / AWS_REGION and the network\\)`));
  });
});
