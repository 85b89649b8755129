import type { ReceiptRule } from '../shared/config/schema.js';
import { objectArnPattern } from './arns.js';
import type { SesReceiptRuleS3Action } from './aws.js';
import type { AccountContext, DeliveryBucket, DeliveryKey, DeliveryResource, DeliveryRole, DeliveryTopic } from './resources.js';

export interface S3ActionProps {
  ctx: AccountContext;
  rule: ReceiptRule;
  /** The rule's ARN built from names (shared `receiptRuleArn`), never from the rule resource: no dependency cycle. */
  ruleArn: string;
  bucket: DeliveryBucket;
  /** The key SES encrypts messages under: a customer key, or this account's AWS-managed `alias/aws/ses`. */
  key?: DeliveryKey | { awsManagedSesArn: string } | undefined;
  topic?: DeliveryTopic | undefined;
  role?: DeliveryRole | undefined;
  /** Position of the action among the rule's actions (mailroom rules have one: 1). */
  position?: number;
}

export interface BoundS3Action {
  /** The `s3_action` block of the receipt rule. */
  config: SesReceiptRuleS3Action;
  /** Resources whose policies must exist before the rule (SES test-writes when the rule is created, docs/ses-format.md#setup-notification-object). */
  resources: DeliveryResource[];
}

/**
 * One receipt rule's S3 action — the counterpart of AWS CDK's `aws-ses-actions.S3`: `bind()` adds exactly the grants
 * SES needs for this rule and nothing else.
 *
 * Without a role SES acts as `ses.amazonaws.com`, so the grants go into the resource policies (bucket §6.1, key
 * §6.2, topic §6.3), each conditioned on this account and this rule's ARN. With a role, SES uses only the role
 * (§6.4): the grants go into the role's trust and inline policy and the resource policies stay untouched.
 */
export class S3Action {
  constructor(readonly props: S3ActionProps) {}

  bind(): BoundS3Action {
    const { ctx, rule, ruleArn, bucket, key, topic, role } = this.props;
    const prefix = rule.s3Action.objectKeyPrefix;
    const resources: DeliveryResource[] = [bucket];
    const customerKey = key && !('awsManagedSesArn' in key) ? key : undefined;
    if (customerKey) {
      resources.push(customerKey);
      bucket.storesMailEncryptedWith(customerKey);
    }
    if (bucket.sseKmsKey) resources.push(bucket.sseKmsKey);
    if (topic) {
      resources.push(topic);
      if (topic.key) resources.push(topic.key);
    }

    if (role) {
      resources.push(role);
      role.trustRule(ruleArn);
      role.grantPut(objectArnPattern(ctx.partition, bucket.name, prefix));
      if (key) role.grantEncrypt(customerKey ?? 'aws-managed-ses');
      if (bucket.sseKmsKey) role.grantKeyForWrite(bucket.sseKmsKey);
      if (topic) {
        role.grantPublish(topic.arn);
        if (topic.key) role.grantKeyForWrite(topic.key);
      }
    } else {
      bucket.grantSesPut(prefix, rule.name, ruleArn);
      customerKey?.grantSesEncrypt(ruleArn); // alias/aws/ses: no statement (docs/ses-format.md#kms-key-policy)
      bucket.sseKmsKey?.grantSesBucketWrite(ruleArn);
      topic?.grantSesPublish(ruleArn);
    }

    const config: SesReceiptRuleS3Action = {
      position: this.props.position ?? 1,
      bucketName: bucket.bucketNameRef,
      ...(prefix !== '' ? { objectKeyPrefix: prefix } : {}),
      ...(key ? { kmsKeyArn: 'awsManagedSesArn' in key ? key.awsManagedSesArn : key.arn } : {}),
      ...(topic ? { topicArn: topic.arnRef } : {}),
      ...(role ? { iamRoleArn: role.arnRef } : {}),
    };
    return { config, resources };
  }
}
