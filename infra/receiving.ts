import type { InfraSettings } from '../shared/config/infra.js';
import { InfraSettingsSchema } from '../shared/config/infra.js';
import type { ReceivingConfig } from '../shared/config/schema.js';
import { awsManagedKeyForGateway } from '../shared/config/ses-rules.js';
import { parseKmsKeyArn, receiptRuleArn } from '../shared/ses/arn.js';
import { inboundSmtpHost } from '../shared/ses/regions.js';
import { arnResourceName, idOf, partitionOf } from './arns.js';
import {
  Route53Record,
  SesActiveReceiptRuleSet,
  SesDomainDkim,
  SesDomainIdentity,
  SesReceiptRule,
  SesReceiptRuleSet,
  type AwsProvider,
} from './aws.js';
import { Construct, Fn, TerraformOutput, type ITerraformDependable } from './framework.js';
import { GatewayWriterAccess, type GatewayWriterRule } from './gateway-writer.js';
import { legacyRuleConstructId, logicalIdUnder, RULE_SET_ID, ruleConstructId } from './ids.js';
import { policyDocument } from './policy.js';
import { DeliveryBucket, DeliveryKey, DeliveryRole, DeliveryTopic, type AccountContext, type DeliveryResource, type ManualStatements } from './resources.js';
import { S3Action } from './s3-action.js';

export interface MailroomReceivingProps {
  /** A config that passed `parseConfig` and `infraProblems` (MailroomStack does both). */
  config: ReceivingConfig;
  /** Provider for a bucket region other than the receiving one (the stack's default provider serves that one). */
  providerFor?: (region: string) => AwsProvider | undefined;
}

/**
 * SES receiving into S3 from one mailroom config: rule set, rules in order, a delivery construct per rule (bucket,
 * key, topic, role — created or referenced), optional domain identities and activation, the gateway writer's access,
 * and outputs the gateway reads as they are.
 */
export class MailroomReceiving extends Construct {
  readonly ruleSet: SesReceiptRuleSet;
  readonly rules = new Map<string, SesReceiptRule>();
  readonly buckets = new Map<string, DeliveryBucket>();
  readonly createdKeys = new Map<string, DeliveryKey>();
  readonly referencedKeys = new Map<string, DeliveryKey>();
  readonly topics = new Map<string, DeliveryTopic>();
  readonly roles = new Map<string, DeliveryRole>();
  readonly activeRuleSet?: SesActiveReceiptRuleSet;
  readonly gatewayWriter?: GatewayWriterAccess;
  /** Things the user must know that do not stop the synth (printed as synth warnings by MailroomStack). */
  readonly warnings: string[] = [];
  /** What the user should know about the stack as configured (printed as synth info by MailroomStack). */
  readonly notes: string[] = [];
  private readonly mailKeyNames: string[] = [];

  constructor(scope: Construct, id: string, props: MailroomReceivingProps) {
    super(scope, id);
    const cfg = props.config;
    const infra: InfraSettings = cfg.infra ?? InfraSettingsSchema.parse({});
    const ctx: AccountContext = { accountId: cfg.accountId, region: cfg.region, partition: partitionOf(cfg.region) };
    const ruleArnOf = (ruleName: string) => receiptRuleArn({ partition: ctx.partition, region: cfg.region, accountId: cfg.accountId, ruleSetName: cfg.ruleSetName, ruleName });

    this.ruleSet = new SesReceiptRuleSet(this, RULE_SET_ID, { ruleSetName: cfg.ruleSetName });

    // Stored mail outlives the stack unless the config says otherwise: what holds it and what decrypts it is guarded.
    const keepMail = !infra.allowMailDestroy;

    // --- keys -------------------------------------------------------------------------------------------------
    const bucketKeyNames = new Set(Object.values(infra.buckets).flatMap((b) => (b.encryption?.createdKmsKey !== undefined ? [b.encryption.createdKmsKey] : [])));
    for (const [name, k] of Object.entries(infra.createKmsKeys)) {
      const encryptsMail = k.rules.length > 0 || bucketKeyNames.has(name);
      this.createdKeys.set(
        name,
        new DeliveryKey(this, `kms-${idOf(name)}`, { ctx, kind: 'created', name, alias: k.alias, description: k.description, deletionWindowInDays: k.deletionWindowInDays, preventDestroy: keepMail && encryptsMail }),
      );
      if (encryptsMail) this.mailKeyNames.push(name);
    }
    const keyByArn = (arn: string): DeliveryKey => {
      let key = this.referencedKeys.get(arn);
      if (!key) {
        const mode = infra.kmsKeys[arn]?.mode ?? 'reference';
        key = new DeliveryKey(this, `kms-ref-${idOf(arnResourceName(arn))}`, { ctx, kind: 'referenced', arn, mode });
        this.referencedKeys.set(arn, key);
      }
      return key;
    };
    const keyRef = (ref: { kmsKeyArn?: string | undefined; createdKmsKey?: string | undefined } | undefined): DeliveryKey | undefined => {
      if (!ref) return undefined;
      if (ref.createdKmsKey !== undefined) return this.createdKeys.get(ref.createdKmsKey);
      return ref.kmsKeyArn !== undefined ? keyByArn(ref.kmsKeyArn) : undefined;
    };
    const createdKeyOfRule = new Map<string, DeliveryKey>();
    for (const [name, k] of Object.entries(infra.createKmsKeys)) for (const r of k.rules) createdKeyOfRule.set(r, this.createdKeys.get(name)!);

    // --- buckets, topics, roles (created on first use, in rule order) -----------------------------------------
    const bucketFor = (name: string, region: string): DeliveryBucket => {
      let b = this.buckets.get(name);
      if (!b) {
        const s = infra.buckets[name];
        b = new DeliveryBucket(this, `bucket-${idOf(name)}`, {
          ctx,
          name,
          region,
          mode: s?.mode ?? 'create',
          provider: region === cfg.region ? undefined : props.providerFor?.(region),
          sseKmsKey: keyRef(s?.encryption),
          objectLockEnabled: s?.objectLock?.enabled ?? false,
          abortIncompleteMultipartUploadDays: s?.abortIncompleteMultipartUploadDays ?? 7,
          forceDestroy: s?.forceDestroy ?? false,
          preventDestroy: keepMail,
        });
        this.buckets.set(name, b);
      }
      return b;
    };
    const topicFor = (arn: string): DeliveryTopic => {
      let t = this.topics.get(arn);
      if (!t) {
        const s = infra.topics[arn];
        t = new DeliveryTopic(this, `topic-${idOf(arnResourceName(arn))}`, { ctx, arn, mode: s?.mode ?? 'create', key: keyRef(s?.encryption) });
        this.topics.set(arn, t);
      }
      return t;
    };
    const roleFor = (arn: string): DeliveryRole => {
      let r = this.roles.get(arn);
      if (!r) {
        r = new DeliveryRole(this, `role-${idOf(arnResourceName(arn))}`, { ctx, arn, mode: infra.roles[arn]?.mode ?? 'create' });
        this.roles.set(arn, r);
      }
      return r;
    };

    // --- bind every rule's action (collects the grants) -------------------------------------------------------
    const bound = cfg.rules.map((rule) => {
      const a = rule.s3Action;
      const bucket = bucketFor(a.bucketName, a.bucketRegion ?? cfg.region);
      let key: DeliveryKey | { awsManagedSesArn: string } | undefined;
      if (a.kmsKeyArn !== undefined) {
        const parsed = parseKmsKeyArn(a.kmsKeyArn);
        key = 'kind' in parsed && parsed.kind === 'aws-managed-ses' ? { awsManagedSesArn: a.kmsKeyArn } : keyByArn(a.kmsKeyArn);
      } else key = createdKeyOfRule.get(rule.name);
      const topic = a.topicArn !== undefined ? topicFor(a.topicArn) : undefined;
      const role = a.iamRoleArn !== undefined ? roleFor(a.iamRoleArn) : undefined;
      const action = new S3Action({ ctx, rule, ruleArn: ruleArnOf(rule.name), bucket, key, topic, role });
      return { rule, bucket, key, topic, role, ...action.bind() };
    });

    // --- policies, then rules that depend on them -------------------------------------------------------------
    const all: DeliveryResource[] = [...this.createdKeys.values(), ...this.referencedKeys.values(), ...this.buckets.values(), ...this.topics.values(), ...this.roles.values()];
    for (const r of all) r.finish();

    const ruleIds = new Set(cfg.rules.map((r) => ruleConstructId(r.name)));
    let previous: SesReceiptRule | undefined;
    for (const b of bound) {
      const dependsOn = dedupe(b.resources.flatMap((r) => r.dependables));
      const ruleId = ruleConstructId(b.rule.name);
      // A rule deployed under its old id keeps its state (a new address alone would destroy and recreate it).
      const legacyId = legacyRuleConstructId(b.rule.name);
      const legacyAddress = legacyId !== ruleId && !ruleIds.has(legacyId) && legacyId !== RULE_SET_ID ? `aws_ses_receipt_rule.${logicalIdUnder(this, legacyId)}` : undefined;
      const rule: SesReceiptRule = new SesReceiptRule(this, ruleId, {
        name: b.rule.name,
        ruleSetName: this.ruleSet.ruleSetName,
        // Chained on the previous rule's resource: the set keeps config order, and rules are created one by one.
        ...(previous ? { after: previous.name } : {}),
        enabled: b.rule.enabled, // explicit: Terraform's default is false
        tlsPolicy: b.rule.tlsPolicy,
        scanEnabled: b.rule.scanEnabled,
        ...(b.rule.recipients.length > 0 ? { recipients: b.rule.recipients } : {}),
        s3Action: [b.config],
        // SES's Stop action after the delivery: the rules after this one do not run for the recipients it matched.
        ...(b.rule.stopAction ? { stopAction: [{ scope: b.rule.stopAction.scope, position: b.config.position + 1 }] } : {}),
        dependsOn,
      });
      if (legacyAddress) rule.moveFromId(legacyAddress);
      this.rules.set(b.rule.name, rule);
      previous = rule;
    }

    // --- activation (opt-in) --------------------------------------------------------------------------------
    if (infra.activateRuleSet) {
      this.activeRuleSet = new SesActiveReceiptRuleSet(this, 'active-rule-set', {
        ruleSetName: this.ruleSet.ruleSetName,
        dependsOn: [...this.rules.values()],
        lifecycle: { preventDestroy: !infra.allowActiveRuleSetDestroy },
      });
      this.warnings.push(
        `infra.activateRuleSet: this stack makes "${cfg.ruleSetName}" THE active receipt rule set of ${cfg.region} for account ${cfg.accountId}. ` +
          'There is one per account and region: applying replaces whatever set receives mail there now, and destroying the stack disables receiving for the region. ' +
          (infra.allowActiveRuleSetDestroy
            ? 'allowActiveRuleSetDestroy is true: `destroy` WILL disable receiving.'
            : 'The resource has prevent_destroy: `destroy` stops with Terraform\'s "Instance cannot be destroyed" (aws_ses_active_receipt_rule_set) and changes nothing ' +
              'until you set infra.allowActiveRuleSetDestroy to true (or activate another rule set by hand and `terraform state rm` this resource).'),
      );
    }

    // --- domains ----------------------------------------------------------------------------------------------
    const dnsRecords: Array<{ domain: string; name: string; type: string; value: string }> = [];
    infra.domains.forEach((d) => {
      const id = idOf(d.domain);
      const identity = new SesDomainIdentity(this, `domain-${id}`, { domain: d.domain });
      const records: Array<{ key: string; name: string; type: string; value: string }> = [
        { key: 'verification', name: `_amazonses.${d.domain}`, type: 'TXT', value: identity.verificationToken },
      ];
      if (d.mx) records.push({ key: 'mx', name: d.domain, type: 'MX', value: `10 ${inboundSmtpHost(cfg.region)}` });
      if (d.dkim) {
        const dkim = new SesDomainDkim(this, `dkim-${id}`, { domain: identity.domain });
        for (let i = 0; i < 3; i++) {
          const token = Fn.element(dkim.dkimTokens, i) as string;
          records.push({ key: `dkim-${i}`, name: `${token}._domainkey.${d.domain}`, type: 'CNAME', value: `${token}.dkim.amazonses.com` });
        }
      }
      for (const rec of records) {
        if (d.route53ZoneId) {
          new Route53Record(this, `dns-${id}-${rec.key}`, { zoneId: d.route53ZoneId, name: rec.name, type: rec.type, ttl: 600, records: [rec.value] });
        } else dnsRecords.push({ domain: d.domain, name: rec.name, type: rec.type, value: rec.value });
      }
    });

    // --- gateway writer ---------------------------------------------------------------------------------------
    if (infra.gatewayWriter) {
      const gw = infra.gatewayWriter;
      const names = new Set(gw.rules ?? cfg.rules.map((r) => r.name));
      const rules: GatewayWriterRule[] = bound
        .filter((b) => names.has(b.rule.name))
        .map((b) => ({ ruleName: b.rule.name, bucket: b.bucket, prefix: b.rule.s3Action.objectKeyPrefix, key: b.key, topic: b.topic }));
      this.gatewayWriter = new GatewayWriterAccess(this, 'gateway-writer', { ctx, policyName: gw.policyName, rules, role: gw.role });
      for (const name of this.gatewayWriter.awsManagedKeyRules) {
        this.warnings.push(`infra.gatewayWriter: ${awsManagedKeyForGateway(name)}`);
      }
    }

    // --- what destroy keeps ---------------------------------------------------------------------------------------
    const createdBuckets = [...this.buckets.values()].filter((b) => b.bucket).map((b) => b.name);
    const mailKeys = this.mailKeyNames.map((n) => `"${n}"`);
    const guarded = [
      ...(createdBuckets.length > 0 ? [`bucket${createdBuckets.length === 1 ? '' : 's'} ${createdBuckets.join(', ')}`] : []),
      ...(mailKeys.length > 0 ? [`KMS key${mailKeys.length === 1 ? '' : 's'} ${mailKeys.join(', ')} (infra.createKmsKeys)`] : []),
    ].join(' and ');
    if (guarded && keepMail) {
      this.notes.push(
        `destroy keeps the mail: ${guarded} have prevent_destroy, so \`destroy\` stops with Terraform's "Instance cannot be destroyed" before it changes anything, and stored mail stays readable. ` +
          'To delete them and the mail in them, set infra.allowMailDestroy to true (and forceDestroy on each bucket that still holds mail), run `deploy`, then `destroy`.',
      );
    } else if (guarded) {
      this.warnings.push(
        `infra.allowMailDestroy is true: \`destroy\` deletes ${guarded}. Deleted keys are scheduled for deletion; once the deletion window ends, mail encrypted under them can never be read again. ` +
          'S3 refuses to delete a bucket that still holds mail unless its forceDestroy is true (set it, then `deploy` once, before `destroy`); when it refuses, Terraform has already removed the bucket\'s policy, public access block, encryption and lifecycle settings, but the keys of its mail are kept (they are destroyed only after their bucket).',
      );
    }
    for (const [name, b] of Object.entries(infra.buckets)) {
      if (b.forceDestroy && keepMail && this.buckets.get(name)?.bucket) {
        this.warnings.push(`infra.buckets.${name}.forceDestroy has no effect while infra.allowMailDestroy is false: \`destroy\` keeps the bucket and its mail.`);
      }
    }

    // --- warnings for what the stack does not own -------------------------------------------------------------
    const manual: ManualStatements[] = all.flatMap((r) => r.manualStatements());
    for (const m of manual) {
      this.warnings.push(`${m.target} is referenced, not managed: SES needs ${m.statements.length} statement(s) there before the rule can be created (output manual_policy_statements has them).`);
    }
    for (const b of this.buckets.values()) if (b.mode === 'policy') this.warnings.push(`bucket ${b.name}: mode "policy" replaces the bucket's whole bucket policy with the statements SES needs.`);
    for (const k of this.referencedKeys.values()) if (k.mode === 'policy') this.warnings.push(`key ${k.arn}: mode "policy" replaces the whole key policy (account-root statement + SES statements).`);
    for (const t of this.topics.values()) if (t.mode === 'policy') this.warnings.push(`topic ${t.arn}: mode "policy" replaces the whole topic policy.`);

    // --- outputs ----------------------------------------------------------------------------------------------
    const ruleOutputs: Record<string, Record<string, string>> = {};
    for (const b of bound) {
      const a = b.rule.s3Action;
      ruleOutputs[b.rule.name] = {
        rule_arn: ruleArnOf(b.rule.name),
        bucket_name: a.bucketName,
        bucket_region: a.bucketRegion ?? cfg.region,
        object_key_prefix: a.objectKeyPrefix,
        ...(b.key ? { kms_key_arn: 'awsManagedSesArn' in b.key ? b.key.awsManagedSesArn : b.key.arn } : {}),
        ...(a.topicArn ? { topic_arn: a.topicArn } : {}),
        ...(a.iamRoleArn ? { iam_role_arn: a.iamRoleArn } : {}),
      };
    }
    new TerraformOutput(this, 'gateway_config', {
      description: 'The config file for `mailroom gateway`, with every created ARN filled in: terraform output -json gateway_config > mailroom.deployed.json',
      value: gatewayConfig(cfg, bound.map((b) => (b.key && !('awsManagedSesArn' in b.key) ? b.key.arn : undefined))),
    }).overrideLogicalId('gateway_config');
    new TerraformOutput(this, 'rule_set_name', { value: cfg.ruleSetName }).overrideLogicalId('rule_set_name');
    new TerraformOutput(this, 'rule_names', { value: cfg.rules.map((r) => r.name), description: 'In evaluation order.' }).overrideLogicalId('rule_names');
    new TerraformOutput(this, 'rules', { value: ruleOutputs }).overrideLogicalId('rules');
    new TerraformOutput(this, 'active_rule_set', { value: infra.activateRuleSet ? cfg.ruleSetName : '(not activated: infra.activateRuleSet is false)' }).overrideLogicalId('active_rule_set');
    if (this.createdKeys.size > 0) {
      new TerraformOutput(this, 'kms_key_arns', { value: Object.fromEntries([...this.createdKeys].map(([n, k]) => [n, k.arn])) }).overrideLogicalId('kms_key_arns');
    }
    const roleArns = [...this.roles.values()].map((r) => r.arn);
    if (roleArns.length > 0) new TerraformOutput(this, 'ses_role_arns', { value: roleArns }).overrideLogicalId('ses_role_arns');
    if (this.gatewayWriter) {
      new TerraformOutput(this, 'gateway_writer_policy_arn', { value: this.gatewayWriter.policy.arn }).overrideLogicalId('gateway_writer_policy_arn');
      if (this.gatewayWriter.role) new TerraformOutput(this, 'gateway_writer_role_arn', { value: this.gatewayWriter.role.arn }).overrideLogicalId('gateway_writer_role_arn');
    }
    if (dnsRecords.length > 0) {
      new TerraformOutput(this, 'dns_records', { value: dnsRecords, description: 'Records to create at your DNS provider (no route53ZoneId given).' }).overrideLogicalId('dns_records');
    }
    if (manual.length > 0) {
      new TerraformOutput(this, 'manual_policy_statements', {
        value: Object.fromEntries(manual.map((m) => [m.target, JSON.stringify(policyDocument(m.statements), null, 2)])),
        description: 'Statements SES needs on resources this stack references but does not manage.',
      }).overrideLogicalId('manual_policy_statements');
    }
  }
}

function dedupe(items: ITerraformDependable[]): ITerraformDependable[] {
  return [...new Set(items)];
}

/** The config minus `infra` and `$schema`, with the ARNs of created keys filled in: what the gateway reads. */
function gatewayConfig(cfg: ReceivingConfig, createdKeyArns: Array<string | undefined>): Record<string, unknown> {
  const { infra: _infra, $schema: _schema, ...rest } = cfg;
  return {
    ...rest,
    rules: cfg.rules.map((r, i) => {
      const key = createdKeyArns[i];
      return key !== undefined && r.s3Action.kmsKeyArn === undefined ? { ...r, s3Action: { ...r.s3Action, kmsKeyArn: key } } : r;
    }),
  };
}
