import type { InfraSettings } from '../shared/config/infra.js';
import { InfraSettingsSchema } from '../shared/config/infra.js';
import type { ReceivingConfig } from '../shared/config/schema.js';
import { awsManagedKeyForGateway } from '../shared/config/ses-rules.js';
import { RuleSetActivation } from './activation.js';
import { partitionOf } from './arns.js';
import type { AwsProvider, SesActiveReceiptRuleSet } from './aws.js';
import type { CreatedKey } from './created-key.js';
import type { DeliveryBucket } from './delivery-bucket.js';
import { DeliveryResources } from './delivery-resources.js';
import type { DeliveryRole } from './delivery-role.js';
import type { DeliveryTopic } from './delivery-topic.js';
import type { AccountContext } from './delivery.js';
import { destroyGuardMessages } from './destroy-guards.js';
import { Construct } from './framework.js';
import { GatewayWriterAccess } from './gateway-writer.js';
import { RULE_SET_ID } from './ids.js';
import type { ReceiptRule } from './receipt-rule.js';
import { ReceiptRuleSet } from './receipt-rule-set.js';
import { addReceivingOutputs } from './receiving-outputs.js';
import { ReceivingDomain } from './receiving-domain.js';
import type { ReferencedKey } from './referenced-key.js';
import { S3Action } from './s3-action.js';
import { StopAction } from './stop-action.js';

export interface MailroomReceivingProps {
  /** A config that passed `parseConfig` and `infraProblems` (MailroomStack does both). */
  config: ReceivingConfig;
  /** Provider for a bucket region other than the receiving one (the stack's default provider serves that one). */
  providerFor?: (region: string) => AwsProvider | undefined;
}

/**
 * SES receiving into S3 from one mailroom config: the rule set and its rules in order, each with an S3 action bound
 * to the delivery resources it names (bucket, key, topic, role — created or referenced), optional domain identities
 * and activation, the gateway writer's access, and outputs the gateway reads as they are.
 */
export class MailroomReceiving extends Construct {
  readonly ruleSet: ReceiptRuleSet;
  readonly rules: Map<string, ReceiptRule>;
  /** Every bucket, key, topic and role the rules deliver through (the maps below are its own). */
  readonly delivery: DeliveryResources;
  readonly buckets: Map<string, DeliveryBucket>;
  readonly createdKeys: Map<string, CreatedKey>;
  readonly referencedKeys: Map<string, ReferencedKey>;
  readonly topics: Map<string, DeliveryTopic>;
  readonly roles: Map<string, DeliveryRole>;
  readonly activeRuleSet?: SesActiveReceiptRuleSet;
  readonly gatewayWriter?: GatewayWriterAccess;
  readonly domains: ReceivingDomain[];
  /** Things the user must know that do not stop the synth (printed as synth warnings by MailroomStack). */
  readonly warnings: string[] = [];
  /** What the user should know about the stack as configured (printed as synth info by MailroomStack). */
  readonly notes: string[] = [];

  constructor(scope: Construct, id: string, props: MailroomReceivingProps) {
    super(scope, id);
    const cfg = props.config;
    const infra: InfraSettings = cfg.infra ?? InfraSettingsSchema.parse({});
    const ctx: AccountContext = { accountId: cfg.accountId, region: cfg.region, partition: partitionOf(cfg.region) };

    this.ruleSet = new ReceiptRuleSet(this, RULE_SET_ID, { ctx, ruleSetName: cfg.ruleSetName, ruleNames: cfg.rules.map((r) => r.name) });
    const delivery = new DeliveryResources(this, { ctx, infra, providerFor: props.providerFor });
    this.delivery = delivery;
    this.buckets = delivery.buckets;
    this.createdKeys = delivery.createdKeys;
    this.referencedKeys = delivery.referencedKeys;
    this.topics = delivery.topics;
    this.roles = delivery.roles;

    // All delivery resources first (in rule order), then the rules: cdk.tf.json lists resources in construct order,
    // so a config's synthesized file keeps one stable order.
    const deliveries = cfg.rules.map((rule) => delivery.forRule(rule));
    cfg.rules.forEach((rule, i) => {
      const d = deliveries[i]!;
      const s3 = new S3Action({ bucket: d.bucket, objectKeyPrefix: rule.s3Action.objectKeyPrefix, key: d.key, topic: d.topic, role: d.role });
      this.ruleSet.addRule(rule, [s3, ...(rule.stopAction ? [new StopAction(rule.stopAction.scope)] : [])]);
    });
    this.rules = this.ruleSet.rules;

    if (infra.activateRuleSet) {
      const activation = new RuleSetActivation(this, 'active-rule-set', {
        ruleSet: this.ruleSet,
        ruleSetName: cfg.ruleSetName,
        accountId: cfg.accountId,
        region: cfg.region,
        allowDestroy: infra.allowActiveRuleSetDestroy,
      });
      this.activeRuleSet = activation.resource;
      this.warnings.push(activation.warning);
    }

    this.domains = infra.domains.map((d) => new ReceivingDomain(this, d, cfg.region));

    if (infra.gatewayWriter) {
      const gw = infra.gatewayWriter;
      const names = new Set(gw.rules ?? cfg.rules.map((r) => r.name));
      const rules = cfg.rules.flatMap((rule, i) => {
        const d = deliveries[i]!;
        return names.has(rule.name) ? [{ ruleName: rule.name, bucket: d.bucket, prefix: rule.s3Action.objectKeyPrefix, key: d.key, topic: d.topic }] : [];
      });
      this.gatewayWriter = new GatewayWriterAccess(this, 'gateway-writer', { ctx, policyName: gw.policyName, rules, role: gw.role });
      for (const name of this.gatewayWriter.awsManagedKeyRules) this.warnings.push(`infra.gatewayWriter: ${awsManagedKeyForGateway(name)}`);
    }

    const guards = destroyGuardMessages(delivery, infra.buckets);
    this.notes.push(...guards.notes);
    this.warnings.push(...guards.warnings, ...delivery.ownershipWarnings());

    addReceivingOutputs(this, {
      config: cfg,
      ruleSet: this.ruleSet,
      deliveries,
      delivery,
      gatewayWriter: this.gatewayWriter,
      dnsRecords: this.domains.flatMap((d) => d.unmanagedRecords),
    });
  }
}
