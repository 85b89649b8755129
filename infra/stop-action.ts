import type { ReceiptRuleAction, ReceiptRuleActionConfig } from './receipt-rule.js';

/** SES's Stop action: the rules after this one do not run for the recipients it matched. It needs no permission. */
export class StopAction implements ReceiptRuleAction {
  constructor(private readonly scope: 'RuleSet' = 'RuleSet') {}

  bind(): ReceiptRuleActionConfig {
    return { stopAction: { scope: this.scope } };
  }
}
