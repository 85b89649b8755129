/**
 * Every policy statement, condition and depends_on the infra synthesizes, read back from the Terraform JSON.
 * Synth is in-process (cdktf Testing), no terraform needed.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { receiptRuleArn } from '../../shared/ses/arn.js';
import { Testing } from '../../infra/framework.js';
import { STACK_SERVICES } from '../../infra/local-endpoints.js';
import { all, clone, one, policy, ref, statement, synth } from './support/synth.js';

const example = JSON.parse(readFileSync(new URL('../../examples/infra.json', import.meta.url), 'utf8')) as Record<string, unknown> & {
  rules: Array<Record<string, unknown> & { s3Action: Record<string, unknown> }>;
  infra: Record<string, unknown>;
};
const ACCOUNT = '123456789012';
const ruleArn = (ruleName: string) => receiptRuleArn({ region: 'us-east-1', accountId: ACCOUNT, ruleSetName: 'mailroom-inbound', ruleName });
const SUPPORT = ruleArn('support');
const CATCH_ALL = ruleArn('catch-all');
const ARCHIVE = ruleArn('archive');
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:mailroom-inbound';

const { json, text, stack } = synth(example);
const id = (type: string, pred: (r: any) => boolean) => ref(type, one(json, type, pred)[0]); // eslint-disable-line @typescript-eslint/no-explicit-any
const bucket = (name: string) => one(json, 'aws_s3_bucket', (r) => r.bucket === name);
const onBucket = (type: string, name: string) => one(json, type, (r) => r.bucket === `\${aws_s3_bucket.${bucket(name)[0]}.id}` || r.bucket === `\${aws_s3_bucket.${bucket(name)[0]}.bucket}`);
const rule = (name: string) => one(json, 'aws_ses_receipt_rule', (r) => r.name === name)[1];
const keyId = one(json, 'aws_kms_key')[0];
const keyArnToken = `\${aws_kms_key.${keyId}.arn}`;

describe('bucket (created)', () => {
  it('is private, owner-enforced, SSE-KMS with the created key by ARN (bucket key on), aborts incomplete multipart uploads', () => {
    expect(bucket('mailroom-inbound-mail')[1]).toMatchObject({ bucket: 'mailroom-inbound-mail', force_destroy: false });
    expect(onBucket('aws_s3_bucket_public_access_block', 'mailroom-inbound-mail')[1]).toMatchObject({
      block_public_acls: true,
      block_public_policy: true,
      ignore_public_acls: true,
      restrict_public_buckets: true,
    });
    expect(onBucket('aws_s3_bucket_ownership_controls', 'mailroom-inbound-mail')[1].rule).toEqual({ object_ownership: 'BucketOwnerEnforced' });
    expect(onBucket('aws_s3_bucket_server_side_encryption_configuration', 'mailroom-inbound-mail')[1].rule).toEqual([
      { apply_server_side_encryption_by_default: { sse_algorithm: 'aws:kms', kms_master_key_id: keyArnToken }, bucket_key_enabled: true },
    ]);
    expect(onBucket('aws_s3_bucket_lifecycle_configuration', 'mailroom-inbound-mail')[1].rule).toEqual([
      { id: 'abort-incomplete-multipart-uploads', status: 'Enabled', filter: [{ prefix: '' }], abort_incomplete_multipart_upload: [{ days_after_initiation: 7 }] },
    ]);
    expect(Testing.toHaveResourceWithProperties(text, 'aws_s3_bucket', { bucket: 'mailroom-archive-eu', object_lock_enabled: true, provider: 'aws.eu-central-1' })).toBe(true);
    expect(onBucket('aws_s3_bucket_server_side_encryption_configuration', 'mailroom-archive-eu')[1].rule).toEqual([{ apply_server_side_encryption_by_default: { sse_algorithm: 'AES256' } }]);
  });

  it('a bucket in another region gets its own provider', () => {
    expect(json.provider.aws).toEqual([
      { region: 'us-east-1', default_tags: [{ tags: { app: 'mailroom' } }] },
      { region: 'eu-central-1', alias: 'eu-central-1', default_tags: [{ tags: { app: 'mailroom' } }] },
    ]);
    for (const type of ['aws_s3_bucket_public_access_block', 'aws_s3_bucket_ownership_controls', 'aws_s3_bucket_server_side_encryption_configuration', 'aws_s3_bucket_lifecycle_configuration']) {
      expect(onBucket(type, 'mailroom-archive-eu')[1].provider).toBe('aws.eu-central-1');
      expect(onBucket(type, 'mailroom-inbound-mail')[1].provider).toBeUndefined();
    }
  });

  it('bucket policy: s3:PutObject for ses.amazonaws.com on <prefix>* with AWS:SourceAccount and the rule ARN built from names', () => {
    const [pid, p] = onBucket('aws_s3_bucket_policy', 'mailroom-inbound-mail');
    const doc = policy(p.policy);
    expect(doc.Version).toBe('2012-10-17');
    expect(doc.Statement).toEqual([
      {
        Sid: 'AllowSESPutsForRuleSupport',
        Effect: 'Allow',
        Principal: { Service: 'ses.amazonaws.com' },
        Action: 's3:PutObject',
        Resource: 'arn:aws:s3:::mailroom-inbound-mail/support/*',
        Condition: { StringEquals: { 'AWS:SourceAccount': ACCOUNT, 'AWS:SourceArn': SUPPORT } },
      },
      {
        Sid: 'AllowSESPutsForRuleCatchAll',
        Effect: 'Allow',
        Principal: { Service: 'ses.amazonaws.com' },
        Action: 's3:PutObject',
        Resource: 'arn:aws:s3:::mailroom-inbound-mail/inbound/*',
        Condition: { StringEquals: { 'AWS:SourceAccount': ACCOUNT, 'AWS:SourceArn': CATCH_ALL } },
      },
    ]);
    // No reference to any receipt rule resource: the policy cannot depend on the rule (the cycle AWS CDK hit).
    expect(JSON.stringify(p)).not.toContain('aws_ses_receipt_rule');
    // The policy waits for the public access block and ownership controls.
    expect(p.depends_on).toEqual([
      ref('aws_s3_bucket_public_access_block', onBucket('aws_s3_bucket_public_access_block', 'mailroom-inbound-mail')[0]),
      ref('aws_s3_bucket_ownership_controls', onBucket('aws_s3_bucket_ownership_controls', 'mailroom-inbound-mail')[0]),
    ]);
    expect(pid).toBeTruthy();
  });

  it('a bucket only written through a role gets no bucket policy (SES uses only the role, docs/ses-format.md#iam-role)', () => {
    expect(all(json, 'aws_s3_bucket_policy')).toHaveLength(1);
  });

  it('the prefix pattern covers keys with and without a trailing "/"', () => {
    const cfg = clone(example);
    cfg.rules = [{ name: 'r', s3Action: { bucketName: 'b-no-slash', objectKeyPrefix: 'mail' } }, { name: 's', s3Action: { bucketName: 'b-empty' } }];
    cfg.infra = {};
    const out = synth(cfg).json;
    const res = all(out, 'aws_s3_bucket_policy').map(([, p]) => policy(p.policy).Statement[0]!.Resource);
    expect(res.sort()).toEqual(['arn:aws:s3:::b-empty/*', 'arn:aws:s3:::b-no-slash/mail*']);
  });
});

describe('KMS key (created)', () => {
  const key = one(json, 'aws_kms_key')[1];
  const doc = policy(key.policy);

  it('has rotation on and an alias', () => {
    expect(key).toMatchObject({ enable_key_rotation: true, deletion_window_in_days: 30, key_usage: 'ENCRYPT_DECRYPT', customer_master_key_spec: 'SYMMETRIC_DEFAULT' });
    expect(one(json, 'aws_kms_alias')[1]).toEqual({ name: 'alias/mailroom-mail', target_key_id: `\${aws_kms_key.${keyId}.key_id}` });
  });

  it('keeps the account-root statement so IAM policies (roles, the gateway) work', () => {
    expect(statement(doc, 'EnableIAMPoliciesOfThisAccount')).toEqual({
      Sid: 'EnableIAMPoliciesOfThisAccount',
      Effect: 'Allow',
      Principal: { AWS: 'arn:aws:iam::123456789012:root' },
      Action: 'kms:*',
      Resource: '*',
    });
  });

  it('KMS key policy (docs/ses-format.md#kms-key-policy): SES may encrypt only under this account\'s encryption context, for these rules', () => {
    expect(statement(doc, 'AllowSESToEncryptMessagesBelongingToThisAccount')).toEqual({
      Sid: 'AllowSESToEncryptMessagesBelongingToThisAccount',
      Effect: 'Allow',
      Principal: { Service: 'ses.amazonaws.com' },
      Action: ['kms:Encrypt', 'kms:GenerateDataKey*'],
      Resource: '*',
      Condition: {
        StringEquals: {
          'AWS:SourceAccount': ACCOUNT,
          'AWS:SourceArn': [CATCH_ALL, SUPPORT],
          'kms:EncryptionContext:aws:ses:source-account': ACCOUNT,
        },
        Null: { 'kms:EncryptionContext:aws:ses:rule-name': false, 'kms:EncryptionContext:aws:ses:message-id': false },
      },
    });
  });

  it('SSE-KMS bucket and encrypted topic: SES gets kms:Decrypt + GenerateDataKey* (docs/ses-format.md#kms-key-policy)', () => {
    const cond = { StringEquals: { 'AWS:SourceAccount': ACCOUNT, 'AWS:SourceArn': [CATCH_ALL, SUPPORT] } };
    expect(statement(doc, 'AllowSESToWriteToBucketsEncryptedWithThisKey')).toEqual({
      Sid: 'AllowSESToWriteToBucketsEncryptedWithThisKey',
      Effect: 'Allow',
      Principal: { Service: 'ses.amazonaws.com' },
      Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      Resource: '*',
      Condition: cond,
    });
    expect(statement(doc, 'AllowSESToPublishToTopicsEncryptedWithThisKey')).toMatchObject({ Action: ['kms:Decrypt', 'kms:GenerateDataKey*'], Condition: cond });
    expect(doc.Statement).toHaveLength(4);
  });

  it('alias/aws/ses never gets a statement; the rule passes the alias ARN as configured', () => {
    expect(text).not.toMatch(/"aws_kms_key_policy"/);
    expect(rule('archive').s3_action[0].kms_key_arn).toBe('arn:aws:kms:us-east-1:123456789012:alias/aws/ses');
  });

  it('a referenced key in mode "policy" gets aws_kms_key_policy with the root + SES statements; "reference" gets none and an output', () => {
    const cfg = clone(example);
    const k1 = 'arn:aws:kms:us-east-1:123456789012:key/0f0e0d0c-0b0a-4909-8807-060504030201';
    const k2 = 'arn:aws:kms:us-east-1:123456789012:key/1f0e0d0c-0b0a-4909-8807-060504030201';
    cfg.rules = [
      { name: 'a', s3Action: { bucketName: 'bucket-a', kmsKeyArn: k1 } },
      { name: 'b', s3Action: { bucketName: 'bucket-b', kmsKeyArn: k2 } },
    ];
    cfg.infra = { kmsKeys: { [k1]: { mode: 'policy' } } };
    const out = synth(cfg);
    const [kpId, kp] = one(out.json, 'aws_kms_key_policy');
    expect(kp.key_id).toBe(k1);
    const d = policy(kp.policy);
    expect(d.Statement.map((s) => s.Sid)).toEqual(['EnableIAMPoliciesOfThisAccount', 'AllowSESToEncryptMessagesBelongingToThisAccount']);
    expect(statement(d, 'AllowSESToEncryptMessagesBelongingToThisAccount').Condition!.StringEquals!['AWS:SourceArn']).toBe(receiptRuleArn({ region: 'us-east-1', accountId: ACCOUNT, ruleSetName: 'mailroom-inbound', ruleName: 'a' }));
    expect(one(out.json, 'aws_ses_receipt_rule', (r) => r.name === 'a')[1].depends_on).toContain(ref('aws_kms_key_policy', kpId));
    const manual = out.json.output.manual_policy_statements!.value as Record<string, string>;
    expect(Object.keys(manual)).toEqual([`key policy of ${k2}`]);
    expect(JSON.parse(manual[`key policy of ${k2}`]!).Statement[0].Sid).toBe('AllowSESToEncryptMessagesBelongingToThisAccount');
    expect(out.stack.warnings.join('\n')).toContain(`key policy of ${k2} is referenced, not managed`);
    expect(out.stack.warnings.join('\n')).toContain(`key ${k1}: mode "policy" replaces the whole key policy`);
  });
});

describe('SNS topic (created)', () => {
  it('is encrypted with the created key and has the SES publish policy (SourceAccount + SourceArn)', () => {
    const [tid, topic] = one(json, 'aws_sns_topic');
    expect(topic).toEqual({ name: 'mailroom-inbound', kms_master_key_id: keyArnToken });
    const [, tp] = one(json, 'aws_sns_topic_policy');
    expect(tp.arn).toBe(`\${aws_sns_topic.${tid}.arn}`);
    expect(policy(tp.policy).Statement).toEqual([
      {
        Sid: 'AllowSESPublish',
        Effect: 'Allow',
        Principal: { Service: 'ses.amazonaws.com' },
        Action: 'SNS:Publish',
        Resource: TOPIC,
        Condition: { StringEquals: { 'AWS:SourceAccount': ACCOUNT, 'AWS:SourceArn': [CATCH_ALL, SUPPORT] } },
      },
    ]);
  });
});

describe('IAM role for the S3 action', () => {
  const [roleId, role] = one(json, 'aws_iam_role', (r) => r.name === 'mailroom-ses-archive');
  it('trusts ses.amazonaws.com for exactly this rule (confused-deputy conditions)', () => {
    expect(policy(role.assume_role_policy).Statement).toEqual([
      {
        Sid: 'AllowSESToAssumeForTheseRules',
        Effect: 'Allow',
        Principal: { Service: 'ses.amazonaws.com' },
        Action: 'sts:AssumeRole',
        Condition: { StringEquals: { 'aws:SourceAccount': ACCOUNT, 'aws:SourceArn': ARCHIVE } },
      },
    ]);
  });
  it('inline policy: s3:PutObject on the prefix, and the AWS-managed SES key selected by alias', () => {
    const [, inline] = one(json, 'aws_iam_role_policy');
    expect(inline.role).toBe(`\${aws_iam_role.${roleId}.name}`);
    expect(policy(inline.policy).Statement).toEqual([
      { Sid: 'S3Access', Effect: 'Allow', Action: 's3:PutObject', Resource: 'arn:aws:s3:::mailroom-archive-eu/archive/*' },
      {
        Sid: 'KMSAccessAwsManagedSesKey',
        Effect: 'Allow',
        Action: 'kms:GenerateDataKey*',
        Resource: 'arn:aws:kms:us-east-1:123456789012:key/*',
        Condition: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/aws/ses' } },
      },
    ]);
  });
  it('with a customer key, an SSE-KMS bucket and an encrypted topic, grants exactly those resources', () => {
    const cfg = clone(example);
    cfg.rules[0]!.s3Action.iamRoleArn = 'arn:aws:iam::123456789012:role/ses-support';
    const out = synth(cfg).json;
    const [, inline] = one(out, 'aws_iam_role_policy', (r) => String(r.role).includes('ses-support'));
    const kArn = `\${aws_kms_key.${one(out, 'aws_kms_key')[0]}.arn}`;
    expect(policy(inline.policy).Statement).toEqual([
      { Sid: 'S3Access', Effect: 'Allow', Action: 's3:PutObject', Resource: 'arn:aws:s3:::mailroom-inbound-mail/support/*' },
      { Sid: 'KMSAccess', Effect: 'Allow', Action: 'kms:GenerateDataKey*', Resource: kArn },
      { Sid: 'KMSAccessForBucketAndTopicEncryption', Effect: 'Allow', Action: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*'], Resource: kArn },
      { Sid: 'SNSAccess', Effect: 'Allow', Action: 'sns:Publish', Resource: TOPIC },
    ]);
    // support now goes through the role: its statements leave the resource policies; catch-all keeps its own.
    const bp = policy(one(out, 'aws_s3_bucket_policy')[1].policy);
    expect(bp.Statement.map((s) => s.Sid)).toEqual(['AllowSESPutsForRuleCatchAll']);
    const tp = policy(one(out, 'aws_sns_topic_policy')[1].policy);
    expect(tp.Statement[0]!.Condition!.StringEquals!['AWS:SourceArn']).toBe(CATCH_ALL);
    expect(one(out, 'aws_ses_receipt_rule', (r) => r.name === 'support')[1].s3_action[0].iam_role_arn).toMatch(/^\$\{aws_iam_role\..*ses-support.*\.arn\}$/);
  });
  it('a referenced role is not created; its trust and permissions are printed as outputs', () => {
    const cfg = clone(example);
    cfg.infra.roles = { 'arn:aws:iam::123456789012:role/mailroom-ses-archive': { mode: 'reference' } };
    const out = synth(cfg);
    expect(all(out.json, 'aws_iam_role').map(([, r]) => r.name)).toEqual(['mailroom-gateway']);
    expect(one(out.json, 'aws_ses_receipt_rule', (r) => r.name === 'archive')[1].s3_action[0].iam_role_arn).toBe('arn:aws:iam::123456789012:role/mailroom-ses-archive');
    expect(Object.keys(out.json.output.manual_policy_statements!.value).sort()).toEqual([
      'permissions of arn:aws:iam::123456789012:role/mailroom-ses-archive',
      'trust policy of arn:aws:iam::123456789012:role/mailroom-ses-archive',
    ]);
  });
});

describe('receipt rules', () => {
  it('rule set, rules chained with after, enabled explicit, tls, scan, recipients, s3_action with position', () => {
    const rs = one(json, 'aws_ses_receipt_rule_set');
    expect(rs[1]).toEqual({ rule_set_name: 'mailroom-inbound' });
    const setRef = `\${aws_ses_receipt_rule_set.${rs[0]}.rule_set_name}`;
    const support = rule('support');
    expect(support).toMatchObject({ name: 'support', rule_set_name: setRef, enabled: true, tls_policy: 'Require', scan_enabled: true, recipients: ['support@example.com'] });
    expect(support.after).toBeUndefined();
    expect(support.s3_action).toEqual([
      {
        position: 1,
        bucket_name: `\${aws_s3_bucket.${bucket('mailroom-inbound-mail')[0]}.bucket}`,
        object_key_prefix: 'support/',
        kms_key_arn: keyArnToken,
        topic_arn: `\${aws_sns_topic.${one(json, 'aws_sns_topic')[0]}.arn}`,
      },
    ]);
    const catchAll = rule('catch-all');
    expect(catchAll.after).toBe(`\${aws_ses_receipt_rule.${one(json, 'aws_ses_receipt_rule', (r) => r.name === 'support')[0]}.name}`);
    expect(catchAll).toMatchObject({ enabled: true, tls_policy: 'Optional', scan_enabled: true, recipients: ['example.com', '.example.com'] });
    const archive = rule('archive');
    expect(archive.after).toBe(`\${aws_ses_receipt_rule.${one(json, 'aws_ses_receipt_rule', (r) => r.name === 'catch-all')[0]}.name}`);
    expect(archive).toMatchObject({ enabled: true, tls_policy: 'Optional', scan_enabled: false });
    expect(archive.s3_action[0]).toMatchObject({ position: 1, object_key_prefix: 'archive/', iam_role_arn: `\${aws_iam_role.${roleIdOf('mailroom-ses-archive')}.arn}` });
  });

  it('enabled: false is written out (Terraform\'s default would also be false, but silently)', () => {
    const cfg = clone(example);
    cfg.rules[1]!.enabled = false;
    expect(one(synth(cfg).json, 'aws_ses_receipt_rule', (r) => r.name === 'catch-all')[1].enabled).toBe(false);
  });

  it('depends_on the bucket (and its settings), bucket policy, key, topic and topic policy — so SES\'s setup write succeeds', () => {
    const deps = rule('support').depends_on as string[];
    expect(deps).toEqual(
      expect.arrayContaining([
        id('aws_s3_bucket', (r) => r.bucket === 'mailroom-inbound-mail'),
        ref('aws_s3_bucket_policy', onBucket('aws_s3_bucket_policy', 'mailroom-inbound-mail')[0]),
        ref('aws_s3_bucket_server_side_encryption_configuration', onBucket('aws_s3_bucket_server_side_encryption_configuration', 'mailroom-inbound-mail')[0]),
        ref('aws_s3_bucket_public_access_block', onBucket('aws_s3_bucket_public_access_block', 'mailroom-inbound-mail')[0]),
        ref('aws_kms_key', keyId),
        id('aws_sns_topic', () => true),
        id('aws_sns_topic_policy', () => true),
      ]),
    );
    expect(deps.some((d) => d.startsWith('aws_iam'))).toBe(false);
    const archiveDeps = rule('archive').depends_on as string[];
    expect(archiveDeps).toEqual(
      expect.arrayContaining([
        id('aws_s3_bucket', (r) => r.bucket === 'mailroom-archive-eu'),
        ref('aws_iam_role', roleIdOf('mailroom-ses-archive')),
        id('aws_iam_role_policy', () => true),
      ]),
    );
    expect(archiveDeps.some((d) => d.startsWith('aws_s3_bucket_policy') || d.startsWith('aws_kms') || d.startsWith('aws_sns'))).toBe(false);
  });

  it("stopAction: SES's Stop action after the S3 action (scope RuleSet, position 2); none without it", () => {
    const cfg = clone(example);
    cfg.rules[0]!.stopAction = { scope: 'RuleSet' };
    const r = one(synth(cfg).json, 'aws_ses_receipt_rule', (x) => x.name === 'support')[1];
    expect(r.s3_action[0].position).toBe(1);
    expect(r.stop_action).toEqual([{ scope: 'RuleSet', position: 2 }]);
    expect(rule('support').stop_action).toBeUndefined();
  });

  it('synth warns, as validate does, when a rule without a KMS key also stores mail of an encrypted rule', () => {
    const cfg = clone(example);
    (cfg.infra.createKmsKeys as { mail: { rules: string[] } }).mail.rules = ['support'];
    const { stack: s } = synth(cfg);
    // "archive" (alias/aws/ses) matches all of example.com after "catch-all": its recipients get a plaintext copy too.
    expect(s.warnings.filter((w) => w.startsWith('rules['))).toEqual([
      expect.stringMatching(/^rules\[1\]\.recipients: rule "catch-all" \(no KMS key\) also matches recipients of rule "support" \(KMS key\), e\.g\. support@example\.com: .* Fix: add "stopAction"/),
      expect.stringMatching(/^rules\[1\]\.recipients: rule "catch-all" \(no KMS key\) comes before rule "archive" \(KMS key\) and also matches its recipients/),
    ]);
  });

  it('no active rule set unless asked', () => {
    expect(all(json, 'aws_ses_active_receipt_rule_set')).toHaveLength(0);
    expect(json.output.active_rule_set!.value).toBe('(not activated: infra.activateRuleSet is false)');
  });
});

describe('rule set activation (opt-in)', () => {
  it('activates after every rule, with prevent_destroy, and warns loudly', () => {
    const cfg = clone(example);
    cfg.infra.activateRuleSet = true;
    const out = synth(cfg);
    const [, active] = one(out.json, 'aws_ses_active_receipt_rule_set');
    expect(active.lifecycle).toEqual({ prevent_destroy: true });
    expect(active.depends_on).toHaveLength(3);
    expect(active.depends_on.every((d: string) => d.startsWith('aws_ses_receipt_rule.'))).toBe(true);
    const w = out.stack.warnings.find((x) => x.startsWith('infra.activateRuleSet'));
    expect(w).toBe(
      'infra.activateRuleSet: this stack makes "mailroom-inbound" THE active receipt rule set of us-east-1 for account 123456789012. There is one per account and region: applying replaces whatever set receives mail there now, and destroying the stack disables receiving for the region. ' +
        'The resource has prevent_destroy: `destroy` stops with Terraform\'s "Instance cannot be destroyed" (aws_ses_active_receipt_rule_set) and changes nothing until you set infra.allowActiveRuleSetDestroy to true (or activate another rule set by hand and `terraform state rm` this resource).',
    );
    // The warning reaches `cdktf synth` output as an annotation.
    expect(out.stack.node.metadata.filter((m) => m.type === '@cdktf/warn').map((a) => String(a.data))).toContain(w);
  });
  it('allowActiveRuleSetDestroy lifts the guard (and says so)', () => {
    const cfg = clone(example);
    cfg.infra.activateRuleSet = true;
    cfg.infra.allowActiveRuleSetDestroy = true;
    const out = synth(cfg);
    expect(one(out.json, 'aws_ses_active_receipt_rule_set')[1].lifecycle).toEqual({ prevent_destroy: false });
    expect(out.stack.warnings.join('\n')).toContain('allowActiveRuleSetDestroy is true: `destroy` WILL disable receiving.');
  });
});

describe('destroy keeps the mail (infra.allowMailDestroy off by default)', () => {
  it('created buckets and the created key that encrypts their mail have prevent_destroy; a key only for a topic does not', () => {
    for (const [, b] of all(json, 'aws_s3_bucket')) expect(b.lifecycle).toEqual({ prevent_destroy: true });
    expect(one(json, 'aws_kms_key')[1].lifecycle).toEqual({ prevent_destroy: true });
    const cfg = clone(example);
    (cfg.infra.createKmsKeys as Record<string, unknown>).topic = {};
    (cfg.infra.topics as Record<string, { encryption: unknown }>)[TOPIC]!.encryption = { createdKmsKey: 'topic' };
    const topicKey = one(synth(cfg).json, 'aws_kms_key', (k) => k.description === 'mailroom: SES receiving key topic')[1];
    expect(topicKey.lifecycle).toBeUndefined();
  });

  it('a bucket depends on the keys of its mail, so Terraform destroys a key only after its bucket is gone', () => {
    expect(bucket('mailroom-inbound-mail')[1].depends_on).toEqual([ref('aws_kms_key', keyId)]);
    // The archive bucket's mail is encrypted under alias/aws/ses, which the stack does not own.
    expect(bucket('mailroom-archive-eu')[1].depends_on).toBeUndefined();
  });

  it('says what destroy keeps, and how to let it delete the mail', () => {
    expect(stack.notes).toEqual([
      'destroy keeps the mail: buckets mailroom-inbound-mail, mailroom-archive-eu and KMS key "mail" (infra.createKmsKeys) have prevent_destroy, so `destroy` stops with Terraform\'s "Instance cannot be destroyed" before it changes anything, and stored mail stays readable. ' +
        'To delete them and the mail in them, set infra.allowMailDestroy to true (and forceDestroy on each bucket that still holds mail), run `deploy`, then `destroy`.',
    ]);
    expect(stack.node.metadata.filter((m) => m.type === '@cdktf/info').map((a) => String(a.data))).toEqual(stack.notes);
    const cfg = clone(example);
    (cfg.infra.buckets as Record<string, Record<string, unknown>>)['mailroom-inbound-mail']!.forceDestroy = true;
    expect(synth(cfg).stack.warnings).toContain('infra.buckets.mailroom-inbound-mail.forceDestroy has no effect while infra.allowMailDestroy is false: `destroy` keeps the bucket and its mail.');
  });

  it('infra.allowMailDestroy lifts the guard and says what destroy deletes', () => {
    const cfg = clone(example);
    cfg.infra.allowMailDestroy = true;
    const out = synth(cfg);
    for (const [, b] of all(out.json, 'aws_s3_bucket')) expect(b.lifecycle).toBeUndefined();
    expect(one(out.json, 'aws_kms_key')[1].lifecycle).toBeUndefined();
    expect(out.stack.notes).toEqual([]);
    expect(out.stack.warnings.find((w) => w.startsWith('infra.allowMailDestroy'))).toMatch(/^infra\.allowMailDestroy is true: `destroy` deletes buckets mailroom-inbound-mail, mailroom-archive-eu and KMS key "mail" \(infra\.createKmsKeys\)\. .*the keys of its mail are kept/);
  });
});

describe('gateway writer access', () => {
  const gw = one(json, 'aws_iam_policy')[1];
  it('least privilege: multipart writes under each prefix, GenerateDataKey under the SES context, publish', () => {
    expect(gw.name).toBe('mailroom-gateway-writer');
    expect(policy(gw.policy).Statement).toEqual([
      {
        Sid: 'WriteMessages',
        Effect: 'Allow',
        Action: ['s3:AbortMultipartUpload', 's3:ListMultipartUploadParts', 's3:PutObject'],
        Resource: ['arn:aws:s3:::mailroom-inbound-mail/inbound/*', 'arn:aws:s3:::mailroom-inbound-mail/support/*'],
      },
      {
        Sid: 'EncryptMessages1',
        Effect: 'Allow',
        Action: 'kms:GenerateDataKey',
        Resource: keyArnToken,
        Condition: { StringEquals: { 'kms:EncryptionContext:aws:ses:source-account': ACCOUNT, 'kms:EncryptionContext:aws:ses:rule-name': ['catch-all', 'support'] } },
      },
      { Sid: 'BucketEncryption1', Effect: 'Allow', Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: keyArnToken, Condition: { StringEquals: { 'kms:ViaService': 's3.us-east-1.amazonaws.com' } } },
      { Sid: 'PublishNotifications', Effect: 'Allow', Action: 'sns:Publish', Resource: TOPIC },
      { Sid: 'TopicEncryption', Effect: 'Allow', Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: keyArnToken, Condition: { StringEquals: { 'kms:ViaService': 'sns.us-east-1.amazonaws.com' } } },
    ]);
  });
  it('optional role: trusted principals, policy attached', () => {
    const [rid, role] = one(json, 'aws_iam_role', (r) => r.name === 'mailroom-gateway');
    expect(policy(role.assume_role_policy).Statement).toEqual([{ Sid: 'TrustedPrincipals', Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::123456789012:root' }, Action: 'sts:AssumeRole' }]);
    expect(one(json, 'aws_iam_role_policy_attachment')[1]).toEqual({ role: `\${aws_iam_role.${rid}.name}`, policy_arn: `\${aws_iam_policy.${one(json, 'aws_iam_policy')[0]}.arn}` });
  });
  it('warns when a rule it writes for uses alias/aws/ses (UNCONFIRMED whether the gateway may use that key)', () => {
    expect(stack.warnings.some((w) => w.includes('alias/aws/ses'))).toBe(false);
    const cfg = clone(example);
    delete (cfg.infra.gatewayWriter as { rules?: string[] }).rules;
    const out = synth(cfg);
    expect(out.stack.warnings).toContain(
      'infra.gatewayWriter: rule "archive" encrypts with alias/aws/ses. Whether a principal other than SES may use the AWS-managed key is UNCONFIRMED (docs/ses-format.md#the-aws-managed-key-and-the-gateway): the gateway\'s writes for this rule may be refused by KMS. Use a customer-managed key (infra.createKmsKeys) for rules the gateway writes.',
    );
    const st = statement(policy(one(out.json, 'aws_iam_policy')[1].policy), 'EncryptMessagesAwsManagedSesKey');
    expect(st.Condition).toEqual({
      'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/aws/ses' },
      StringEquals: { 'kms:EncryptionContext:aws:ses:source-account': ACCOUNT, 'kms:EncryptionContext:aws:ses:rule-name': 'archive' },
    });
  });
});

describe('domains', () => {
  it('without a zone: identity + DKIM, records as an output to paste', () => {
    expect(one(json, 'aws_ses_domain_identity')[1]).toEqual({ domain: 'example.com' });
    expect(all(json, 'aws_route53_record')).toHaveLength(0);
    const recs = json.output.dns_records!.value as Array<{ name: string; type: string; value: string }>;
    expect(recs.map((r) => r.type)).toEqual(['TXT', 'MX', 'CNAME', 'CNAME', 'CNAME']);
    expect(recs[1]).toEqual({ domain: 'example.com', name: 'example.com', type: 'MX', value: '10 inbound-smtp.us-east-1.amazonaws.com' });
    expect(recs[0]!.name).toBe('_amazonses.example.com');
  });
  it('with a zone: TXT, MX and three DKIM CNAMEs in Route 53', () => {
    const cfg = clone(example);
    cfg.infra.domains = [{ domain: 'mail.example.org', route53ZoneId: 'Z0123456789ABCDEFGHIJ' }];
    const out = synth(cfg).json;
    const order = ['TXT', 'MX', 'CNAME'];
    const recs = all(out, 'aws_route53_record')
      .map(([, r]) => r)
      .sort((a, b) => order.indexOf(a.type) - order.indexOf(b.type) || String(a.name).localeCompare(String(b.name)));
    expect(recs.map((r) => [r.type, r.zone_id])).toEqual([
      ['TXT', 'Z0123456789ABCDEFGHIJ'],
      ['MX', 'Z0123456789ABCDEFGHIJ'],
      ['CNAME', 'Z0123456789ABCDEFGHIJ'],
      ['CNAME', 'Z0123456789ABCDEFGHIJ'],
      ['CNAME', 'Z0123456789ABCDEFGHIJ'],
    ]);
    expect(recs[1]).toMatchObject({ name: 'mail.example.org', records: ['10 inbound-smtp.us-east-1.amazonaws.com'] });
    expect(recs[0].records[0]).toMatch(/^\$\{aws_ses_domain_identity\..*\.verification_token\}$/);
    expect(recs[2].name).toMatch(/^\$\{element\(aws_ses_domain_dkim\..*\.dkim_tokens, 0\)\}\._domainkey\.mail\.example\.org$/);
    expect(out.output.dns_records).toBeUndefined();
  });
});

describe('referenced buckets and topics', () => {
  it('"policy" manages only the bucket policy, "reference" touches nothing and prints the statements', () => {
    const cfg = clone(example);
    cfg.infra.buckets = { 'mailroom-inbound-mail': { mode: 'policy' }, 'mailroom-archive-eu': { mode: 'reference' } };
    cfg.infra.topics = { [TOPIC]: { mode: 'reference' } };
    const out = synth(cfg);
    expect(all(out.json, 'aws_s3_bucket')).toHaveLength(0);
    expect(one(out.json, 'aws_s3_bucket_policy')[1].bucket).toBe('mailroom-inbound-mail');
    expect(all(out.json, 'aws_sns_topic')).toHaveLength(0);
    expect(all(out.json, 'aws_sns_topic_policy')).toHaveLength(0);
    expect(Object.keys(out.json.output.manual_policy_statements!.value)).toEqual([`topic policy of ${TOPIC}`]);
    expect(one(out.json, 'aws_ses_receipt_rule', (r) => r.name === 'support')[1].s3_action[0]).toMatchObject({ bucket_name: 'mailroom-inbound-mail', topic_arn: TOPIC });
  });
});

describe('outputs the gateway reads as they are', () => {
  it('gateway_config is the config minus infra, with the created key ARN filled in', () => {
    const gc = json.output.gateway_config!.value as { rules: Array<{ s3Action: Record<string, string> }> };
    expect(Object.keys(gc).sort()).toEqual(['accountId', 'maxMessageSize', 'region', 'ruleSetName', 'rules']);
    expect(gc.rules.map((r) => r.s3Action.kmsKeyArn)).toEqual([keyArnToken, keyArnToken, 'arn:aws:kms:us-east-1:123456789012:alias/aws/ses']);
  });
  it('rules, names, role and key ARNs', () => {
    expect(json.output.rule_names!.value).toEqual(['support', 'catch-all', 'archive']);
    expect(json.output.rules!.value.archive).toEqual({
      rule_arn: ARCHIVE,
      bucket_name: 'mailroom-archive-eu',
      bucket_region: 'eu-central-1',
      object_key_prefix: 'archive/',
      kms_key_arn: 'arn:aws:kms:us-east-1:123456789012:alias/aws/ses',
      iam_role_arn: 'arn:aws:iam::123456789012:role/mailroom-ses-archive',
    });
    expect(json.output.kms_key_arns!.value).toEqual({ mail: keyArnToken });
    expect(json.output.ses_role_arns!.value).toEqual(['arn:aws:iam::123456789012:role/mailroom-ses-archive']);
    expect(Object.keys(json.output)).toEqual(expect.arrayContaining(['gateway_writer_policy_arn', 'gateway_writer_role_arn', 'rule_set_name']));
  });
});

describe('local endpoints (AWS_ENDPOINT_URL at synth)', () => {
  it('every provider gets an endpoint for every service, path-style S3 and the skip flags', () => {
    const out = synth(example, { endpointUrl: 'http://127.0.0.1:4566' });
    expect(out.json.provider.aws).toHaveLength(2);
    for (const p of out.json.provider.aws) {
      expect(p).toMatchObject({
        endpoints: [Object.fromEntries(STACK_SERVICES.map((s) => [s, 'http://127.0.0.1:4566']))],
        s3_use_path_style: true,
        skip_credentials_validation: true,
        skip_metadata_api_check: 'true',
        skip_requesting_account_id: true,
        skip_region_validation: true,
      });
    }
    expect(STACK_SERVICES).toEqual(['iam', 'kms', 'route53', 's3', 'ses', 'sns', 'sts']);
    expect(out.stack.warnings).toContain('AWS_ENDPOINT_URL is set: the provider talks to http://127.0.0.1:4566, not AWS.');
  });
  it('without it, nothing of the sort', () => {
    expect(JSON.stringify(json.provider)).not.toMatch(/endpoints|skip_/);
  });
});

function roleIdOf(name: string): string {
  return one(json, 'aws_iam_role', (r) => r.name === name)[0];
}
