import { SesActiveReceiptRuleSet } from './aws.js';
import type { Construct } from './framework.js';
import type { ReceiptRuleSet } from './receipt-rule-set.js';

export interface ActivationProps {
  ruleSet: ReceiptRuleSet;
  /** The set's name as configured (the resource's attribute is a token). */
  ruleSetName: string;
  accountId: string;
  region: string;
  allowDestroy: boolean;
}

/**
 * Makes the set THE active receipt rule set of the region (opt-in). There is one per account and region, and
 * destroying the resource disables receiving there: it keeps prevent_destroy unless the config allows it.
 */
export class RuleSetActivation {
  readonly resource: SesActiveReceiptRuleSet;
  /** The synth warning: what activating replaces, and what `destroy` will do. */
  readonly warning: string;

  constructor(scope: Construct, id: string, props: ActivationProps) {
    const { ruleSet } = props;
    this.resource = new SesActiveReceiptRuleSet(scope, id, {
      ruleSetName: ruleSet.ruleSetName,
      dependsOn: [...ruleSet.rules.values()],
      lifecycle: { preventDestroy: !props.allowDestroy },
    });
    this.warning =
      `infra.activateRuleSet: this stack makes "${props.ruleSetName}" THE active receipt rule set of ${props.region} for account ${props.accountId}. ` +
      'There is one per account and region: applying replaces whatever set receives mail there now, and destroying the stack disables receiving for the region. ' +
      (props.allowDestroy
        ? 'allowActiveRuleSetDestroy is true: `destroy` WILL disable receiving.'
        : 'The resource has prevent_destroy: `destroy` stops with Terraform\'s "Instance cannot be destroyed" (aws_ses_active_receipt_rule_set) and changes nothing ' +
          'until you set infra.allowActiveRuleSetDestroy to true (or activate another rule set by hand and `terraform state rm` this resource).');
  }
}
