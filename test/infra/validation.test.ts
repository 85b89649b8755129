/**
 * Synth-time validation: each error exactly as the user sees it (ConfigError.message: path, message, fix).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/config/problems.js';
import { clone, synth } from './support/synth.js';

const example = JSON.parse(readFileSync(new URL('../../examples/infra.json', import.meta.url), 'utf8')) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:mailroom-inbound';

function errorOf(mutate: (cfg: any) => void): string { // eslint-disable-line @typescript-eslint/no-explicit-any
  const cfg = clone(example);
  mutate(cfg);
  try {
    synth(cfg, { source: 'mailroom.json' });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('synth succeeded');
}

describe('infra-only checks', () => {
  it('refuses an Object Lock default retention on a bucket it creates', () => {
    expect(errorOf((c) => (c.infra.buckets['mailroom-archive-eu'].objectLock = { enabled: true, defaultRetention: { mode: 'GOVERNANCE', days: 30 } }))).toBe(
      'mailroom.json: 1 problem\n' +
        '  infra.buckets.mailroom-archive-eu.objectLock.defaultRetention: SES cannot deliver to a bucket with an Object Lock default retention (docs/ses-format.md#limits): every delivery would fail\n' +
        '    fix: remove defaultRetention (objectLock.enabled alone is fine; set retention per object or later), or deliver to another bucket',
    );
  });

  it('refuses an Object Lock default retention on a bucket it is told about', () => {
    expect(errorOf((c) => (c.infra.buckets['mailroom-archive-eu'] = { mode: 'reference', objectLock: { enabled: true, defaultRetention: { mode: 'COMPLIANCE', years: 1 } } }))).toBe(
      'mailroom.json: 1 problem\n' +
        '  infra.buckets.mailroom-archive-eu.objectLock.defaultRetention: SES cannot deliver to a bucket with an Object Lock default retention (docs/ses-format.md#limits): every delivery would fail\n' +
        "    fix: remove the bucket's default retention (PutObjectLockConfiguration without a Rule), or deliver to another bucket",
    );
  });

  it('refuses an SNS topic encrypted with an AWS-managed key', () => {
    expect(errorOf((c) => (c.infra.topics[TOPIC].encryption = { kmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:alias/aws/sns' }))).toBe(
      'mailroom.json: 1 problem\n' +
        `  infra.topics.${TOPIC}.encryption.kmsKeyArn: "arn:aws:kms:us-east-1:123456789012:alias/aws/sns" is an AWS-managed key; its key policy cannot be changed, so SES could not use it for the SNS topic mailroom-inbound\n` +
        '    fix: use a customer-managed key (its full key ARN, or createdKmsKey)',
    );
  });

  it('refuses a bucket encryption key given by alias, or in another region', () => {
    expect(errorOf((c) => (c.infra.buckets['mailroom-inbound-mail'].encryption = { kmsKeyArn: 'alias/mail' }))).toBe(
      'mailroom.json: 1 problem\n' +
        '  infra.buckets.mailroom-inbound-mail.encryption.kmsKeyArn: "alias/mail" is an alias name, not a key ARN; the bucket mailroom-inbound-mail needs a customer-managed key by its full ARN, never an alias\n' +
        '    fix: write it as arn:aws:kms:us-east-1:<account>:key/<key-id>',
    );
    expect(errorOf((c) => (c.infra.buckets['mailroom-archive-eu'].encryption = { createdKmsKey: 'mail' }))).toBe(
      'mailroom.json: 1 problem\n' +
        '  infra.buckets.mailroom-archive-eu.encryption.createdKmsKey: keys in infra.createKmsKeys are created in us-east-1, but the bucket mailroom-archive-eu is in eu-central-1\n' +
        '    fix: use the full ARN of a customer-managed key in eu-central-1 (kmsKeyArn)',
    );
  });

  it('created keys: unknown rule, rule that already names a key, unknown key reference', () => {
    expect(
      errorOf((c) => {
        c.infra.createKmsKeys.mail.rules = ['support', 'nope', 'archive'];
        c.infra.topics[TOPIC].encryption = { createdKmsKey: 'other' };
      }),
    ).toBe(
      'mailroom.json: 3 problems\n' +
        '  infra.createKmsKeys.mail.rules[1]: no rule is named "nope"\n' +
        '    fix: use one of: support, catch-all, archive\n' +
        '  infra.createKmsKeys.mail.rules[2]: rule "archive" already names a key (s3Action.kmsKeyArn)\n' +
        '    fix: remove kmsKeyArn from the rule, or the rule from this list\n' +
        `  infra.topics.${TOPIC}.encryption.createdKmsKey: "other" is not a key in infra.createKmsKeys\n` +
        '    fix: add it to infra.createKmsKeys or use one of: mail',
    );
  });

  it('entries no rule uses', () => {
    expect(
      errorOf((c) => {
        c.infra.buckets['other-bucket'] = {};
        c.infra.roles = { 'arn:aws:iam::123456789012:role/unused': {} };
      }),
    ).toBe(
      'mailroom.json: 2 problems\n' +
        '  infra.buckets.other-bucket: no rule delivers to bucket "other-bucket"\n' +
        '    fix: remove the entry or correct the name (rules use: mailroom-inbound-mail, mailroom-archive-eu)\n' +
        '  infra.roles.arn:aws:iam::123456789012:role/unused: no rule uses this role\n' +
        '    fix: remove the entry or correct the ARN',
    );
  });

  it('resources in another account cannot be created', () => {
    expect(errorOf((c) => (c.rules[2].s3Action.iamRoleArn = 'arn:aws:iam::210987654321:role/ses'))).toBe(
      'mailroom.json: 1 problem\n' +
        '  rules[2].s3Action.iamRoleArn: the role is in account 210987654321; this stack can only create roles in 123456789012\n' +
        '    fix: add infra.roles["arn:aws:iam::210987654321:role/ses"] = { "mode": "reference" }, or use a role in 123456789012',
    );
  });

  it('a gateway-writer role nobody may assume, and a domain that is not one', () => {
    expect(
      errorOf((c) => {
        c.infra.gatewayWriter.role.trustedPrincipalArns = [];
        c.infra.domains = [{ domain: 'example', route53ZoneId: '/hostedzone/Z1' }];
      }),
    ).toBe(
      'mailroom.json: 3 problems\n' +
        '  infra.domains[0].domain: "example" is not a domain name\n' +
        '    fix: write a domain such as "example.com"\n' +
        '  infra.domains[0].route53ZoneId: "/hostedzone/Z1" is not a Route 53 hosted zone id\n' +
        '    fix: use the zone id as shown by Route 53, e.g. "Z0123456789ABCDEFGHIJ", without /hostedzone/\n' +
        '  infra.gatewayWriter.role: nobody may assume the role\n' +
        '    fix: add trustedPrincipalArns (e.g. "arn:aws:iam::<account>:role/<gateway-host-role>") or trustedServices (e.g. "ec2.amazonaws.com")',
    );
  });

  it('rules sharing a bucket must agree on its region', () => {
    expect(
      errorOf((c) => {
        c.rules[1].s3Action.bucketRegion = 'eu-west-1';
        c.rules[1].s3Action.iamRoleArn = 'arn:aws:iam::123456789012:role/ses-catch-all';
      }),
    ).toBe(
      'mailroom.json: 1 problem\n' +
      '  rules[1].s3Action.bucketRegion: bucket "mailroom-inbound-mail" is in us-east-1 for an earlier rule but in eu-west-1 here\n    fix: give every rule that uses this bucket the same bucketRegion',
    );
  });
});

describe('the shared schema and SES rules run first, in the same format', () => {
  it('a cross-region bucket without a role (shared SES rule)', () => {
    expect(errorOf((c) => delete c.rules[2].s3Action.iamRoleArn)).toBe(
      'mailroom.json: 1 problem\n' +
        '  rules[2].s3Action.iamRoleArn: the bucket is in eu-central-1, not the receiving region us-east-1; SES can only write there through an IAM role\n' +
        '    fix: set iamRoleArn to a role SES can assume (the infra module can create it), or use a bucket in the receiving region',
    );
  });
  it('an unknown infra field and a wrong type (schema)', () => {
    expect(
      errorOf((c) => {
        c.infra.activateRuleset = true;
        c.infra.activateRuleSet = 'yes';
      }),
    ).toBe(
      'mailroom.json: 2 problems\n' +
        '  infra.activateRuleSet: expected boolean, got the string "yes"\n' +
        '    fix: write it as true or false\n' +
        '  infra.activateRuleset: unknown field\n' +
        '    fix: remove it or correct its spelling (see the JSON Schema: mailroom schema)',
    );
  });
  it('a config file that does not exist', () => {
    expect(() => synth('/nonexistent/mailroom.json')).toThrow('/nonexistent/mailroom.json: 1 problem\n  (file): file not found\n    fix: pass the path of a mailroom JSON config, e.g. examples/minimal.json');
  });
});

describe('the example configs synthesize', () => {
  it.each(['infra.json', 'minimal.json', 'full.json'])('%s', (name) => {
    const out = synth(`examples/${name}`);
    expect(Object.keys(out.json.resource)).toContain('aws_ses_receipt_rule');
  });
});
