/**
 * A sealed spool behind `mailroom replay` and the commands around it, as an operator runs them (the CLI, spawned;
 * moto's KMS and S3, a real Redis): replay without --deliver leaves its messages sealed in the replay spool — nothing
 * of them readable there nor in Redis — `mailroom queue` counts them, and a `mailroom worker` on that spool opens and
 * delivers each, byte for byte behind its header block.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCOUNT, createBuckets, createKey, listKeys, REGION, startBackends, storedBytes, waitFor, type Backends } from '../gateway/helpers.js';
import { DATA_KEY_DEFAULTS, plaintextFound, redisDump } from './support.js';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'mailroom.js');
const BUCKET = 'sealed-replay';
const PREFIX = 'sealed-replay';
let b: Backends;
let kmsKeyArn: string;

beforeAll(async () => {
  b = await startBackends('mailroom-sealed-replay-', { motoEnv: true });
  await createBuckets(b.aws, BUCKET);
  kmsKeyArn = await createKey(b.aws);
}, 120_000);

afterAll(async () => {
  await b?.stop();
});

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], until?: Promise<unknown>): Promise<Result> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...b.moto.env, MAILROOM_CONFIG: '', LOG_LEVEL: '' };
  for (const k of ['AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL_KMS', 'AWS_ENDPOINT_URL_SNS', 'AWS_PROFILE', 'MAILROOM_SPOOL_DIR', 'MAILROOM_NODE_ID', 'REDIS_URL']) delete env[k];
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const kill = setTimeout(() => child.kill('SIGKILL'), 120_000);
  void until?.finally(() => child.kill('SIGTERM'));
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(kill);
      resolve({ code, stdout, stderr });
    }),
  );
}

const summaryOf = (r: Result) => r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.type === 'summary');

describe('replay into a sealed spool', () => {
  it('leaves nothing readable in the replay spool or in Redis; run again without its checkpoint, finds every message in that spool; mailroom queue counts them; a mailroom worker on that spool delivers each message as its source had it', async () => {
    const tag = randomBytes(6).toString('hex');
    const from = `from-${tag}@sender.example`;
    const rcpt = `rcpt-${tag}@example.com`;
    const dir = join(b.dir.path, 'eml');
    await mkdir(dir);
    const bodies: string[] = [];
    for (let i = 0; i < 3; i++) {
      const body = `From: ${from}\r\nTo: ${rcpt}\r\nSubject: sealed ${i}\r\nMessage-ID: <${tag}.${i}@sender.example>\r\n\r\nbody-${tag}-${i}\r\n`;
      bodies.push(body);
      await writeFile(join(dir, `${i}.eml`), body);
    }
    const spoolDir = join(b.dir.path, 'replay-spool');
    const config = join(b.dir.path, 'config.json');
    await writeFile(
      config,
      JSON.stringify({
        region: REGION,
        accountId: ACCOUNT,
        ruleSetName: 'sealed-replay',
        rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: BUCKET, objectKeyPrefix: 'in/' } }],
        gateway: {
          hostname: 'mx.sealed-replay.test',
          spoolDir: join(b.dir.path, 'gateway-spool'),
          redis: { url: b.redis.url, prefix: PREFIX },
          spool: { encryption: { ...DATA_KEY_DEFAULTS, kmsKeyArn } },
        },
      }),
    );

    const replayed = await cli(['replay', dir, '--config', config, '--spool-dir', spoolDir, '--json']);
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(summaryOf(replayed)).toMatchObject({ stored: 3, queued: 3 });
    const nodeId = (await readFile(join(spoolDir, 'node-id'), 'utf8')).trim();

    const secrets = [from, rcpt, ...bodies.map((_, i) => `body-${tag}-${i}`)];
    expect(await plaintextFound(spoolDir, secrets), 'nothing of the mail readable in the replay spool').toEqual([]);
    const redis = await redisDump(b.redis.url, PREFIX);
    expect(redis).toContain(nodeId);
    expect(secrets.filter((s) => redis.includes(s)), 'no address or body in Redis').toEqual([]);

    // The checkpoint lost (a crash before its lines reached the disk): the same command finds the messages in the sealed
    // spool and accepts none of them again.
    await rm(join(spoolDir, 'replay-checkpoint.jsonl'));
    const again = await cli(['replay', dir, '--config', config, '--spool-dir', spoolDir, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toMatch(/could not be read/);
    expect(summaryOf(again)).toMatchObject({ stored: 0, alreadyStored: 3 });

    const counted = await cli(['queue', '--config', config, '--node', nodeId, '--json']);
    expect(counted.code, counted.stderr).toBe(0);
    const counts = JSON.parse(counted.stdout) as { deliveries: { waiting: number }; spoolFilesPending: number; nodes: Array<{ node: string }> };
    expect(counts.nodes.map((n) => n.node)).toContain(nodeId);
    expect(counts.deliveries.waiting).toBeGreaterThan(0);
    expect(counts.spoolFilesPending).toBeGreaterThan(0);

    const delivered = waitFor('every message delivered', async () => (await listKeys(b.aws, BUCKET, 'in/')).length === 3, 60_000, 250);
    const worker = cli(['worker', '--config', config, '--spool-dir', spoolDir, '--node-id', nodeId], delivered.catch(() => undefined));
    await delivered;
    expect((await worker).stderr).not.toMatch(/cannot be opened|failed/i);
    const stored = await Promise.all((await listKeys(b.aws, BUCKET, 'in/')).map(async (k) => (await storedBytes(b.aws, BUCKET, k)).body.toString('utf8')));
    for (const body of bodies) {
      const object = stored.find((s) => s.endsWith(body));
      expect(object, 'the source DATA behind the header block').toBeDefined();
      expect(object!.slice(0, object!.length - body.length)).toContain(`for ${rcpt};`);
    }
  }, 240_000);
});
