/**
 * The constructs on their own, the way docs/infra.md's "Library use" composes them: a rule set, rules with an S3
 * action bound to delivery resources, grants added by `bind(rule)` and policies rendered at synth.
 */
import { describe, expect, it } from 'vitest';
import { AwsProvider } from '../../infra/aws.js';
import { Testing, TerraformStack } from '../../infra/framework.js';
import {
  AwsManagedSesKey,
  CreatedKey,
  DeliveryBucket,
  DeliveryRole,
  DeliveryTopic,
  ReceiptRuleSet,
  S3Action,
  StopAction,
  type AccountContext,
} from '../../infra/index.js';
import { KeyPermissions } from '../../infra/key-permissions.js';
import { all, one, policy, ref, type TfJson } from './support/synth.js';

const ctx: AccountContext = { accountId: '123456789012', region: 'us-east-1', partition: 'aws' };
const rule = (name: string, recipients: string[] = []) => ({ name, enabled: true, recipients, tlsPolicy: 'Optional' as const, scanEnabled: false, s3Action: { bucketName: 'b', objectKeyPrefix: '' } });
const arnOf = (name: string) => `arn:aws:ses:us-east-1:123456789012:receipt-rule-set/set:receipt-rule/${name}`;
const SES_KEY = 'arn:aws:kms:us-east-1:123456789012:alias/aws/ses';

function stackWith(build: (stack: TerraformStack) => void): TfJson {
  const app = Testing.app();
  const stack = new TerraformStack(app, 'lib');
  new AwsProvider(stack, 'aws', { region: 'us-east-1' });
  build(stack);
  return JSON.parse(Testing.synth(stack)) as TfJson;
}

const bucketProps = { ctx, region: 'us-east-1', mode: 'create' as const, objectLockEnabled: false, abortIncompleteMultipartUploadDays: 7, forceDestroy: false, preventDestroy: false };

describe('S3Action.bind(rule)', () => {
  it('adds exactly the grants of its rule to the bucket, key and topic, and the rule waits for each of them', () => {
    const json = stackWith((s) => {
      const set = new ReceiptRuleSet(s, 'set', { ctx, ruleSetName: 'set', ruleNames: ['r'] });
      const key = new CreatedKey(s, 'key', { ctx, name: 'k', deletionWindowInDays: 7, preventDestroy: false });
      const bucket = new DeliveryBucket(s, 'bucket', { ...bucketProps, name: 'mail-bucket' });
      const topic = new DeliveryTopic(s, 'topic', { ctx, arn: 'arn:aws:sns:us-east-1:123456789012:t', mode: 'create' });
      set.addRule(rule('r'), [new S3Action({ bucket, objectKeyPrefix: 'in/', key, topic })]);
    });
    const bp = policy(one(json, 'aws_s3_bucket_policy')[1].policy);
    expect(bp.Statement.map((st) => [st.Sid, st.Resource, st.Condition])).toEqual([
      ['AllowSESPutsForRuleR', 'arn:aws:s3:::mail-bucket/in/*', { StringEquals: { 'AWS:SourceAccount': ctx.accountId, 'AWS:SourceArn': arnOf('r') } }],
    ]);
    expect(policy(one(json, 'aws_kms_key')[1].policy).Statement.map((st) => st.Sid)).toEqual(['EnableIAMPoliciesOfThisAccount', 'AllowSESToEncryptMessagesBelongingToThisAccount']);
    expect(policy(one(json, 'aws_sns_topic_policy')[1].policy).Statement[0]!.Condition).toEqual({ StringEquals: { 'AWS:SourceAccount': ctx.accountId, 'AWS:SourceArn': arnOf('r') } });
    const r = one(json, 'aws_ses_receipt_rule')[1];
    expect(r.s3_action).toEqual([{ position: 1, bucket_name: expect.stringMatching(/^\$\{aws_s3_bucket\..*\.bucket\}$/), object_key_prefix: 'in/', kms_key_arn: expect.stringMatching(/^\$\{aws_kms_key\./), topic_arn: expect.stringMatching(/^\$\{aws_sns_topic\./) }]);
    for (const type of ['aws_s3_bucket', 'aws_s3_bucket_policy', 'aws_s3_bucket_public_access_block', 'aws_kms_key', 'aws_sns_topic', 'aws_sns_topic_policy']) {
      expect(r.depends_on).toContain(ref(type, one(json, type)[0]));
    }
  });

  it('policies render at synth: a rule added later extends the role and bucket policies of resources an earlier rule created', () => {
    const json = stackWith((s) => {
      const set = new ReceiptRuleSet(s, 'set', { ctx, ruleSetName: 'set', ruleNames: ['a', 'b', 'c'] });
      const bucket = new DeliveryBucket(s, 'bucket', { ...bucketProps, name: 'mail-bucket' });
      const role = new DeliveryRole(s, 'role', { ctx, arn: 'arn:aws:iam::123456789012:role/ses', mode: 'create' });
      set.addRule(rule('a'), [new S3Action({ bucket, objectKeyPrefix: 'a/', role })]);
      set.addRule(rule('b'), [new S3Action({ bucket, objectKeyPrefix: 'b/', role })]);
      set.addRule(rule('c'), [new S3Action({ bucket, objectKeyPrefix: 'c/' })]);
    });
    const trust = policy(one(json, 'aws_iam_role')[1].assume_role_policy);
    expect(trust.Statement[0]!.Condition!.StringEquals!['aws:SourceArn']).toEqual([arnOf('a'), arnOf('b')]);
    expect(policy(one(json, 'aws_iam_role_policy')[1].policy).Statement[0]!.Resource).toEqual(['arn:aws:s3:::mail-bucket/a/*', 'arn:aws:s3:::mail-bucket/b/*']);
    // Only "c" writes as ses.amazonaws.com; the policy its bind created is still something "a" waits for.
    expect(policy(one(json, 'aws_s3_bucket_policy')[1].policy).Statement.map((st) => st.Sid)).toEqual(['AllowSESPutsForRuleC']);
    const a = one(json, 'aws_ses_receipt_rule', (r) => r.name === 'a')[1];
    expect(a.depends_on).toContain(ref('aws_s3_bucket_policy', one(json, 'aws_s3_bucket_policy')[0]));
    // Each rule after the one before.
    const [aId] = one(json, 'aws_ses_receipt_rule', (r) => r.name === 'a');
    expect(one(json, 'aws_ses_receipt_rule', (r) => r.name === 'b')[1].after).toBe(`\${aws_ses_receipt_rule.${aId}.name}`);
    expect(a.after).toBeUndefined();
  });

  it('actions take positions in order: the Stop action follows the S3 action', () => {
    const json = stackWith((s) => {
      const set = new ReceiptRuleSet(s, 'set', { ctx, ruleSetName: 'set', ruleNames: ['r'] });
      const bucket = new DeliveryBucket(s, 'bucket', { ...bucketProps, name: 'mail-bucket' });
      set.addRule(rule('r'), [new S3Action({ bucket }), new StopAction()]);
    });
    const r = one(json, 'aws_ses_receipt_rule')[1];
    expect(r.s3_action[0].position).toBe(1);
    expect(r.stop_action).toEqual([{ position: 2, scope: 'RuleSet' }]);
  });
});

describe('AwsManagedSesKey', () => {
  it('is a delivery key whose resource grants are no-ops: no key policy, nothing to wait for, the alias ARN on the rule', () => {
    const key = new AwsManagedSesKey(SES_KEY);
    key.grantSesEncrypt();
    expect(key.manualStatements()).toEqual([]);
    expect(key.dependables).toEqual([]);
    expect(key.createdKey).toBeUndefined();
    const json = stackWith((s) => {
      const set = new ReceiptRuleSet(s, 'set', { ctx, ruleSetName: 'set', ruleNames: ['r'] });
      const bucket = new DeliveryBucket(s, 'bucket', { ...bucketProps, name: 'mail-bucket' });
      set.addRule(rule('r'), [new S3Action({ bucket, key })]);
    });
    expect(all(json, 'aws_kms_key')).toEqual([]);
    expect(all(json, 'aws_kms_key_policy')).toEqual([]);
    const r = one(json, 'aws_ses_receipt_rule')[1];
    expect(r.s3_action[0].kms_key_arn).toBe(SES_KEY);
    expect(r.depends_on.every((d: string) => d.startsWith('aws_s3_bucket'))).toBe(true);
    // Only the bucket's own statement: the key adds none anywhere.
    expect(policy(one(json, 'aws_s3_bucket_policy')[1].policy).Statement.map((st) => st.Sid)).toEqual(['AllowSESPutsForRuleR']);
    expect(one(json, 'aws_s3_bucket')[1].depends_on).toBeUndefined();
  });

  it("an identity policy names it by alias (IAM matches key ARNs, not alias ARNs); a customer key by its ARN", () => {
    const perms = new KeyPermissions();
    new AwsManagedSesKey(SES_KEY).grantUse(perms, 'r1');
    stackWith((s) => new CreatedKey(s, 'key', { ctx, name: 'k', deletionWindowInDays: 7, preventDestroy: false }).grantUse(perms, 'r2'));
    expect(perms.awsManagedSesKeyRules).toEqual(['r1']);
    expect([...perms.customerKeys.values()]).toEqual([['r2']]);
    const json = stackWith((s) => {
      const set = new ReceiptRuleSet(s, 'set', { ctx, ruleSetName: 'set', ruleNames: ['r'] });
      const bucket = new DeliveryBucket(s, 'bucket', { ...bucketProps, name: 'mail-bucket' });
      const role = new DeliveryRole(s, 'role', { ctx, arn: 'arn:aws:iam::123456789012:role/ses', mode: 'create' });
      set.addRule(rule('r'), [new S3Action({ bucket, key: new AwsManagedSesKey(SES_KEY), role })]);
    });
    expect(policy(one(json, 'aws_iam_role_policy')[1].policy).Statement[1]).toEqual({
      Sid: 'KMSAccessAwsManagedSesKey',
      Effect: 'Allow',
      Action: 'kms:GenerateDataKey*',
      Resource: 'arn:aws:kms:us-east-1:123456789012:key/*',
      Condition: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/aws/ses' } },
    });
  });
});
