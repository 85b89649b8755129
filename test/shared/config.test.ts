/** Every SES rule the shared validation enforces, with the exact message and fix a user sees. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, receivingConfigJsonSchema, type ReceivingConfigInput } from '../../shared/config/index.js';

const ROOT = join(import.meta.dirname, '..', '..');

function base(): ReceivingConfigInput & { rules: Array<Record<string, unknown> & { s3Action: Record<string, unknown> }> } {
  return {
    region: 'us-east-1',
    accountId: '123456789012',
    ruleSetName: 'inbound',
    rules: [{ name: 'deliver', recipients: ['example.com'], s3Action: { bucketName: 'mail-bucket' } }],
  };
}

function problems(cfg: unknown): Array<{ path: string; message: string; fix: string }> {
  try {
    parseConfig(cfg);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

function only(cfg: unknown) {
  const p = problems(cfg);
  expect(p).toHaveLength(1);
  return p[0]!;
}

describe('a valid config', () => {
  it('parses with SES-like defaults made explicit', () => {
    const { config, warnings } = parseConfig(base());
    expect(warnings).toEqual([]);
    expect(config.maxMessageSize).toBe(40 * 1024 * 1024);
    expect(config.rules[0]).toEqual({
      name: 'deliver',
      enabled: true,
      recipients: ['example.com'],
      tlsPolicy: 'Optional',
      scanEnabled: false,
      s3Action: { bucketName: 'mail-bucket', objectKeyPrefix: '' },
    });
  });

  it('ships examples that validate without warnings, every rule kept in order with its bucket', () => {
    const examples = readdirSync(join(ROOT, 'examples')).filter((f) => f.endsWith('.json') && f !== 'mailroom.schema.json');
    expect(examples).toEqual(expect.arrayContaining(['minimal.json', 'full.json']));
    for (const f of examples) {
      const raw = JSON.parse(readFileSync(join(ROOT, 'examples', f), 'utf8')) as { ruleSetName: string; rules: Array<{ name: string; s3Action: { bucketName: string } }> };
      const { config, warnings } = parseConfig(raw, f);
      expect(warnings, f).toEqual([]);
      expect(config.ruleSetName, f).toBe(raw.ruleSetName);
      expect(config.rules.map((r) => [r.name, r.s3Action.bucketName]), f).toEqual(raw.rules.map((r) => [r.name, r.s3Action.bucketName]));
    }
  });
});

describe('KMS key', () => {
  const withKey = (kmsKeyArn: string) => {
    const c = base();
    c.rules[0]!.s3Action.kmsKeyArn = kmsKeyArn;
    return c;
  };
  it('accepts a full key ARN and this account’s alias/aws/ses', () => {
    expect(problems(withKey('arn:aws:kms:us-east-1:210987654321:key/0f0e0d0c-0b0a-4909-8807-060504030201'))).toEqual([]);
    expect(problems(withKey('arn:aws:kms:us-east-1:123456789012:key/mrk-1234abcd1234abcd1234abcd1234abcd'))).toEqual([]);
    expect(problems(withKey('arn:aws:kms:us-east-1:123456789012:alias/aws/ses'))).toEqual([]);
  });
  const fix = 'use the key\'s full ARN (arn:aws:kms:us-east-1:<account>:key/<key-id>) or the AWS-managed key arn:aws:kms:us-east-1:123456789012:alias/aws/ses';
  it('refuses an alias ARN other than alias/aws/ses', () => {
    expect(only(withKey('arn:aws:kms:us-east-1:123456789012:alias/mail'))).toEqual({
      path: 'rules[0].s3Action.kmsKeyArn',
      message: '"arn:aws:kms:us-east-1:123456789012:alias/mail" is an alias ARN other than alias/aws/ses; SES needs a full key ARN (an alias could resolve to a key in the sender\'s account)',
      fix,
    });
  });
  it('refuses an alias name', () => {
    expect(only(withKey('alias/aws/ses')).message).toBe('"alias/aws/ses" is an alias name, not a key ARN; SES needs a full key ARN (an alias could resolve to a key in the sender\'s account)');
  });
  it('refuses a bare key id', () => {
    expect(only(withKey('0f0e0d0c-0b0a-4909-8807-060504030201')).message).toBe(
      '"0f0e0d0c-0b0a-4909-8807-060504030201" is a bare key id, not a key ARN; SES needs a full key ARN (an alias could resolve to a key in the sender\'s account)',
    );
  });
  it('refuses a key outside the receiving region', () => {
    expect(only(withKey('arn:aws:kms:eu-west-1:123456789012:key/0f0e0d0c-0b0a-4909-8807-060504030201'))).toEqual({
      path: 'rules[0].s3Action.kmsKeyArn',
      message: 'the KMS key is in eu-west-1, but SES needs it in the receiving region us-east-1',
      fix: 'use a key in us-east-1',
    });
  });
  it('refuses another account’s alias/aws/ses', () => {
    expect(only(withKey('arn:aws:kms:us-east-1:999999999999:alias/aws/ses')).message).toBe(
      "alias/aws/ses must be this account's AWS-managed key (123456789012), not 999999999999's",
    );
  });
});

describe('SNS topic', () => {
  const withTopic = (topicArn: string) => {
    const c = base();
    c.rules[0]!.s3Action.topicArn = topicArn;
    return c;
  };
  it('refuses a topic outside the receiving region', () => {
    expect(only(withTopic('arn:aws:sns:us-west-2:123456789012:mail'))).toEqual({
      path: 'rules[0].s3Action.topicArn',
      message: 'the SNS topic is in us-west-2, but SES needs it in the receiving region us-east-1',
      fix: 'use a topic in us-east-1',
    });
  });
  it('refuses what is not a topic ARN, and FIFO topics', () => {
    expect(only(withTopic('mail-topic'))).toEqual({
      path: 'rules[0].s3Action.topicArn',
      message: '"mail-topic" is not an SNS topic ARN',
      fix: 'write it as arn:aws:sns:us-east-1:<account>:<topic-name>',
    });
    expect(only(withTopic('arn:aws:sns:us-east-1:123456789012:mail.fifo')).message).toBe('SES cannot publish to a FIFO topic');
  });
});

describe('regions', () => {
  it('refuses a region without SES receiving, and the list can be overridden', () => {
    const c = base();
    c.region = 'sa-east-1';
    expect(only(c)).toEqual({
      path: 'region',
      message: 'SES email receiving is not available in sa-east-1 (receiving regions: us-east-1, us-east-2, us-west-1, us-west-2, ca-central-1, eu-west-1, eu-west-2, eu-central-1, ap-northeast-1, ap-southeast-1, ap-southeast-2)',
      fix: 'use a receiving region, or add the region to "receivingRegions" if AWS now lists an inbound-smtp endpoint for it',
    });
    expect(problems({ ...c, receivingRegions: ['sa-east-1'] })).toEqual([]);
  });
  it('requires the IAM role for a bucket in another region', () => {
    const c = base();
    c.rules[0]!.s3Action.bucketRegion = 'sa-east-1';
    expect(only(c)).toEqual({
      path: 'rules[0].s3Action.iamRoleArn',
      message: 'the bucket is in sa-east-1, a region without SES receiving, not the receiving region us-east-1; SES can only write there through an IAM role',
      fix: 'set iamRoleArn to a role SES can assume (the infra module can create it), or use a bucket in the receiving region',
    });
    c.rules[0]!.s3Action.iamRoleArn = 'arn:aws:iam::123456789012:role/ses-writer';
    expect(problems(c)).toEqual([]);
  });
  it('refuses a malformed IAM role ARN', () => {
    const c = base();
    c.rules[0]!.s3Action.iamRoleArn = 'arn:aws:iam::123456789012:role/path/ses-writer';
    expect(only(c)).toEqual({
      path: 'rules[0].s3Action.iamRoleArn',
      message: '"arn:aws:iam::123456789012:role/path/ses-writer" is not an IAM role ARN of the form SES accepts',
      fix: 'write it as arn:aws:iam::<account>:role/<role-name> (no role path)',
    });
  });
});

describe('names', () => {
  it('rule names: charset and 64 characters', () => {
    const c = base();
    c.rules[0]!.name = 'bad name';
    expect(only(c)).toEqual({
      path: 'rules[0].name',
      message: 'rule name "bad name" may contain only letters, digits, "_", "-" and ".", and must start and end with a letter or digit',
      fix: 'rename the rule, e.g. "deliver-to-s3"',
    });
    c.rules[0]!.name = 'a'.repeat(65);
    expect(only(c).message).toBe(`rule name "${'a'.repeat(65)}" is 65 characters; SES allows at most 64`);
    c.rules[0]!.name = 'v1.rule_a-b';
    expect(problems(c)).toEqual([]);
  });
  it('rule set names: no dots', () => {
    const c = base();
    c.ruleSetName = 'in.bound';
    expect(only(c)).toEqual({
      path: 'ruleSetName',
      message: 'rule set name "in.bound" may contain only letters, digits, "_" and "-", and must start and end with a letter or digit',
      fix: 'rename the rule set, e.g. "mailroom-inbound"',
    });
  });
  it('rule names are unique in a set', () => {
    const c = base();
    c.rules.push({ ...c.rules[0]!, s3Action: { bucketName: 'other-bucket' } });
    expect(only(c)).toEqual({ path: 'rules[1].name', message: 'rule name "deliver" is already used by rules[0]', fix: 'give every rule in the rule set its own name' });
  });
});

describe('limits', () => {
  it('at most 100 recipients per rule', () => {
    const c = base();
    c.rules[0]!.recipients = Array.from({ length: 101 }, (_, i) => `user${i}@example.com`);
    expect(only(c)).toEqual({
      path: 'rules[0].recipients',
      message: '101 recipients; SES allows at most 100 per rule',
      fix: 'use a domain condition ("example.com") or split the recipients across rules',
    });
    c.rules[0]!.recipients = c.rules[0]!.recipients!.slice(0, 100);
    expect(problems(c)).toEqual([]);
  });
  it('at most 200 rules per rule set', () => {
    const c = base();
    c.rules = Array.from({ length: 201 }, (_, i) => ({ name: `r${i}`, s3Action: { bucketName: 'mail-bucket' } }));
    expect(only(c)).toEqual({
      path: 'rules',
      message: '201 rules; SES allows at most 200 per rule set',
      fix: 'merge rules (a rule takes up to 100 recipients) or split them across rule sets',
    });
  });
  it('message size limit: 40 MB by default, never above', () => {
    const c = { ...base(), maxMessageSize: 40 * 1024 * 1024 + 1 };
    expect(only(c)).toEqual({
      path: 'maxMessageSize',
      message: "41943041 bytes is above SES's 40 MB limit for the S3 action",
      fix: 'set it to 41943040 (40 MB) or less',
    });
    expect(parseConfig({ ...base(), maxMessageSize: 10_000_000 }).config.maxMessageSize).toBe(10_000_000);
  });
});

describe('recipients and buckets', () => {
  it('refuses malformed recipient conditions', () => {
    const c = base();
    c.rules[0]!.recipients = ['user@', '..example.com', 'ok@example.com', '.example.com'];
    expect(problems(c).map((p) => `${p.path}: ${p.message}`)).toEqual([
      'rules[0].recipients[0]: recipient condition "user@": the domain is not a valid domain name',
      'rules[0].recipients[1]: recipient condition "..example.com": not a valid domain after the leading dot',
    ]);
  });
  it('names the ASCII form of an internationalised domain in the fix', () => {
    for (const [written, ascii] of [['пример.рф', 'xn--e1afmkfd.xn--p1ai'], ['.пример.рф', '.xn--e1afmkfd.xn--p1ai'], ['info@пример.рф', 'info@xn--e1afmkfd.xn--p1ai']]) {
      const c = base();
      c.rules[0]!.recipients = [written!];
      expect(only(c)).toMatchObject({ path: 'rules[0].recipients[0]', fix: `write the domain in its ASCII (punycode) form: "${ascii}"` });
      c.rules[0]!.recipients = [ascii!];
      expect(parseConfig(c).config.rules[0]!.recipients).toEqual([ascii]);
    }
  });
  it('refuses invalid bucket names', () => {
    const c = base();
    c.rules[0]!.s3Action.bucketName = 'My_Bucket';
    expect(only(c)).toEqual({
      path: 'rules[0].s3Action.bucketName',
      message: '"My_Bucket" is not a valid S3 bucket name',
      fix: 'use 3–63 lowercase letters, digits, "-" and ".", starting and ending with a letter or digit',
    });
  });
  it('warns about prefixes with a leading or doubled slash', () => {
    const c = base();
    c.rules[0]!.s3Action.objectKeyPrefix = '/mail//in';
    expect(parseConfig(c).warnings).toEqual([
      'rules[0].s3Action.objectKeyPrefix: "/mail//in" gives keys with a leading or doubled "/" (mailroom keeps the prefix verbatim; what SES does with such a prefix is unconfirmed); drop the extra "/" unless you mean it',
    ]);
  });
  it('warns when the gateway would encrypt with alias/aws/ses, not when only SES does', () => {
    const c = base();
    c.rules[0]!.s3Action.kmsKeyArn = 'arn:aws:kms:us-east-1:123456789012:alias/aws/ses';
    expect(parseConfig(c).warnings).toEqual([]);
    c.gateway = { hostname: 'mx.example.com', spoolDir: '/var/spool/mailroom' };
    const [w, ...more] = parseConfig(c).warnings;
    expect(more).toEqual([]);
    expect(w).toMatch(/^rules\[0\]\.s3Action\.kmsKeyArn: rule "[^"]+" encrypts with alias\/aws\/ses\. .*Use a customer-managed key/);
  });
});

describe('stop action', () => {
  it('is SES\'s StopAction: scope RuleSet, the only scope SES has (and the default)', () => {
    const c = base();
    c.rules[0]!.stopAction = {};
    expect(parseConfig(c).config.rules[0]!.stopAction).toEqual({ scope: 'RuleSet' });
    c.rules[0]!.stopAction = { scope: 'RuleSet' };
    expect(parseConfig(c).config.rules[0]!.stopAction).toEqual({ scope: 'RuleSet' });
    (c.rules[0] as Record<string, unknown>).stopAction = { scope: 'Rule' };
    expect(only(c)).toEqual({ path: 'rules[0].stopAction.scope', message: '"Rule" is not one of the allowed values', fix: 'use "RuleSet"' });
    delete c.rules[0]!.stopAction;
    expect(parseConfig(c).config.rules[0]!.stopAction).toBeUndefined();
  });
});

describe('rule overlap', () => {
  const KEY = 'arn:aws:kms:us-east-1:123456789012:key/0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d';
  /** The setup: an encrypted "support" rule before an unencrypted rule for the whole domain. */
  function supportAndRest(): ReturnType<typeof base> {
    const c = base();
    c.rules = [
      { name: 'support', recipients: ['support@acme.example'], s3Action: { bucketName: 'acme-mail', objectKeyPrefix: 'support/', kmsKeyArn: KEY } },
      { name: 'everything-else', recipients: ['acme.example'], s3Action: { bucketName: 'acme-mail', objectKeyPrefix: 'inbox/' } },
    ];
    return c;
  }
  const overlapWarnings = (c: unknown) => parseConfig(c).warnings.filter((w) => !w.includes('objectKeyPrefix'));

  it('warns when a rule without a KMS key also stores mail of an encrypted rule\'s recipients, with the fix', () => {
    expect(overlapWarnings(supportAndRest())).toEqual([
      'rules[1].recipients: rule "everything-else" (no KMS key) also matches recipients of rule "support" (KMS key), e.g. support@acme.example: ' +
        'SES runs every rule that matches a recipient, so their mail is also stored without KMS encryption, under s3://acme-mail/inbox/. ' +
        'Fix: add "stopAction": {"scope": "RuleSet"} to rule "support" (no later rule runs for the recipients it matched), or narrow the recipients of "everything-else".',
    ]);
  });

  it('says nothing once the encrypted rule stops the rule set, or when the rules share no recipient', () => {
    const stopped = supportAndRest();
    stopped.rules[0]!.stopAction = { scope: 'RuleSet' };
    expect(overlapWarnings(stopped)).toEqual([]);
    const apart = supportAndRest();
    apart.rules[1]!.recipients = ['.acme.example']; // subdomains only: support@acme.example is not among them
    expect(overlapWarnings(apart)).toEqual([]);
    const disabled = supportAndRest();
    disabled.rules[1]!.enabled = false;
    expect(overlapWarnings(disabled)).toEqual([]);
  });

  it('counts a key from infra.createKmsKeys, an empty recipient list (everyone) and subdomain conditions', () => {
    const c = supportAndRest();
    delete c.rules[0]!.s3Action.kmsKeyArn;
    c.rules[0]!.recipients = ['.acme.example'];
    c.rules[1]!.recipients = [];
    (c as Record<string, unknown>).infra = { createKmsKeys: { mail: { rules: ['support'] } } };
    const [w, ...more] = overlapWarnings(c);
    expect(more).toEqual([]);
    expect(w).toMatch(/^rules\[1\]\.recipients: rule "everything-else" \(no KMS key\) also matches recipients of rule "support" \(KMS key\), e\.g\. [^@\s]+@[a-z0-9-]+\.acme\.example: /);
  });

  it('an unencrypted rule before the encrypted one: move the encrypted rule first', () => {
    const c = supportAndRest();
    c.rules.reverse();
    expect(overlapWarnings(c)).toEqual([
      'rules[0].recipients: rule "everything-else" (no KMS key) comes before rule "support" (KMS key) and also matches its recipients, e.g. support@acme.example: ' +
        'SES runs both, so their mail is also stored without KMS encryption, under s3://acme-mail/inbox/. ' +
        'Fix: move rule "support" before "everything-else" and add "stopAction": {"scope": "RuleSet"} to it, or narrow the recipients of "everything-else".',
    ]);
    c.rules[0]!.stopAction = {}; // now "support" never runs for them at all
    expect(overlapWarnings(c)).toEqual([
      'rules[0].recipients: rule "everything-else" (no KMS key) comes before rule "support" (KMS key) and stops the rule set for recipients they share, e.g. support@acme.example: ' +
        'their mail is stored only without KMS encryption, under s3://acme-mail/inbox/, and never by "support". ' +
        'Fix: move rule "support" before "everything-else", or narrow the recipients of "everything-else".',
    ]);
  });

  it('a stop before a rule that requires TLS lets its recipients\' mail in without TLS', () => {
    const c = base();
    c.rules = [
      { name: 'first', recipients: ['example.com'], stopAction: {}, s3Action: { bucketName: 'mail-bucket', objectKeyPrefix: 'first/' } },
      { name: 'secure', recipients: ['secure@example.com'], tlsPolicy: 'Require', s3Action: { bucketName: 'mail-bucket', objectKeyPrefix: 'secure/' } },
    ];
    expect(overlapWarnings(c)).toEqual([
      'rules[0].stopAction: rule "first" stops the rule set before rule "secure" (tlsPolicy "Require") for recipients they share, e.g. secure@example.com: ' +
        '"secure" never runs for them, so their mail is accepted without TLS. ' +
        'Fix: move rule "secure" before "first", set the tlsPolicy of "first" to "Require", or narrow the recipients of "first".',
    ]);
    // Without the stop both rules run, and a recipient that a Require rule matches is refused without TLS.
    delete c.rules[0]!.stopAction;
    expect(overlapWarnings(c)).toEqual([]);
  });
});

describe('shape errors', () => {
  it('lists every problem at once, shape and SES rules together', () => {
    const c = base() as Record<string, unknown> & ReturnType<typeof base>;
    (c as Record<string, unknown>).accountId = 123456789012;
    (c.rules[0] as Record<string, unknown>).tlsPolicy = 'require';
    c.rules[0]!.s3Action.kmsKeyArn = 'alias/mail';
    (c.rules[0] as Record<string, unknown>).bucket = 'x';
    delete (c as Record<string, unknown>).ruleSetName;
    expect(problems(c).map((p) => `${p.path}: ${p.message} | ${p.fix}`)).toEqual([
      'accountId: expected string, got number 123456789012 | write it as a string in double quotes',
      'ruleSetName: required field is missing | add "ruleSetName" as a string in double quotes',
      'rules[0].tlsPolicy: "require" is not one of the allowed values | write it as "Require" (the values are case-sensitive)',
      'rules[0].bucket: unknown field | remove it or correct its spelling (see the JSON Schema: mailroom schema)',
      'rules[0].s3Action.kmsKeyArn: "alias/mail" is an alias name, not a key ARN; SES needs a full key ARN (an alias could resolve to a key in the sender\'s account) | use the key\'s full ARN (arn:aws:kms:us-east-1:<account>:key/<key-id>) or the AWS-managed key arn:aws:kms:us-east-1:<account>:alias/aws/ses',
    ]);
  });
});

describe('bounds and allowed values, said plainly', () => {
  const gatewayProblem = (gateway: unknown) => only({ ...base(), gateway });

  it('an exclusive bound gets a fix that the bound itself would not fail (not "use at least 0" for "> 0")', () => {
    expect(gatewayProblem({ worker: { concurrency: 0 } })).toEqual({ path: 'gateway.worker.concurrency', message: 'must be greater than 0 (got 0)', fix: 'use a number greater than 0' });
    expect(gatewayProblem({ worker: { maxStalledCount: -1 } })).toEqual({ path: 'gateway.worker.maxStalledCount', message: 'must be at least 0 (got -1)', fix: 'use 0 or more' });
  });

  it('no zod wording ("Too big: expected number to be <=65535")', () => {
    const p = gatewayProblem({ smtp: { port: 70000 } });
    expect(p).toEqual({ path: 'gateway.smtp.port', message: 'must be at most 65535 (got 70000)', fix: 'use 65535 or less' });
    expect(JSON.stringify(problems({ ...base(), gateway: { smtp: { port: 70000 }, worker: { concurrency: 0 } } }))).not.toMatch(/Too (big|small)|expected number|[<>]=?\d/);
  });

  it('an enum refusal shows the value given', () => {
    const c = base();
    (c.rules[0] as Record<string, unknown>).tlsPolicy = 'Always';
    expect(only(c)).toEqual({ path: 'rules[0].tlsPolicy', message: '"Always" is not one of the allowed values', fix: 'use one of "Require", "Optional"' });
  });
});

describe('JSON Schema', () => {
  it('examples/mailroom.schema.json is the current export (regenerate: mailroom schema > examples/mailroom.schema.json)', () => {
    const committed = JSON.parse(readFileSync(join(ROOT, 'examples', 'mailroom.schema.json'), 'utf8'));
    expect(committed).toEqual(receivingConfigJsonSchema());
  });
  it('describes the rules and the S3 action', () => {
    const s = receivingConfigJsonSchema() as { required: string[]; properties: Record<string, unknown> };
    expect(s.required).toEqual(['region', 'accountId', 'ruleSetName', 'rules']);
    expect(JSON.stringify(s.properties.rules)).toContain('kmsKeyArn');
  });
});
