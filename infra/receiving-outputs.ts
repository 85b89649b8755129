import type { ReceivingConfig } from '../shared/config/schema.js';
import type { DeliveryResources, RuleDelivery } from './delivery-resources.js';
import { TerraformOutput, type Construct } from './framework.js';
import type { GatewayWriterAccess } from './gateway-writer.js';
import { policyDocument } from './policy.js';
import type { ReceiptRuleSet } from './receipt-rule-set.js';
import type { DnsRecord } from './receiving-domain.js';

export interface ReceivingOutputsProps {
  config: ReceivingConfig;
  ruleSet: ReceiptRuleSet;
  /** Per rule, in config order. */
  deliveries: RuleDelivery[];
  delivery: DeliveryResources;
  gatewayWriter?: GatewayWriterAccess | undefined;
  dnsRecords: DnsRecord[];
}

/** The stack's outputs, named as they are (`gateway_config` is what `mailroom gateway` reads). */
export function addReceivingOutputs(scope: Construct, props: ReceivingOutputsProps): void {
  const { config: cfg, deliveries, delivery } = props;
  const output = (id: string, value: unknown, description?: string) =>
    new TerraformOutput(scope, id, { value, ...(description ? { description } : {}) }).overrideLogicalId(id);

  const ruleOutputs: Record<string, Record<string, string>> = {};
  cfg.rules.forEach((rule, i) => {
    const a = rule.s3Action;
    const key = deliveries[i]!.key;
    ruleOutputs[rule.name] = {
      rule_arn: props.ruleSet.ruleArn(rule.name),
      bucket_name: a.bucketName,
      bucket_region: a.bucketRegion ?? cfg.region,
      object_key_prefix: a.objectKeyPrefix,
      ...(key ? { kms_key_arn: key.arn } : {}),
      ...(a.topicArn ? { topic_arn: a.topicArn } : {}),
      ...(a.iamRoleArn ? { iam_role_arn: a.iamRoleArn } : {}),
    };
  });
  output(
    'gateway_config',
    gatewayConfig(cfg, deliveries.map((d) => d.key?.arn)),
    'The config file for `mailroom gateway`, with every created ARN filled in: terraform output -json gateway_config > mailroom.deployed.json',
  );
  output('rule_set_name', cfg.ruleSetName);
  output('rule_names', cfg.rules.map((r) => r.name), 'In evaluation order.');
  output('rules', ruleOutputs);
  output('active_rule_set', cfg.infra?.activateRuleSet ? cfg.ruleSetName : '(not activated: infra.activateRuleSet is false)');
  if (delivery.createdKeys.size > 0) output('kms_key_arns', Object.fromEntries([...delivery.createdKeys].map(([n, k]) => [n, k.arn])));
  const roleArns = [...delivery.roles.values()].map((r) => r.arn);
  if (roleArns.length > 0) output('ses_role_arns', roleArns);
  if (props.gatewayWriter) {
    output('gateway_writer_policy_arn', props.gatewayWriter.policy.arn);
    if (props.gatewayWriter.role) output('gateway_writer_role_arn', props.gatewayWriter.role.arn);
  }
  if (props.dnsRecords.length > 0) output('dns_records', props.dnsRecords, 'Records to create at your DNS provider (no route53ZoneId given).');
  const manual = delivery.manualStatements();
  if (manual.length > 0) {
    output(
      'manual_policy_statements',
      Object.fromEntries(manual.map((m) => [m.target, JSON.stringify(policyDocument(m.statements), null, 2)])),
      'Statements SES needs on resources this stack references but does not manage.',
    );
  }
}

/**
 * The config minus `infra` and `$schema`, with the ARNs of created keys filled in: what the gateway reads. A rule
 * that names its key keeps it as written (only a created key's ARN is unknown before deploy).
 */
function gatewayConfig(cfg: ReceivingConfig, keyArns: Array<string | undefined>): Record<string, unknown> {
  const { infra: _infra, $schema: _schema, ...rest } = cfg;
  return {
    ...rest,
    rules: cfg.rules.map((r, i) => {
      const key = keyArns[i];
      return key !== undefined && r.s3Action.kmsKeyArn === undefined ? { ...r, s3Action: { ...r.s3Action, kmsKeyArn: key } } : r;
    }),
  };
}
