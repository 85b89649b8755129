import { SnsTopic, SnsTopicPolicy } from './aws.js';
import { arnResourceName } from './arns.js';
import type { CustomerKey } from './customer-key.js';
import { SES_PRINCIPAL, sesSourceCondition, type AccountContext, type DeliveryMode, type DeliveryResource, type ManualStatements } from './delivery.js';
import { Construct, Lazy, type TerraformResource } from './framework.js';
import { policyJson, type PolicyStatement } from './policy.js';

export interface DeliveryTopicProps {
  ctx: AccountContext;
  arn: string;
  mode: DeliveryMode;
  /** The key the topic is encrypted with (SSE); AWS-managed keys are refused by validation. */
  key?: CustomerKey | undefined;
}

/** The SNS topic SES notifies after storing a message: created, policy-managed, or referenced. */
export class DeliveryTopic extends Construct implements DeliveryResource {
  readonly mode: DeliveryMode;
  readonly topic?: SnsTopic;
  readonly key: CustomerKey | undefined;
  /** The topic ARN as a rule references it: the resource's attribute when created (same value: topic ARNs are names). */
  readonly arnRef: string;
  private topicPolicy?: SnsTopicPolicy;
  private readonly rules: string[] = [];

  constructor(scope: Construct, id: string, private readonly props: DeliveryTopicProps) {
    super(scope, id);
    this.mode = props.mode;
    this.key = props.key;
    if (props.mode === 'create') {
      this.topic = new SnsTopic(this, 'topic', {
        name: arnResourceName(props.arn),
        ...(props.key ? { kmsMasterKeyId: props.key.arn } : {}),
      });
    }
    this.arnRef = this.topic ? this.topic.arn : props.arn;
  }

  get arn(): string {
    return this.props.arn;
  }

  /** Topic policy statement letting SES publish for this rule; the topic's key gets its statement too. */
  grantSesPublish(ruleArn: string): void {
    this.rules.push(ruleArn);
    this.key?.grantSesTopicPublish(ruleArn);
    if (this.mode === 'reference' || this.topicPolicy) return;
    this.topicPolicy = new SnsTopicPolicy(this, 'policy', { arn: this.arnRef, policy: Lazy.stringValue({ produce: () => policyJson(this.statements()) }) });
  }

  statements(): PolicyStatement[] {
    if (this.rules.length === 0) return [];
    return [
      {
        Sid: 'AllowSESPublish',
        Effect: 'Allow',
        Principal: { Service: SES_PRINCIPAL },
        Action: 'SNS:Publish',
        Resource: this.props.arn,
        Condition: { StringEquals: sesSourceCondition(this.props.ctx, this.rules) },
      },
    ];
  }

  get dependables(): TerraformResource[] {
    return [...(this.topic ? [this.topic] : []), ...(this.topicPolicy ? [this.topicPolicy] : [])];
  }

  manualStatements(): ManualStatements[] {
    const s = this.statements();
    return this.mode === 'reference' && s.length > 0 ? [{ target: `topic policy of ${this.props.arn}`, statements: s }] : [];
  }
}
