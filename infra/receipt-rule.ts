import type { ReceiptRule as RuleConfig } from '../shared/config/schema.js';
import { SesReceiptRule, type SesReceiptRuleS3Action, type SesReceiptRuleStopAction } from './aws.js';
import { Lazy, type Construct, type TerraformResource } from './framework.js';
import { addressOf } from './ids.js';

/** What an action adds to its rule: one block of the rule's action list (the rule gives it its position). */
export interface ReceiptRuleActionConfig {
  s3Action?: Omit<SesReceiptRuleS3Action, 'position'>;
  stopAction?: Omit<SesReceiptRuleStopAction, 'position'>;
}

/** An action of a receipt rule, as AWS CDK's `IReceiptRuleAction`: `bind()` adds its grants and the rule's dependencies. */
export interface ReceiptRuleAction {
  bind(rule: ReceiptRule): ReceiptRuleActionConfig;
}

/** Something a rule waits for; its resources are read at synth, when every rule has added its grants. */
export interface RuleDependency {
  readonly dependables: TerraformResource[];
}

export interface ReceiptRuleProps {
  ruleSetName: string;
  /** The rule before this one: the set keeps config order, and Terraform creates the rules one by one. */
  after?: ReceiptRule | undefined;
  rule: RuleConfig;
  /** Built from names (shared `receiptRuleArn`), never from this resource: the policies naming it cannot depend on it. */
  ruleArn: string;
  actions?: ReceiptRuleAction[];
}

/**
 * A receipt rule: the SES resource itself, with actions bound in order. It depends on everything its actions name
 * (SES test-writes when the rule is created, docs/ses-format.md#setup-notification-object), rendered at synth so
 * that a policy another rule's grant creates later is waited for too.
 */
export class ReceiptRule extends SesReceiptRule {
  readonly ruleName: string;
  readonly ruleArn: string;
  private readonly dependencies: RuleDependency[] = [];
  private readonly s3Actions: SesReceiptRuleS3Action[] = [];
  private readonly stopActions: SesReceiptRuleStopAction[] = [];
  private actionCount = 0;

  constructor(scope: Construct, id: string, props: ReceiptRuleProps) {
    const r = props.rule;
    super(scope, id, {
      name: r.name,
      ruleSetName: props.ruleSetName,
      ...(props.after ? { after: props.after.name } : {}),
      enabled: r.enabled, // explicit: Terraform's default is false
      tlsPolicy: r.tlsPolicy,
      scanEnabled: r.scanEnabled,
      ...(r.recipients.length > 0 ? { recipients: r.recipients } : {}),
    });
    this.ruleName = r.name;
    this.ruleArn = props.ruleArn;
    this.dependsOn = Lazy.listValue({ produce: () => [...new Set(this.dependencies.flatMap((d) => d.dependables))].map(addressOf) });
    for (const action of props.actions ?? []) this.addAction(action);
  }

  addAction(action: ReceiptRuleAction): void {
    const config = action.bind(this);
    const position = ++this.actionCount;
    if (config.s3Action) {
      this.s3Actions.push({ ...config.s3Action, position });
      this.putS3Action([...this.s3Actions]);
    }
    if (config.stopAction) {
      this.stopActions.push({ ...config.stopAction, position });
      this.putStopAction([...this.stopActions]);
    }
  }

  /** The rule is created only after this dependency's resources (bucket and its policy, key, topic, role...). */
  dependOn(dependency: RuleDependency): void {
    this.dependencies.push(dependency);
  }
}
