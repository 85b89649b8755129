/**
 * Construct ids of receipt rules. A rule's id is its name as SES accepts it ("." included): names are unique in the
 * rule set, so the ids are too, and cdktf adds a hash of the full id to the Terraform address, so the characters it
 * drops from the readable part cannot make two addresses equal.
 */
import { idOf } from './arns.js';
import { Construct, TerraformStack, type TerraformResource } from './framework.js';

/** The rule set's own construct id, a sibling of the rules'. */
export const RULE_SET_ID = 'rule-set';

export function ruleConstructId(ruleName: string): string {
  const id = `rule-${ruleName}`;
  // A rule named "set" would take the rule set's id; no valid rule name ends with "_", so this one is no other rule's.
  return id === RULE_SET_ID ? `${id}_` : id;
}

/** The id a rule had when "." was mapped to "_" (so "a.b" and "a_b" collided): where its Terraform state still is. */
export function legacyRuleConstructId(ruleName: string): string {
  return `rule-${idOf(ruleName)}`;
}

/** The Terraform logical id cdktf gives a construct with this id directly under `scope` (nothing is left behind). */
export function logicalIdUnder(scope: Construct, id: string): string {
  if (scope.node.tryFindChild(id)) throw new Error(`${scope.node.path} already has a child "${id}"`);
  const probe = new Construct(scope, id);
  try {
    return TerraformStack.of(scope).getLogicalId(probe.node);
  } finally {
    scope.node.tryRemoveChild(id);
  }
}

/**
 * Where a rule's Terraform state is when it was deployed under its legacy id: only when that id differs from its
 * own and is no other rule's (nor the rule set's) — a new address alone would destroy and recreate the rule.
 */
export function legacyRuleAddress(scope: Construct, ruleName: string, allRuleNames: string[]): string | undefined {
  const legacyId = legacyRuleConstructId(ruleName);
  if (legacyId === ruleConstructId(ruleName) || legacyId === RULE_SET_ID || allRuleNames.some((n) => ruleConstructId(n) === legacyId)) return undefined;
  return `aws_ses_receipt_rule.${logicalIdUnder(scope, legacyId)}`;
}

/** `type.logical_id`: how `depends_on` names a resource of this stack. */
export function addressOf(resource: TerraformResource): string {
  return `${resource.terraformResourceType}.${resource.friendlyUniqueId}`;
}
