/**
 * The user's commands, as documented, from a fresh checkout (no cdktf.out, no .terraform, no lock file), into moto:
 * `npm run deploy:offline -- --auto-approve` (cdktf-cli itself: synth, terraform init from the provider mirror,
 * apply), the gateway configured from the deploy's gateway_config output, `mailroom get`, and
 * `npm run destroy:offline -- --auto-approve` on a bucket that holds encrypted mail.
 *
 * The config is a new user's: one domain; "support" encrypted with a key the stack creates, notifying a topic, with
 * SES's Stop action; an unencrypted rule for the rest of the domain; a gateway writer; the rule set activated.
 * moto's SES gaps are patched as in deploy.test.ts. moto still decrypts under a key pending deletion (AWS refuses every
 * operation on one), so after each destroy the key's state is checked as well as `mailroom get`.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeKeyCommand } from '@aws-sdk/client-kms';
import { GetBucketPolicyCommand, GetPublicAccessBlockCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type ReceivingConfigInput } from '../../shared/config/index.js';
import { awsClients, listKeys, rawMessage, sendRaw, startTestGateway, waitFor, type AwsFixture } from '../gateway/helpers.js';
import { useMotoEnv } from '../support/moto.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { spooledFiles } from '../support/spool.js';
import { awsQuery, xmlText } from './support/aws-query.js';
import { startMotoWithSesPatches } from './support/moto-ses.js';
import { terraformUnavailable } from './support/terraform.js';

const ROOT = join(import.meta.dirname, '..', '..');
const unavailable = terraformUnavailable();
if (unavailable) console.warn(`[cdktf CLI test skipped] ${unavailable}`);

const ACCOUNT = '123456789012';
const BUCKET = 'acme-mail';
const TOPIC = `arn:aws:sns:us-east-1:${ACCOUNT}:acme-support`;
const STACK = 'acme';

const userConfig = (infra: Record<string, unknown> = {}) => ({
  region: 'us-east-1',
  accountId: ACCOUNT,
  ruleSetName: 'acme-inbound',
  rules: [
    { name: 'support', recipients: ['support@acme.example'], stopAction: { scope: 'RuleSet' }, s3Action: { bucketName: BUCKET, objectKeyPrefix: 'support/', topicArn: TOPIC } },
    { name: 'everything-else', recipients: ['acme.example'], s3Action: { bucketName: BUCKET, objectKeyPrefix: 'inbox/' } },
  ],
  infra: { createKmsKeys: { mail: { alias: 'alias/acme-mail', rules: ['support'] } }, gatewayWriter: {}, activateRuleSet: true, ...infra },
});

interface Run {
  code: number | null;
  output: string;
}

/** Runs a command to completion (killed after timeoutMs); stdout and stderr together, colours stripped. */
function run(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (b: Buffer) => (output += b.toString());
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      output += `\n[killed after ${opts.timeoutMs} ms]`;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }, opts.timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      // eslint-disable-next-line no-control-regex
      resolve({ code, output: output.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '') });
    });
  });
}

const tail = (r: Run) => `exit ${r.code}\n${r.output.slice(-8000)}`;

describe.skipIf(unavailable !== undefined)('cdktf deploy and destroy offline from a fresh checkout, as a user runs them', () => {
  let checkout: string;
  let moto: Awaited<ReturnType<typeof startMotoWithSesPatches>>;
  let redis: RedisServer;
  let aws: AwsFixture;
  let restoreEnv: () => void;
  let env: NodeJS.ProcessEnv;
  let deploy: Run;
  let gatewayConfig: Record<string, unknown>;
  const sent: Record<'support' | 'sales' | 'both', string> = { support: '', sales: '', both: '' };

  const ses = (action: string, params: Record<string, string>) => awsQuery({ endpoint: moto.endpoint, service: 'ses', region: 'us-east-1', action, version: '2010-12-01', params });
  const npm = (script: string, ...args: string[]) => run('npm', ['run', '--silent', script, '--', ...args], { cwd: checkout, env, timeoutMs: 420_000 });
  const mailroomGet = (key: string) => run(process.execPath, [join(ROOT, 'bin', 'mailroom.js'), 'get', `s3://${BUCKET}/${key}`], { cwd: checkout, env, timeoutMs: 60_000 });
  /** The created key, by the ARN the deploy gave the gateway (its alias goes with the first destroy that runs). */
  const keyState = async () => {
    const keyArn = (gatewayConfig.rules as Array<{ s3Action: { kmsKeyArn?: string } }>)[0]!.s3Action.kmsKeyArn!;
    return (await aws.kms.send(new DescribeKeyCommand({ KeyId: keyArn }))).KeyMetadata!.KeyState;
  };

  beforeAll(async () => {
    // A fresh checkout: the project's files, no cdktf.out, no terraform state, no lock file.
    checkout = mkdtempSync(join(tmpdir(), 'mailroom-checkout-'));
    for (const dir of ['infra', 'shared', 'node_modules']) symlinkSync(join(ROOT, dir), join(checkout, dir));
    for (const file of ['package.json', 'cdktf.json', 'tsconfig.json']) cpSync(join(ROOT, file), join(checkout, file));
    writeFileSync(join(checkout, 'mailroom.json'), JSON.stringify(userConfig(), null, 2));

    [moto, redis] = await Promise.all([startMotoWithSesPatches(), startRedis()]);
    aws = awsClients(moto);
    env = { ...process.env, ...moto.env, AWS_EC2_METADATA_DISABLED: 'true', MAILROOM_CONFIG: 'mailroom.json', MAILROOM_STACK: STACK };
    // Nothing from this machine's own Terraform setup: the command must bring what it needs, the mirror included.
    for (const k of Object.keys(env)) if (k.startsWith('TF_') || k === 'CHECKPOINT_DISABLE' || k === 'MAILROOM_TF_PLUGIN_MIRROR') delete env[k];

    deploy = await npm('deploy:offline', '--auto-approve');
    if (deploy.code === 0) {
      const state = JSON.parse(readFileSync(join(checkout, `terraform.${STACK}.tfstate`), 'utf8')) as { outputs: Record<string, { value: unknown }> };
      gatewayConfig = state.outputs.gateway_config!.value as Record<string, unknown>;
    }
  }, 480_000);

  afterAll(async () => {
    restoreEnv?.();
    aws?.destroy();
    await Promise.all([moto?.stop(), redis?.stop()]);
    if (checkout) rmSync(checkout, { recursive: true, force: true });
  });

  it('npm run deploy:offline succeeds offline on a fresh checkout, writing only cdktf.out and the state into it', () => {
    expect(deploy.code, tail(deploy)).toBe(0);
    expect(deploy.output).not.toContain('Could not retrieve providers for locking');
    const lock = readFileSync(join(checkout, 'cdktf.out', 'stacks', STACK, '.terraform.lock.hcl'), 'utf8');
    expect(lock).toContain('provider "registry.terraform.io/hashicorp/aws"');
    expect(lock).toContain('version     = "5.100.0"');
    expect(readdirSync(checkout).sort()).toEqual(['cdktf.json', 'cdktf.out', 'infra', 'mailroom.json', 'node_modules', 'package.json', 'shared', `terraform.${STACK}.tfstate`, 'tsconfig.json']);
    // The synth output told the user what destroy will keep.
    expect(deploy.output).toContain('destroy keeps the mail: bucket acme-mail and KMS key "mail" (infra.createKmsKeys) have prevent_destroy');
  });

  it('the support rule has its S3 action, then SES\'s Stop action (scope RuleSet), as SES reports them', async () => {
    const support = await ses('DescribeReceiptRule', { RuleSetName: 'acme-inbound', RuleName: 'support' });
    const actions = xmlText(support, 'Actions')!;
    expect(xmlText(actions, 'BucketName')).toBe(BUCKET);
    expect(xmlText(xmlText(actions, 'StopAction') ?? '', 'Scope')).toBe('RuleSet');
    expect(actions.indexOf('<S3Action>')).toBeLessThan(actions.indexOf('<StopAction>'));
    const rest = await ses('DescribeReceiptRule', { RuleSetName: 'acme-inbound', RuleName: 'everything-else' });
    expect(xmlText(rest, 'StopAction')).toBeUndefined();
  });

  it('the gateway, configured from gateway_config, stores support mail only under the support rule', async () => {
    const spoolDir = mkdtempSync(join(tmpdir(), 'mailroom-cli-spool-'));
    restoreEnv = useMotoEnv(moto);
    const config = { ...gatewayConfig, gateway: { hostname: 'mx.acme.example', spoolDir, smtp: { port: 0, reverseDns: false }, redis: { url: redis.url, prefix: 'cli' } } } as ReceivingConfigInput;
    expect(parseConfig(config).config.rules[0]!.stopAction).toEqual({ scope: 'RuleSet' });
    const gw = await startTestGateway(config);
    try {
      const mail = (subject: string) => rawMessage([['From', 'a@customer.example'], ['To', 'support@acme.example'], ['Subject', subject]], 'hello\r\n');
      sent.support = (await sendRaw(gw.port, { from: 'a@customer.example', to: ['support@acme.example'] }, mail('help'))).messageId;
      sent.sales = (await sendRaw(gw.port, { from: 'a@customer.example', to: ['sales@acme.example'] }, mail('offer'))).messageId;
      sent.both = (await sendRaw(gw.port, { from: 'a@customer.example', to: ['support@acme.example', 'sales@acme.example'] }, mail('both'))).messageId;
      await waitFor('every message delivered', async () => (await spooledFiles(spoolDir)).length === 0 && (await listKeys(aws, BUCKET)).length >= 4, 60_000);
    } finally {
      await gw.stop();
      rmSync(spoolDir, { recursive: true, force: true });
    }
    expect((await listKeys(aws, BUCKET, 'support/')).sort()).toEqual([`support/${sent.support}`, `support/${sent.both}`].sort());
    // The stop applies to the recipients "support" matched: sales@ in the same message still reaches "everything-else".
    expect((await listKeys(aws, BUCKET, 'inbox/')).sort()).toEqual([`inbox/${sent.sales}`, `inbox/${sent.both}`].sort());
    const head = await aws.s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `support/${sent.support}` }));
    expect(head.Metadata?.['x-amz-wrap-alg']).toBe('kms'); // encrypted as SES does, under the created key
  }, 120_000);

  it('mailroom get decrypts the support mail', async () => {
    const got = await mailroomGet(`support/${sent.support}`);
    expect(got.code, tail(got)).toBe(0);
    expect(got.output).toContain('Subject: help');
  });

  it('npm run destroy:offline keeps the mail: it stops before changing anything and says what it kept', async () => {
    const destroy = await npm('destroy:offline', '--auto-approve');
    expect(destroy.code, tail(destroy)).not.toBe(0);
    expect(destroy.output).toContain('destroy keeps the mail: bucket acme-mail and KMS key "mail" (infra.createKmsKeys) have prevent_destroy');
    expect(destroy.output).toContain('Instance cannot be destroyed');
    expect(destroy.output).toContain('until you set infra.allowActiveRuleSetDestroy to true');
    expect(destroy.output).not.toMatch(/Destruction complete|Destroying\.\.\./);
    // Everything is still in place: the key, the bucket's policy and public access block, the rule set; the mail reads.
    expect(await keyState()).toBe('Enabled');
    expect((await aws.s3.send(new GetBucketPolicyCommand({ Bucket: BUCKET }))).Policy).toContain('AllowSESPutsForRuleSupport');
    expect((await aws.s3.send(new GetPublicAccessBlockCommand({ Bucket: BUCKET }))).PublicAccessBlockConfiguration?.BlockPublicPolicy).toBe(true);
    expect(xmlText(await ses('DescribeActiveReceiptRuleSet', {}), 'Name')).toBe('acme-inbound');
    const got = await mailroomGet(`support/${sent.support}`);
    expect(got.code, tail(got)).toBe(0);
    expect(got.output).toContain('Subject: help');
  }, 450_000);

  it('with infra.allowMailDestroy but a bucket that still holds mail: S3 refuses the bucket, and the key of its mail is kept', async () => {
    writeFileSync(join(checkout, 'mailroom.json'), JSON.stringify(userConfig({ allowMailDestroy: true, allowActiveRuleSetDestroy: true }), null, 2));
    const destroy = await npm('destroy:offline', '--auto-approve');
    expect(destroy.code, tail(destroy)).not.toBe(0);
    expect(destroy.output).toContain('infra.allowMailDestroy is true: `destroy` deletes bucket acme-mail and KMS key "mail"');
    expect(destroy.output).toMatch(/BucketNotEmpty/);
    // Receiving is gone; the key was not scheduled for deletion (the bucket depends on it), so the mail still reads.
    await expect(ses('DescribeReceiptRuleSet', { RuleSetName: 'acme-inbound' })).rejects.toThrow(/RuleSetDoesNotExist|does not exist/);
    expect(await keyState()).toBe('Enabled');
    expect(existsSync(join(checkout, `terraform.${STACK}.tfstate`))).toBe(true);
    const got = await mailroomGet(`support/${sent.support}`);
    expect(got.code, tail(got)).toBe(0);
    expect(got.output).toContain('Subject: help');
  }, 450_000);
});
