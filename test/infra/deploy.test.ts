/**
 * Deploy test: `terraform apply` of examples/infra.json into moto_server, then the AWS APIs confirm that the bucket
 * policy, key policy, topic policy, roles and rules are exactly what the stack synthesized; a second plan shows no
 * changes; destroy refuses while the mail is guarded, and completes with infra.allowMailDestroy.
 *
 * moto 5.2.1 gaps, patched in test/infra/support/moto_ses_patched.py (not in the stack): CreateReceiptRule's
 * IamRoleArn check compares an ARN with role ids (always fails); alias/aws/ses does not exist in moto's KMS until
 * something creates it (in AWS, SES does); DeleteReceiptRule is not implemented (destroy would retry until timeout).
 *
 * IAM and SES have no SDK client in this package: they are read with SigV4-signed Query calls (support/aws-query.ts).
 * Note: moto checks neither policies nor SES's setup write, so this proves the deployed configuration, not that AWS
 * would accept it; the policies themselves are pinned by constructs.test.ts against the documented ones (docs/ses-format.md#permissions).
 */
import { GetBucketEncryptionCommand, GetBucketLifecycleConfigurationCommand, GetBucketLocationCommand, GetBucketOwnershipControlsCommand, GetBucketPolicyCommand, GetPublicAccessBlockCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { GetKeyPolicyCommand, GetKeyRotationStatusCommand, KMSClient, ListAliasesCommand } from '@aws-sdk/client-kms';
import { GetTopicAttributesCommand, SNSClient } from '@aws-sdk/client-sns';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../shared/config/load.js';
import { awsQuery, xmlAll, xmlText } from './support/aws-query.js';
import { startMotoWithSesPatches } from './support/moto-ses.js';
import { all, one, policy, synth, type TfJson } from './support/synth.js';
import { describe as describeRun, offlineTerraform, stackDir, terraform, terraformUnavailable, type TerraformEnv } from './support/terraform.js';

const unavailable = terraformUnavailable();
if (unavailable) console.warn(`[infra deploy test skipped] ${unavailable}`);

const TOPIC = 'arn:aws:sns:us-east-1:123456789012:mailroom-inbound';

describe.skipIf(unavailable !== undefined)('deploy examples/infra.json into moto', () => {
  let tf: TerraformEnv;
  let moto: Awaited<ReturnType<typeof startMotoWithSesPatches>>;
  let dir: string;
  let stackJson: TfJson;
  let env: Record<string, string>;
  let keyArn: string;
  let outputs: Record<string, { value: unknown }>;
  const clients = {} as { s3: S3Client; s3eu: S3Client; kms: KMSClient; sns: SNSClient };
  const timings: Record<string, number> = {};

  /** Synthesized policy text with the created key's ARN token resolved to the deployed ARN. */
  const resolved = (text: string) => JSON.parse(text.replace(/\$\{aws_kms_key\.[^}]+\.arn\}/g, keyArn)) as unknown;
  const iam = (action: string, params: Record<string, string>) => awsQuery({ endpoint: moto.endpoint, service: 'iam', region: 'us-east-1', action, version: '2010-05-08', params });
  const ses = (action: string, params: Record<string, string>) => awsQuery({ endpoint: moto.endpoint, service: 'ses', region: 'us-east-1', action, version: '2010-12-01', params });

  beforeAll(async () => {
    tf = offlineTerraform();
    moto = await startMotoWithSesPatches();
    env = { ...moto.env, AWS_EC2_METADATA_DISABLED: 'true' };
    const synthesized = synth('examples/infra.json', { endpointUrl: moto.endpoint });
    stackJson = synthesized.json;
    dir = stackDir(tf, 'deploy', synthesized.text);
    const cfg = { endpoint: moto.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' }, forcePathStyle: true };
    clients.s3 = new S3Client({ ...cfg, region: 'us-east-1' });
    clients.s3eu = new S3Client({ ...cfg, region: 'eu-central-1' });
    clients.kms = new KMSClient({ ...cfg, region: 'us-east-1' });
    clients.sns = new SNSClient({ ...cfg, region: 'us-east-1' });

    const init = await terraform(tf, dir, ['init', '-input=false', '-no-color'], { timeoutMs: 120_000, env });
    expect(init.code, describeRun(init)).toBe(0);
    // The provider waits ~55 s for moto's lifecycle configuration to settle (both buckets in parallel): most of this.
    const apply = await terraform(tf, dir, ['apply', '-auto-approve', '-input=false', '-no-color'], { timeoutMs: 240_000, env });
    timings.apply = apply.ms;
    expect(apply.code, `${describeRun(apply)}\n--- moto\n${moto.output().slice(-3000)}`).toBe(0);
    const out = await terraform(tf, dir, ['output', '-json'], { timeoutMs: 60_000, env });
    outputs = JSON.parse(out.stdout) as Record<string, { value: unknown }>;
    keyArn = (outputs.kms_key_arns!.value as Record<string, string>).mail!;
  }, 420_000);

  afterAll(async () => {
    for (const c of Object.values(clients)) c?.destroy();
    await moto?.stop();
    tf?.cleanup();
    console.log(`[infra deploy] terraform apply ${timings.apply} ms, second plan ${timings.plan} ms, destroy ${timings.destroy} ms`);
  });

  it('outputs: gateway_config is a valid config for the gateway, with the created key ARN filled in', () => {
    expect(keyArn).toMatch(/^arn:aws:kms:us-east-1:123456789012:key\/[0-9a-f-]{36}$/);
    const { config } = parseConfig(outputs.gateway_config!.value, 'gateway_config output');
    expect(config.rules.map((r) => [r.name, r.s3Action.kmsKeyArn])).toEqual([
      ['support', keyArn],
      ['catch-all', keyArn],
      ['archive', 'arn:aws:kms:us-east-1:123456789012:alias/aws/ses'],
    ]);
    expect(config.infra).toBeUndefined();
    expect(outputs.gateway_writer_role_arn!.value).toBe('arn:aws:iam::123456789012:role/mailroom-gateway');
    expect(outputs.rule_names!.value).toEqual(['support', 'catch-all', 'archive']);
  });

  it('bucket: policy, encryption, public access block, ownership and lifecycle are what the stack says', async () => {
    const synthPolicy = one(stackJson, 'aws_s3_bucket_policy')[1].policy as string;
    const got = await clients.s3.send(new GetBucketPolicyCommand({ Bucket: 'mailroom-inbound-mail' }));
    expect(JSON.parse(got.Policy!)).toEqual(resolved(synthPolicy));
    const enc = await clients.s3.send(new GetBucketEncryptionCommand({ Bucket: 'mailroom-inbound-mail' }));
    expect(enc.ServerSideEncryptionConfiguration!.Rules![0]).toMatchObject({ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: keyArn }, BucketKeyEnabled: true });
    const pab = await clients.s3.send(new GetPublicAccessBlockCommand({ Bucket: 'mailroom-inbound-mail' }));
    expect(pab.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true });
    const own = await clients.s3.send(new GetBucketOwnershipControlsCommand({ Bucket: 'mailroom-inbound-mail' }));
    expect(own.OwnershipControls!.Rules).toEqual([{ ObjectOwnership: 'BucketOwnerEnforced' }]);
    const lc = await clients.s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: 'mailroom-inbound-mail' }));
    expect(lc.Rules).toEqual([{ ID: 'abort-incomplete-multipart-uploads', Status: 'Enabled', Filter: { Prefix: '' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 } }]);
    // The archive bucket: in eu-central-1, written only through the role, so no bucket policy.
    const loc = await clients.s3eu.send(new GetBucketLocationCommand({ Bucket: 'mailroom-archive-eu' }));
    expect(loc.LocationConstraint).toBe('eu-central-1');
    await expect(clients.s3eu.send(new GetBucketPolicyCommand({ Bucket: 'mailroom-archive-eu' }))).rejects.toThrow(/policy does not exist/i);
  });

  it('KMS key: key policy, rotation and alias', async () => {
    const synthKey = one(stackJson, 'aws_kms_key')[1].policy as string;
    const got = await clients.kms.send(new GetKeyPolicyCommand({ KeyId: keyArn, PolicyName: 'default' }));
    expect(JSON.parse(got.Policy!)).toEqual(resolved(synthKey));
    expect((await clients.kms.send(new GetKeyRotationStatusCommand({ KeyId: keyArn }))).KeyRotationEnabled).toBe(true);
    const aliases = await clients.kms.send(new ListAliasesCommand({ KeyId: keyArn }));
    expect(aliases.Aliases!.map((a) => a.AliasName)).toEqual(['alias/mailroom-mail']);
  });

  it('SNS topic: publish policy and encryption key', async () => {
    const synthTopic = one(stackJson, 'aws_sns_topic_policy')[1].policy as string;
    const attrs = (await clients.sns.send(new GetTopicAttributesCommand({ TopicArn: TOPIC }))).Attributes!;
    expect(JSON.parse(attrs.Policy!)).toEqual(resolved(synthTopic));
    expect(attrs.KmsMasterKeyId).toBe(keyArn);
  });

  it('IAM: the S3-action role (trust + inline policy) and the gateway writer (policy attached to its role)', async () => {
    const [, role] = one(stackJson, 'aws_iam_role', (r) => r.name === 'mailroom-ses-archive');
    const getRole = await iam('GetRole', { RoleName: 'mailroom-ses-archive' });
    expect(JSON.parse(decodeURIComponent(xmlText(getRole, 'AssumeRolePolicyDocument')!))).toEqual(resolved(role.assume_role_policy));
    const inline = one(stackJson, 'aws_iam_role_policy')[1];
    const getPolicy = await iam('GetRolePolicy', { RoleName: 'mailroom-ses-archive', PolicyName: 'ses-s3-action' });
    expect(JSON.parse(decodeURIComponent(xmlText(getPolicy, 'PolicyDocument')!))).toEqual(resolved(inline.policy));

    const gw = one(stackJson, 'aws_iam_policy')[1];
    const policyArn = 'arn:aws:iam::123456789012:policy/mailroom-gateway-writer';
    const version = xmlText(await iam('GetPolicy', { PolicyArn: policyArn }), 'DefaultVersionId')!;
    const doc = xmlText(await iam('GetPolicyVersion', { PolicyArn: policyArn, VersionId: version }), 'Document')!;
    expect(JSON.parse(decodeURIComponent(doc))).toEqual(resolved(gw.policy));
    const attached = await iam('ListAttachedRolePolicies', { RoleName: 'mailroom-gateway' });
    expect(xmlAll(attached, 'PolicyArn')).toEqual([policyArn]);
    const gwRole = await iam('GetRole', { RoleName: 'mailroom-gateway' });
    expect(JSON.parse(decodeURIComponent(xmlText(gwRole, 'AssumeRolePolicyDocument')!))).toEqual(policy(one(stackJson, 'aws_iam_role', (r) => r.name === 'mailroom-gateway')[1].assume_role_policy));
  });

  it('SES: the rule set holds the rules in config order, each as configured (enabled explicit)', async () => {
    const set = await ses('DescribeReceiptRuleSet', { RuleSetName: 'mailroom-inbound' });
    expect(xmlAll(set, 'Name').filter((n) => n !== 'mailroom-inbound')).toEqual(['support', 'catch-all', 'archive']);
    const support = await ses('DescribeReceiptRule', { RuleSetName: 'mailroom-inbound', RuleName: 'support' });
    expect({
      enabled: xmlText(support, 'Enabled'),
      tls: xmlText(support, 'TlsPolicy'),
      scan: xmlText(support, 'ScanEnabled'),
      recipients: xmlAll(xmlText(support, 'Recipients') ?? '', 'member'),
      bucket: xmlText(support, 'BucketName'),
      prefix: xmlText(support, 'ObjectKeyPrefix'),
      key: xmlText(support, 'KmsKeyArn'),
      topic: xmlText(support, 'TopicArn'),
      role: xmlText(support, 'IamRoleArn'),
    }).toEqual({ enabled: 'true', tls: 'Require', scan: 'true', recipients: ['support@example.com'], bucket: 'mailroom-inbound-mail', prefix: 'support/', key: keyArn, topic: TOPIC, role: undefined });
    const archive = await ses('DescribeReceiptRule', { RuleSetName: 'mailroom-inbound', RuleName: 'archive' });
    expect([xmlText(archive, 'Enabled'), xmlText(archive, 'BucketName'), xmlText(archive, 'ObjectKeyPrefix'), xmlText(archive, 'KmsKeyArn'), xmlText(archive, 'IamRoleArn')]).toEqual([
      'true',
      'mailroom-archive-eu',
      'archive/',
      'arn:aws:kms:us-east-1:123456789012:alias/aws/ses',
      'arn:aws:iam::123456789012:role/mailroom-ses-archive',
    ]);
    // Not activated: activation is opt-in.
    expect(xmlText(await ses('DescribeActiveReceiptRuleSet', {}), 'Name')).toBeUndefined();
  });

  it('a second plan shows no changes', async () => {
    const plan = await terraform(tf, dir, ['plan', '-input=false', '-no-color', '-detailed-exitcode'], { timeoutMs: 120_000, env });
    timings.plan = plan.ms;
    expect(plan.code, describeRun(plan)).toBe(0);
    expect(plan.stdout).toContain('No changes.');
  }, 150_000);

  it('destroy refuses while the buckets and the key are guarded (the default), and changes nothing', async () => {
    const destroy = await terraform(tf, dir, ['destroy', '-auto-approve', '-input=false', '-no-color'], { timeoutMs: 120_000, env });
    expect(destroy.code, describeRun(destroy)).toBe(1);
    expect(destroy.stderr).toContain('Instance cannot be destroyed');
    expect(destroy.stdout).not.toContain('Destroying...');
    const got = await clients.s3.send(new GetBucketPolicyCommand({ Bucket: 'mailroom-inbound-mail' }));
    expect(JSON.parse(got.Policy!)).toEqual(resolved(one(stackJson, 'aws_s3_bucket_policy')[1].policy as string));
  }, 150_000);

  it('with infra.allowMailDestroy, destroy completes and removes everything', async () => {
    const count = Object.values(stackJson.resource).reduce((n, r) => n + Object.keys(r).length, 0);
    const cfg = JSON.parse(readFileSync('examples/infra.json', 'utf8')) as { infra: Record<string, unknown> };
    cfg.infra.allowMailDestroy = true;
    stackDirFile(dir, synth(cfg, { endpointUrl: moto.endpoint }).text);
    const destroy = await terraform(tf, dir, ['destroy', '-auto-approve', '-input=false', '-no-color'], { timeoutMs: 180_000, env });
    timings.destroy = destroy.ms;
    expect(destroy.code, describeRun(destroy)).toBe(0);
    expect(destroy.stdout).toContain(`Destroy complete! Resources: ${count} destroyed.`);
    await expect(clients.s3.send(new HeadBucketCommand({ Bucket: 'mailroom-inbound-mail' }))).rejects.toThrow();
    await expect(ses('DescribeReceiptRuleSet', { RuleSetName: 'mailroom-inbound' })).rejects.toThrow(/RuleSetDoesNotExist|does not exist/);
    expect(all(stackJson, 'aws_ses_receipt_rule')).toHaveLength(3);
  }, 200_000);
});

/** Replaces the synthesized stack in a working directory that terraform already initialised. */
function stackDirFile(dir: string, synthesized: string): void {
  writeFileSync(join(dir, 'cdk.tf.json'), synthesized);
}
