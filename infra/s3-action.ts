import type { DeliveryBucket } from './delivery-bucket.js';
import type { DeliveryKey } from './delivery-key.js';
import type { DeliveryRole } from './delivery-role.js';
import type { DeliveryTopic } from './delivery-topic.js';
import type { ReceiptRule, ReceiptRuleAction, ReceiptRuleActionConfig } from './receipt-rule.js';

export interface S3ActionProps {
  bucket: DeliveryBucket;
  /** Default: no prefix. */
  objectKeyPrefix?: string | undefined;
  /** The key SES encrypts messages under: a customer key, or this account's AWS-managed `alias/aws/ses`. */
  key?: DeliveryKey | undefined;
  topic?: DeliveryTopic | undefined;
  role?: DeliveryRole | undefined;
}

/**
 * A receipt rule's S3 action — the counterpart of AWS CDK's `aws-ses-actions.S3`: `bind()` adds exactly the grants
 * SES needs for this rule, and makes the rule wait for every resource it names.
 *
 * Without a role SES acts as `ses.amazonaws.com`, so the grants go into the resource policies (bucket, key, topic:
 * docs/ses-format.md#permissions), each conditioned on this account and this rule's ARN. With a role, SES uses only
 * the role (docs/ses-format.md#iam-role): the grants go into the role's trust and inline policy and the resource
 * policies stay untouched.
 */
export class S3Action implements ReceiptRuleAction {
  constructor(readonly props: S3ActionProps) {}

  bind(rule: ReceiptRule): ReceiptRuleActionConfig {
    const { bucket, key, topic, role } = this.props;
    const prefix = this.props.objectKeyPrefix ?? '';
    rule.dependOn(bucket);
    if (key) {
      rule.dependOn(key);
      bucket.storesMailEncryptedWith(key);
    }
    if (bucket.sseKmsKey) rule.dependOn(bucket.sseKmsKey);
    if (topic) {
      rule.dependOn(topic);
      if (topic.key) rule.dependOn(topic.key);
    }

    if (role) {
      rule.dependOn(role);
      role.trustRule(rule.ruleArn);
      role.grantPut(bucket.objectsArn(prefix));
      if (key) role.grantEncrypt(key, rule.ruleName);
      if (bucket.sseKmsKey) role.grantKeyForWrite(bucket.sseKmsKey);
      if (topic) {
        role.grantPublish(topic.arn);
        if (topic.key) role.grantKeyForWrite(topic.key);
      }
    } else {
      bucket.grantSesPut(prefix, rule.ruleName, rule.ruleArn);
      key?.grantSesEncrypt(rule.ruleArn);
      bucket.sseKmsKey?.grantSesBucketWrite(rule.ruleArn);
      topic?.grantSesPublish(rule.ruleArn);
    }

    return {
      s3Action: {
        bucketName: bucket.bucketNameRef,
        ...(prefix !== '' ? { objectKeyPrefix: prefix } : {}),
        ...(key ? { kmsKeyArn: key.arn } : {}),
        ...(topic ? { topicArn: topic.arnRef } : {}),
        ...(role ? { iamRoleArn: role.arnRef } : {}),
      },
    };
  }
}
