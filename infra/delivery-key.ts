/** The key SES encrypts a rule's messages under (client-side, docs/ses-format.md#client-side-encryption). */
import type { KmsKey } from './aws.js';
import type { DeliveryResource } from './delivery.js';
import type { KeyPermissions } from './key-permissions.js';

/**
 * A customer key (created or referenced: `CustomerKey`) or this account's AWS-managed `alias/aws/ses`
 * (`AwsManagedSesKey`, whose grants are no-ops: it needs no statement, docs/ses-format.md#the-aws-managed-key).
 */
export interface DeliveryKey extends DeliveryResource {
  /** What the rule's `s3_action` and the gateway are given: a full key ARN (a token for a created key), or the configured alias ARN of `alias/aws/ses`. */
  readonly arn: string;
  /** The key resource when the stack creates it: a bucket whose mail is encrypted under it is destroyed first. */
  readonly createdKey: KmsKey | undefined;
  /** Key policy: SES may encrypt the messages of this rule (docs/ses-format.md#kms-key-policy). */
  grantSesEncrypt(ruleArn: string): void;
  /** Identity policy (an S3 action's role, the gateway writer): its principal may encrypt this rule's messages. */
  grantUse(permissions: KeyPermissions, ruleName: string): void;
}
