import type { ReceiptRule as RuleConfig } from '../shared/config/schema.js';
import { receiptRuleArn } from '../shared/ses/arn.js';
import { SesReceiptRuleSet } from './aws.js';
import type { AccountContext } from './delivery.js';
import type { Construct } from './framework.js';
import { legacyRuleAddress, ruleConstructId } from './ids.js';
import { ReceiptRule, type ReceiptRuleAction } from './receipt-rule.js';

export interface ReceiptRuleSetProps {
  ctx: AccountContext;
  ruleSetName: string;
  /** Every rule the set will hold: a rule's legacy id that is another rule's id is not where its state is. */
  ruleNames: string[];
}

/** The receipt rule set, as AWS CDK's `ReceiptRuleSet`: rules are added in evaluation order, each after the one before. */
export class ReceiptRuleSet extends SesReceiptRuleSet {
  readonly rules = new Map<string, ReceiptRule>();
  private last?: ReceiptRule;

  constructor(scope: Construct, id: string, private readonly props: ReceiptRuleSetProps) {
    super(scope, id, { ruleSetName: props.ruleSetName });
  }

  /** `AWS:SourceArn` of a rule of this set, from names (never from the rule resource: no dependency cycle, aws-cdk#30143). */
  ruleArn(ruleName: string): string {
    const { ctx, ruleSetName } = this.props;
    return receiptRuleArn({ partition: ctx.partition, region: ctx.region, accountId: ctx.accountId, ruleSetName, ruleName });
  }

  /** Adds a rule after the last one. It is created beside the set, where rules' Terraform addresses have always been. */
  addRule(rule: RuleConfig, actions: ReceiptRuleAction[]): ReceiptRule {
    const scope = this.node.scope!;
    const movedFrom = legacyRuleAddress(scope, rule.name, this.props.ruleNames);
    const created = new ReceiptRule(scope, ruleConstructId(rule.name), { ruleSetName: this.ruleSetName, after: this.last, rule, ruleArn: this.ruleArn(rule.name), actions });
    if (movedFrom) created.moveFromId(movedFrom);
    this.rules.set(rule.name, created);
    this.last = created;
    return created;
  }
}
