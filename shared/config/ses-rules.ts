import type { z } from 'zod';
import { asciiDomainFor } from '../ses/address.js';
import { isAwsManagedSesKey, parseArn, parseKmsKeyArn } from '../ses/arn.js';
import { SES_LIMITS } from '../ses/limits.js';
import { checkRuleName, checkRuleSetName } from '../ses/names.js';
import { MAX_OBJECT_KEY_PREFIX_BYTES } from '../ses/object-key.js';
import { parseRecipientCondition } from '../ses/recipients.js';
import { DEFAULT_RECEIVING_REGIONS } from '../ses/regions.js';
import { ruleOverlapWarnings, type OverlapInput } from './rule-overlap.js';

/** The shape checkSesRules sees: the config after field parsing, before SES's cross-field rules. */
interface ParsedConfig {
  region: string;
  accountId: string;
  ruleSetName: string;
  receivingRegions?: string[] | undefined;
  maxMessageSize: number;
  rules: Array<{
    name: string;
    recipients: string[];
    s3Action: {
      bucketName: string;
      objectKeyPrefix: string;
      kmsKeyArn?: string | undefined;
      topicArn?: string | undefined;
      iamRoleArn?: string | undefined;
      bucketRegion?: string | undefined;
    };
  }>;
}

type Path = (string | number)[];

/** Every SES rule problem carries a `fix` so `mailroom validate` and synth can tell the user what to change. */
export function sesProblem(ctx: z.RefinementCtx, path: Path, message: string, fix: string): void {
  ctx.addIssue({ code: 'custom', path, message, params: { fix } });
}

const REGION_RE = /^[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d$/;
const ACCOUNT_RE = /^\d{12}$/;
// S3 general-purpose bucket names; dots allowed but not next to each other or to a hyphen.
const BUCKET_RE = /^(?!xn--)(?!sthree-)(?!.*\.\.)(?!.*\.-)(?!.*-\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const IP_LIKE_RE = /^\d+\.\d+\.\d+\.\d+$/;
const ROLE_ARN_RE = /^arn:[\w-]+:iam::[0-9]+:role\/[\w+=,.@-]+$/;

export function checkSesRules(cfg: ParsedConfig, ctx: z.RefinementCtx): void {
  const receiving = cfg.receivingRegions ?? DEFAULT_RECEIVING_REGIONS;
  const regionOk = REGION_RE.test(cfg.region);
  if (!regionOk) {
    sesProblem(ctx, ['region'], `"${cfg.region}" is not an AWS region name`, 'use a region code such as "us-east-1"');
  } else if (!receiving.includes(cfg.region)) {
    sesProblem(
      ctx,
      ['region'],
      `SES email receiving is not available in ${cfg.region} (receiving regions: ${receiving.join(', ')})`,
      'use a receiving region, or add the region to "receivingRegions" if AWS now lists an inbound-smtp endpoint for it',
    );
  }
  if (!ACCOUNT_RE.test(cfg.accountId)) {
    sesProblem(ctx, ['accountId'], `"${cfg.accountId}" is not a 12-digit AWS account id`, 'write the account id as a string of exactly 12 digits, e.g. "123456789012"');
  }
  const setNameProblem = checkRuleSetName(cfg.ruleSetName);
  if (setNameProblem) sesProblem(ctx, ['ruleSetName'], `rule set name "${cfg.ruleSetName}" ${setNameProblem}`, 'rename the rule set, e.g. "mailroom-inbound"');

  if (cfg.maxMessageSize > SES_LIMITS.maxMessageBytes) {
    sesProblem(
      ctx,
      ['maxMessageSize'],
      `${cfg.maxMessageSize} bytes is above SES's 40 MB limit for the S3 action`,
      `set it to ${SES_LIMITS.maxMessageBytes} (40 MB) or less`,
    );
  }

  if (cfg.rules.length === 0) sesProblem(ctx, ['rules'], 'the rule set has no receipt rules', 'add at least one rule with an s3Action');
  if (cfg.rules.length > SES_LIMITS.rulesPerRuleSet) {
    sesProblem(
      ctx,
      ['rules'],
      `${cfg.rules.length} rules; SES allows at most ${SES_LIMITS.rulesPerRuleSet} per rule set`,
      'merge rules (a rule takes up to 100 recipients) or split them across rule sets',
    );
  }

  const seen = new Map<string, number>();
  cfg.rules.forEach((rule, i) => {
    const at: Path = ['rules', i];
    const nameProblem = checkRuleName(rule.name);
    if (nameProblem) sesProblem(ctx, [...at, 'name'], `rule name "${rule.name}" ${nameProblem}`, 'rename the rule, e.g. "deliver-to-s3"');
    const first = seen.get(rule.name);
    if (first !== undefined) {
      sesProblem(ctx, [...at, 'name'], `rule name "${rule.name}" is already used by rules[${first}]`, 'give every rule in the rule set its own name');
    } else seen.set(rule.name, i);

    if (rule.recipients.length > SES_LIMITS.recipientsPerRule) {
      sesProblem(
        ctx,
        [...at, 'recipients'],
        `${rule.recipients.length} recipients; SES allows at most ${SES_LIMITS.recipientsPerRule} per rule`,
        'use a domain condition ("example.com") or split the recipients across rules',
      );
    }
    rule.recipients.forEach((r, j) => {
      const parsed = parseRecipientCondition(r);
      if ('error' in parsed) {
        // An internationalised domain is written as DNS has it: say which form.
        const sign = r.lastIndexOf('@');
        const lead = sign < 0 && r.startsWith('.') ? '.' : '';
        const ascii = asciiDomainFor(r.slice(sign + 1 + lead.length));
        const fix = ascii
          ? `write the domain in its ASCII (punycode) form: "${r.slice(0, sign + 1)}${lead}${ascii}"`
          : 'write an address (user@example.com), a domain (example.com) or a subdomain condition (.example.com)';
        sesProblem(ctx, [...at, 'recipients', j], `recipient condition "${r}": ${parsed.error}`, fix);
      }
    });

    checkS3Action(cfg, rule.s3Action, [...at, 's3Action'], regionOk ? receiving : undefined, ctx);
  });
}

function checkS3Action(
  cfg: ParsedConfig,
  action: ParsedConfig['rules'][number]['s3Action'],
  at: Path,
  receiving: readonly string[] | undefined,
  ctx: z.RefinementCtx,
): void {
  if (!BUCKET_RE.test(action.bucketName) || IP_LIKE_RE.test(action.bucketName)) {
    sesProblem(ctx, [...at, 'bucketName'], `"${action.bucketName}" is not a valid S3 bucket name`, 'use 3–63 lowercase letters, digits, "-" and ".", starting and ending with a letter or digit');
  }
  const prefixBytes = Buffer.byteLength(action.objectKeyPrefix, 'utf8');
  if (prefixBytes > MAX_OBJECT_KEY_PREFIX_BYTES) {
    sesProblem(ctx, [...at, 'objectKeyPrefix'], `the prefix is ${prefixBytes} bytes; with the message id the key would pass S3's 1024-byte limit`, `shorten it to at most ${MAX_OBJECT_KEY_PREFIX_BYTES} bytes`);
  }

  if (action.kmsKeyArn !== undefined) {
    const key = parseKmsKeyArn(action.kmsKeyArn);
    const region = receiving ? cfg.region : '<region>';
    const account = ACCOUNT_RE.test(cfg.accountId) ? cfg.accountId : '<account>';
    const fix = `use the key's full ARN (arn:aws:kms:${region}:<account>:key/<key-id>) or the AWS-managed key arn:aws:kms:${region}:${account}:alias/aws/ses`;
    if ('error' in key) {
      sesProblem(ctx, [...at, 'kmsKeyArn'], `"${action.kmsKeyArn}" is ${key.error}; SES needs a full key ARN (an alias could resolve to a key in the sender's account)`, fix);
    } else if (key.arn.region !== cfg.region) {
      sesProblem(ctx, [...at, 'kmsKeyArn'], `the KMS key is in ${key.arn.region}, but SES needs it in the receiving region ${cfg.region}`, `use a key in ${cfg.region}`);
    } else if (key.kind === 'aws-managed-ses' && key.arn.account !== cfg.accountId) {
      sesProblem(ctx, [...at, 'kmsKeyArn'], `alias/aws/ses must be this account's AWS-managed key (${cfg.accountId}), not ${key.arn.account}'s`, `use arn:aws:kms:${cfg.region}:${cfg.accountId}:alias/aws/ses`);
    }
  }

  if (action.topicArn !== undefined) {
    const topic = parseArn(action.topicArn);
    if (!topic || topic.service !== 'sns' || !topic.region || !topic.account || !/^[A-Za-z0-9_-]{1,256}(?:\.fifo)?$/.test(topic.resource)) {
      sesProblem(ctx, [...at, 'topicArn'], `"${action.topicArn}" is not an SNS topic ARN`, `write it as arn:aws:sns:${cfg.region}:<account>:<topic-name>`);
    } else if (topic.resource.endsWith('.fifo')) {
      sesProblem(ctx, [...at, 'topicArn'], 'SES cannot publish to a FIFO topic', 'use a standard SNS topic');
    } else if (topic.region !== cfg.region) {
      sesProblem(ctx, [...at, 'topicArn'], `the SNS topic is in ${topic.region}, but SES needs it in the receiving region ${cfg.region}`, `use a topic in ${cfg.region}`);
    }
  }

  if (action.iamRoleArn !== undefined) {
    if (action.iamRoleArn.length < 20 || action.iamRoleArn.length > 2048 || !ROLE_ARN_RE.test(action.iamRoleArn)) {
      sesProblem(ctx, [...at, 'iamRoleArn'], `"${action.iamRoleArn}" is not an IAM role ARN of the form SES accepts`, 'write it as arn:aws:iam::<account>:role/<role-name> (no role path)');
    }
  }

  if (action.bucketRegion !== undefined) {
    if (!REGION_RE.test(action.bucketRegion)) {
      sesProblem(ctx, [...at, 'bucketRegion'], `"${action.bucketRegion}" is not an AWS region name`, 'use a region code such as "eu-west-1", or remove it when the bucket is in the receiving region');
    } else if (action.bucketRegion !== cfg.region && action.iamRoleArn === undefined) {
      const where = receiving && !receiving.includes(action.bucketRegion) ? ', a region without SES receiving' : '';
      sesProblem(
        ctx,
        [...at, 'iamRoleArn'],
        `the bucket is in ${action.bucketRegion}${where}, not the receiving region ${cfg.region}; SES can only write there through an IAM role`,
        'set iamRoleArn to a role SES can assume (the infra module can create it), or use a bucket in the receiving region',
      );
    }
  }
}

/**
 * The gateway calls KMS itself, not through SES; whether the AWS-managed key admits that is UNCONFIRMED
 * (docs/ses-format.md#the-aws-managed-key-and-the-gateway). Said by `validate` for a config with a gateway and by the infra synth for a gateway writer.
 */
export function awsManagedKeyForGateway(ruleName: string): string {
  return `rule "${ruleName}" encrypts with alias/aws/ses. Whether a principal other than SES may use the AWS-managed key is UNCONFIRMED (docs/ses-format.md#the-aws-managed-key-and-the-gateway): the gateway's writes for this rule may be refused by KMS. Use a customer-managed key (infra.createKmsKeys) for rules the gateway writes.`;
}

/** Things SES accepts but that are almost certainly mistakes, or may not work; reported without failing validation. */
export function sesWarnings(cfg: OverlapInput & { gateway?: unknown }): string[] {
  const out: string[] = [];
  cfg.rules.forEach((rule, i) => {
    const p = rule.s3Action.objectKeyPrefix;
    if (p.startsWith('/') || p.includes('//')) {
      out.push(`rules[${i}].s3Action.objectKeyPrefix: "${p}" gives keys with a leading or doubled "/" (mailroom keeps the prefix verbatim; what SES does with such a prefix is unconfirmed); drop the extra "/" unless you mean it`);
    }
    const key = rule.s3Action.kmsKeyArn;
    if (cfg.gateway !== undefined && key !== undefined && isAwsManagedSesKey(key)) {
      out.push(`rules[${i}].s3Action.kmsKeyArn: ${awsManagedKeyForGateway(rule.name)}`);
    }
  });
  out.push(...ruleOverlapWarnings(cfg));
  return out;
}
