import { z } from 'zod';
import { parseArn, parseKmsKeyArn } from '../ses/arn.js';
import type { ConfigProblem } from './problems.js';

/**
 * Settings only the infra module reads (`infra` in the config file). Owned by infra/; kept here so the one config
 * file a user writes is described by one schema.
 *
 * The rules' `s3Action` fields stay the single source of names: a bucket, topic or role listed here is the one a
 * rule names (by bucket name, topic ARN, role ARN — all deterministic, so a created resource has exactly the name
 * or ARN the gateway already reads). The only thing the config cannot name in advance is a KMS key the stack
 * creates; `createKmsKeys` binds such a key to rules that leave `kmsKeyArn` out, and the stack's `gateway_config`
 * output is the same config with that ARN filled in (read it with `terraform output -json gateway_config`).
 *
 * Modes: `create` — the stack creates the resource and owns its policy; `policy` — the resource exists, the stack
 * owns its whole resource policy (it replaces whatever policy is there); `reference` — the stack touches nothing and
 * prints the statements SES needs (output `manual_policy_statements`) for you to add.
 */

const KeyRef = {
  kmsKeyArn: z.string().optional().describe('Full ARN (arn:aws:kms:<region>:<account>:key/<id>) of a customer-managed key; never an alias.'),
  createdKmsKey: z.string().optional().describe('Name of a key in infra.createKmsKeys.'),
};

export const ObjectLockSchema = z
  .object({
    enabled: z.boolean().default(false).describe('Object Lock is (or is to be) enabled on the bucket.'),
    defaultRetention: z
      .object({
        mode: z.enum(['GOVERNANCE', 'COMPLIANCE']),
        days: z.number().int().positive().optional(),
        years: z.number().int().positive().optional(),
      })
      .strict()
      .optional()
      .describe('A default retention. SES cannot deliver to such a bucket, so it is refused; declare it for a referenced bucket that has one.'),
  })
  .strict();

export const InfraBucketSchema = z
  .object({
    mode: z.enum(['create', 'policy', 'reference']).default('create'),
    encryption: z
      .object(KeyRef)
      .strict()
      .optional()
      .describe('Default encryption SSE-KMS with this customer key (the bucket key is used). Absent: SSE-S3.'),
    objectLock: ObjectLockSchema.optional(),
    abortIncompleteMultipartUploadDays: z.number().int().positive().default(7),
    forceDestroy: z
      .boolean()
      .default(false)
      .describe('With infra.allowMailDestroy: let `destroy` delete this bucket with the mail still in it (without it, S3 refuses to delete a bucket that is not empty).'),
  })
  .strict();

export const InfraReferencedKeySchema = z
  .object({
    mode: z.enum(['policy', 'reference']).default('reference').describe('policy: the stack owns the whole key policy (an account-root admin statement plus the SES statements).'),
  })
  .strict();

export const InfraCreatedKeySchema = z
  .object({
    alias: z.string().optional().describe('e.g. "alias/mailroom-mail"; must not start with alias/aws/.'),
    description: z.string().optional(),
    deletionWindowInDays: z.number().int().min(7).max(30).default(30),
    rules: z.array(z.string()).default([]).describe('Rules (without s3Action.kmsKeyArn) whose mail SES encrypts under this key.'),
  })
  .strict();

export const InfraTopicSchema = z
  .object({
    mode: z.enum(['create', 'policy', 'reference']).default('create'),
    encryption: z.object(KeyRef).strict().optional().describe('SSE for the topic with a customer key; AWS-managed keys are refused.'),
  })
  .strict();

export const InfraRoleSchema = z
  .object({
    mode: z.enum(['create', 'reference']).default('create'),
  })
  .strict();

export const InfraDomainSchema = z
  .object({
    domain: z.string(),
    route53ZoneId: z.string().optional().describe('Write the TXT, MX and DKIM records into this hosted zone; without it they are outputs to paste.'),
    dkim: z.boolean().default(true),
    mx: z.boolean().default(true),
  })
  .strict();

export const GatewayWriterSchema = z
  .object({
    policyName: z.string().default('mailroom-gateway-writer'),
    rules: z.array(z.string()).optional().describe('Rules the gateway may write for; default: all.'),
    role: z
      .object({
        name: z.string(),
        trustedPrincipalArns: z.array(z.string()).default([]),
        trustedServices: z.array(z.string()).default([]),
      })
      .strict()
      .optional(),
  })
  .strict();

export const InfraSettingsSchema = z
  .object({
    activateRuleSet: z
      .boolean()
      .default(false)
      .describe('Make this the ACTIVE rule set of the region. There is one per account and region: this replaces the current one.'),
    allowActiveRuleSetDestroy: z
      .boolean()
      .default(false)
      .describe('Without it the active-set resource has prevent_destroy: destroying it would disable receiving for the whole region.'),
    allowMailDestroy: z
      .boolean()
      .default(false)
      .describe(
        'DELETES STORED MAIL. Without it, every bucket this stack creates and every KMS key it creates to encrypt mail have prevent_destroy: `destroy` refuses before it changes anything, and the mail stays readable. With it, `destroy` deletes those buckets (with the mail in them, if forceDestroy) and schedules those keys for deletion: once the deletion window ends, mail encrypted under them can never be read again.',
      ),
    domains: z.array(InfraDomainSchema).default([]),
    buckets: z.record(z.string(), InfraBucketSchema).default({}).describe('Keyed by s3Action.bucketName; unlisted buckets are created.'),
    kmsKeys: z.record(z.string(), InfraReferencedKeySchema).default({}).describe('Keyed by s3Action.kmsKeyArn; unlisted keys are referenced.'),
    createKmsKeys: z.record(z.string(), InfraCreatedKeySchema).default({}),
    topics: z.record(z.string(), InfraTopicSchema).default({}).describe('Keyed by s3Action.topicArn; unlisted topics are created.'),
    roles: z.record(z.string(), InfraRoleSchema).default({}).describe('Keyed by s3Action.iamRoleArn; unlisted roles are created.'),
    gatewayWriter: GatewayWriterSchema.optional(),
    tags: z.record(z.string(), z.string()).default({}),
  })
  .strict();
export type InfraSettings = z.infer<typeof InfraSettingsSchema>;

/** The created key (its name in infra.createKmsKeys) that encrypts a rule's mail, when the rule is bound to one. */
export function createdKmsKeyOfRule(infra: Pick<InfraSettings, 'createKmsKeys'> | undefined, ruleName: string): string | undefined {
  if (!infra) return undefined;
  return Object.entries(infra.createKmsKeys).find(([, k]) => k.rules.includes(ruleName))?.[0];
}

/** The parts of the whole config the infra checks need (kept structural so this file does not import schema.ts). */
export interface InfraCheckInput {
  region: string;
  accountId: string;
  rules: Array<{ name: string; s3Action: { bucketName: string; kmsKeyArn?: string | undefined; topicArn?: string | undefined; iamRoleArn?: string | undefined; bucketRegion?: string | undefined } }>;
  infra?: InfraSettings | undefined;
}

const DOMAIN_RE = /^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/;
const ZONE_RE = /^Z[A-Z0-9]{1,32}$/;
const ALIAS_RE = /^alias\/[A-Za-z0-9/_-]{1,250}$/;
const SERVICE_RE = /^[a-z0-9.-]+\.amazonaws\.com(?:\.cn)?$/;
const PRINCIPAL_RE = /^arn:[\w-]+:iam::\d{12}:(?:root|role\/[\w+=,.@/-]+|user\/[\w+=,.@/-]+)$/;
const IAM_NAME_RE = /^[\w+=,.@-]{1,64}$/;

/**
 * Problems only the infra can see (SES's own rules run in the schema). Returned, not thrown, so `mailroom validate`
 * and synth report them in the same format.
 */
export function infraProblems(cfg: InfraCheckInput): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const infra = cfg.infra;
  if (!infra) return out;
  const add = (path: string, message: string, fix: string) => out.push({ path, message, fix });
  const ruleNames = new Set(cfg.rules.map((r) => r.name));
  const createdKeyNames = new Set(Object.keys(infra.createKmsKeys));

  const checkKeyRef = (path: string, ref: { kmsKeyArn?: string | undefined; createdKmsKey?: string | undefined }, region: string, what: string) => {
    if (ref.kmsKeyArn !== undefined && ref.createdKmsKey !== undefined) {
      add(path, 'both kmsKeyArn and createdKmsKey are set', 'keep one of them');
    } else if (ref.kmsKeyArn === undefined && ref.createdKmsKey === undefined) {
      add(path, 'neither kmsKeyArn nor createdKmsKey is set', `name the customer-managed key for the ${what}, or remove "encryption"`);
    }
    if (ref.createdKmsKey !== undefined) {
      if (!createdKeyNames.has(ref.createdKmsKey)) {
        add(`${path}.createdKmsKey`, `"${ref.createdKmsKey}" is not a key in infra.createKmsKeys`, `add it to infra.createKmsKeys or use one of: ${[...createdKeyNames].join(', ') || '(none defined)'}`);
      } else if (region !== cfg.region) {
        add(`${path}.createdKmsKey`, `keys in infra.createKmsKeys are created in ${cfg.region}, but the ${what} is in ${region}`, `use the full ARN of a customer-managed key in ${region} (kmsKeyArn)`);
      }
    }
    if (ref.kmsKeyArn !== undefined) {
      const v = ref.kmsKeyArn;
      const arn = parseArn(v);
      if (/(^|:)alias\/aws\//.test(v)) {
        add(`${path}.kmsKeyArn`, `"${v}" is an AWS-managed key; its key policy cannot be changed, so SES could not use it for the ${what}`, 'use a customer-managed key (its full key ARN, or createdKmsKey)');
      } else {
        const key = parseKmsKeyArn(v);
        if ('error' in key) {
          add(`${path}.kmsKeyArn`, `"${v}" is ${key.error}; the ${what} needs a customer-managed key by its full ARN, never an alias`, `write it as arn:aws:kms:${region}:<account>:key/<key-id>`);
        } else if (arn && arn.region !== region) {
          add(`${path}.kmsKeyArn`, `the key is in ${arn.region}, but the ${what} is in ${region}`, `use a key in ${region}`);
        }
      }
    }
  };

  // Buckets
  const bucketRegions = new Map<string, string>();
  cfg.rules.forEach((r, i) => {
    const region = r.s3Action.bucketRegion ?? cfg.region;
    const seen = bucketRegions.get(r.s3Action.bucketName);
    if (seen !== undefined && seen !== region) {
      add(`rules[${i}].s3Action.bucketRegion`, `bucket "${r.s3Action.bucketName}" is in ${seen} for an earlier rule but in ${region} here`, 'give every rule that uses this bucket the same bucketRegion');
    } else bucketRegions.set(r.s3Action.bucketName, region);
  });
  for (const [name, b] of Object.entries(infra.buckets)) {
    const at = `infra.buckets.${name}`;
    const region = bucketRegions.get(name);
    if (region === undefined) {
      add(at, `no rule delivers to bucket "${name}"`, `remove the entry or correct the name (rules use: ${[...bucketRegions.keys()].join(', ')})`);
      continue;
    }
    if (b.objectLock?.defaultRetention) {
      add(
        `${at}.objectLock.defaultRetention`,
        'SES cannot deliver to a bucket with an Object Lock default retention (docs/ses-format.md#limits): every delivery would fail',
        b.mode === 'create'
          ? 'remove defaultRetention (objectLock.enabled alone is fine; set retention per object or later), or deliver to another bucket'
          : 'remove the bucket\'s default retention (PutObjectLockConfiguration without a Rule), or deliver to another bucket',
      );
    }
    if (b.encryption) {
      if (b.mode !== 'create') {
        if (b.encryption.createdKmsKey !== undefined) add(`${at}.encryption.createdKmsKey`, 'an existing bucket cannot already be encrypted with a key this stack creates', 'write the ARN of the key the bucket uses (kmsKeyArn)');
      }
      checkKeyRef(`${at}.encryption`, b.encryption, region, `bucket ${name}`);
    }
  }

  // Referenced keys
  const ruleKeyArns = new Set(cfg.rules.map((r) => r.s3Action.kmsKeyArn).filter((k): k is string => k !== undefined));
  const bucketKeyArns = new Set(Object.values(infra.buckets).map((b) => b.encryption?.kmsKeyArn).filter((k): k is string => k !== undefined));
  const topicKeyArns = new Set(Object.values(infra.topics).map((t) => t.encryption?.kmsKeyArn).filter((k): k is string => k !== undefined));
  for (const arn of Object.keys(infra.kmsKeys)) {
    const at = `infra.kmsKeys.${arn}`;
    const key = parseKmsKeyArn(arn);
    if ('kind' in key && key.kind === 'aws-managed-ses') {
      add(at, 'alias/aws/ses is AWS-managed: SES needs no key policy statement for it and its policy cannot be changed', 'remove the entry');
    } else if (!ruleKeyArns.has(arn) && !bucketKeyArns.has(arn) && !topicKeyArns.has(arn)) {
      add(at, 'no rule, bucket or topic uses this key', 'remove the entry or correct the ARN');
    } else if ('kind' in key && key.arn.account !== cfg.accountId && infra.kmsKeys[arn]!.mode === 'policy') {
      add(`${at}.mode`, `the key belongs to account ${key.arn.account}; this stack can only manage policies in ${cfg.accountId}`, 'use mode "reference" and have the key owner add the statements');
    }
  }

  // Created keys
  const keyOfRule = new Map<string, string>();
  for (const [name, k] of Object.entries(infra.createKmsKeys)) {
    const at = `infra.createKmsKeys.${name}`;
    if (!/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(name)) add(at, `"${name}" is not a usable key name`, 'use letters, digits, "_" and "-", starting with a letter');
    if (k.alias !== undefined) {
      if (k.alias.startsWith('alias/aws/')) add(`${at}.alias`, 'alias/aws/ is reserved for AWS-managed keys', 'use another alias, e.g. "alias/mailroom-mail"');
      else if (!ALIAS_RE.test(k.alias)) add(`${at}.alias`, `"${k.alias}" is not a KMS alias name`, 'write it as alias/<name> (letters, digits, "/", "_" and "-")');
    }
    k.rules.forEach((ruleName, j) => {
      const rule = cfg.rules.find((r) => r.name === ruleName);
      if (!rule) add(`${at}.rules[${j}]`, `no rule is named "${ruleName}"`, `use one of: ${[...ruleNames].join(', ')}`);
      else if (rule.s3Action.kmsKeyArn !== undefined) add(`${at}.rules[${j}]`, `rule "${ruleName}" already names a key (s3Action.kmsKeyArn)`, 'remove kmsKeyArn from the rule, or the rule from this list');
      else if (keyOfRule.has(ruleName)) add(`${at}.rules[${j}]`, `rule "${ruleName}" is already encrypted with created key "${keyOfRule.get(ruleName)}"`, 'list each rule under one key only');
      else keyOfRule.set(ruleName, name);
    });
  }

  // Topics
  const ruleTopics = new Set(cfg.rules.map((r) => r.s3Action.topicArn).filter((t): t is string => t !== undefined));
  for (const [arn, t] of Object.entries(infra.topics)) {
    const at = `infra.topics.${arn}`;
    if (!ruleTopics.has(arn)) {
      add(at, 'no rule notifies this topic', 'remove the entry or correct the ARN');
      continue;
    }
    const parsed = parseArn(arn);
    if (parsed && parsed.account !== cfg.accountId && t.mode !== 'reference') {
      add(`${at}.mode`, `the topic belongs to account ${parsed.account}; this stack can only ${t.mode === 'create' ? 'create topics' : 'manage topic policies'} in ${cfg.accountId}`, 'use mode "reference" and have the topic owner add the statement (output manual_policy_statements)');
    }
    if (t.encryption) {
      if (t.mode !== 'create' && t.encryption.createdKmsKey !== undefined) add(`${at}.encryption.createdKmsKey`, 'an existing topic cannot already be encrypted with a key this stack creates', 'write the ARN of the key the topic uses (kmsKeyArn)');
      checkKeyRef(`${at}.encryption`, t.encryption, cfg.region, `SNS topic ${parsed?.resource ?? arn}`);
    }
  }
  // A created topic the user did not list has no encryption: nothing to check.

  // Roles
  const ruleRoles = new Set(cfg.rules.map((r) => r.s3Action.iamRoleArn).filter((t): t is string => t !== undefined));
  for (const arn of Object.keys(infra.roles)) {
    if (!ruleRoles.has(arn)) add(`infra.roles.${arn}`, 'no rule uses this role', 'remove the entry or correct the ARN');
  }
  cfg.rules.forEach((r, i) => {
    const arn = r.s3Action.iamRoleArn;
    if (arn === undefined) return;
    const mode = infra.roles[arn]?.mode ?? 'create';
    const parsed = parseArn(arn);
    if (mode === 'create' && parsed && parsed.account !== cfg.accountId) {
      add(`rules[${i}].s3Action.iamRoleArn`, `the role is in account ${parsed.account}; this stack can only create roles in ${cfg.accountId}`, `add infra.roles["${arn}"] = { "mode": "reference" }, or use a role in ${cfg.accountId}`);
    }
  });

  // Domains
  const seenDomains = new Set<string>();
  infra.domains.forEach((d, i) => {
    const at = `infra.domains[${i}]`;
    if (!DOMAIN_RE.test(d.domain)) add(`${at}.domain`, `"${d.domain}" is not a domain name`, 'write a domain such as "example.com"');
    else if (seenDomains.has(d.domain.toLowerCase())) add(`${at}.domain`, `"${d.domain}" is listed twice`, 'list each domain once');
    seenDomains.add(d.domain.toLowerCase());
    if (d.route53ZoneId !== undefined && !ZONE_RE.test(d.route53ZoneId)) add(`${at}.route53ZoneId`, `"${d.route53ZoneId}" is not a Route 53 hosted zone id`, 'use the zone id as shown by Route 53, e.g. "Z0123456789ABCDEFGHIJ", without /hostedzone/');
  });

  // Gateway writer
  const gw = infra.gatewayWriter;
  if (gw) {
    if (!IAM_NAME_RE.test(gw.policyName) || gw.policyName.length > 128) add('infra.gatewayWriter.policyName', `"${gw.policyName}" is not an IAM policy name`, 'use letters, digits and +=,.@_- (at most 128)');
    gw.rules?.forEach((name, j) => {
      if (!ruleNames.has(name)) add(`infra.gatewayWriter.rules[${j}]`, `no rule is named "${name}"`, `use one of: ${[...ruleNames].join(', ')}`);
    });
    if (gw.role) {
      if (!IAM_NAME_RE.test(gw.role.name)) add('infra.gatewayWriter.role.name', `"${gw.role.name}" is not an IAM role name`, 'use at most 64 letters, digits and +=,.@_-');
      if (gw.role.trustedPrincipalArns.length === 0 && gw.role.trustedServices.length === 0) {
        add('infra.gatewayWriter.role', 'nobody may assume the role', 'add trustedPrincipalArns (e.g. "arn:aws:iam::<account>:role/<gateway-host-role>") or trustedServices (e.g. "ec2.amazonaws.com")');
      }
      gw.role.trustedPrincipalArns.forEach((p, j) => {
        if (!PRINCIPAL_RE.test(p)) add(`infra.gatewayWriter.role.trustedPrincipalArns[${j}]`, `"${p}" is not an IAM principal ARN`, 'write arn:aws:iam::<account>:root, …:role/<name> or …:user/<name>');
      });
      gw.role.trustedServices.forEach((s, j) => {
        if (!SERVICE_RE.test(s)) add(`infra.gatewayWriter.role.trustedServices[${j}]`, `"${s}" is not a service principal`, 'write it like "ec2.amazonaws.com" or "ecs-tasks.amazonaws.com"');
      });
    }
  }
  return out;
}
