import type { KmsKey } from './aws.js';
import type { DeliveryKey } from './delivery-key.js';
import { SES_PRINCIPAL, sesSourceCondition, type AccountContext, type DeliveryMode, type ManualStatements } from './delivery.js';
import { Construct, type TerraformResource } from './framework.js';
import type { KeyPermissions } from './key-permissions.js';
import type { PolicyStatement } from './policy.js';

/**
 * A customer-managed key SES uses: to encrypt messages, for an SSE-KMS bucket, or for an encrypted topic. The
 * actions' `bind()` add the statements SES needs; `CreatedKey` and `ReferencedKey` decide where they go.
 */
export abstract class CustomerKey extends Construct implements DeliveryKey {
  abstract readonly mode: DeliveryMode;
  abstract readonly arn: string;
  abstract readonly createdKey: KmsKey | undefined;
  abstract readonly dependables: TerraformResource[];
  private readonly encryptRules: string[] = [];
  private readonly bucketRules: string[] = [];
  private readonly topicRules: string[] = [];

  constructor(scope: Construct, id: string, protected readonly ctx: AccountContext) {
    super(scope, id);
  }

  /** SES may encrypt messages of these rules only (encryption-context and source conditions, docs/ses-format.md#kms-key-policy). */
  grantSesEncrypt(ruleArn: string): void {
    this.encryptRules.push(ruleArn);
  }

  /** SES writes through S3 into a bucket whose default encryption is this key (docs/ses-format.md#kms-key-policy: add kms:Decrypt). */
  grantSesBucketWrite(ruleArn: string): void {
    this.bucketRules.push(ruleArn);
  }

  /** SES publishes to a topic encrypted with this key (docs/ses-format.md#kms-key-policy). */
  grantSesTopicPublish(ruleArn: string): void {
    this.topicRules.push(ruleArn);
  }

  grantUse(permissions: KeyPermissions, ruleName: string): void {
    permissions.addCustomerKey(this.arn, ruleName);
  }

  sesStatements(): PolicyStatement[] {
    const { ctx } = this;
    const out: PolicyStatement[] = [];
    if (this.encryptRules.length > 0) {
      out.push({
        Sid: 'AllowSESToEncryptMessagesBelongingToThisAccount',
        Effect: 'Allow',
        Principal: { Service: SES_PRINCIPAL },
        Action: ['kms:Encrypt', 'kms:GenerateDataKey*'],
        Resource: '*',
        Condition: {
          StringEquals: {
            ...sesSourceCondition(ctx, this.encryptRules),
            'kms:EncryptionContext:aws:ses:source-account': ctx.accountId,
          },
          Null: {
            'kms:EncryptionContext:aws:ses:rule-name': false,
            'kms:EncryptionContext:aws:ses:message-id': false,
          },
        },
      });
    }
    if (this.bucketRules.length > 0) {
      out.push({
        Sid: 'AllowSESToWriteToBucketsEncryptedWithThisKey',
        Effect: 'Allow',
        Principal: { Service: SES_PRINCIPAL },
        Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        Resource: '*',
        Condition: { StringEquals: sesSourceCondition(ctx, this.bucketRules) },
      });
    }
    if (this.topicRules.length > 0) {
      out.push({
        Sid: 'AllowSESToPublishToTopicsEncryptedWithThisKey',
        Effect: 'Allow',
        Principal: { Service: SES_PRINCIPAL },
        Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        Resource: '*',
        Condition: { StringEquals: sesSourceCondition(ctx, this.topicRules) },
      });
    }
    return out;
  }

  /** The whole key policy when the stack owns it: the account-root statement (the KMS default, so IAM policies work) + SES. */
  policyStatements(): PolicyStatement[] {
    const { ctx } = this;
    return [
      {
        Sid: 'EnableIAMPoliciesOfThisAccount',
        Effect: 'Allow',
        Principal: { AWS: `arn:${ctx.partition}:iam::${ctx.accountId}:root` },
        Action: 'kms:*',
        Resource: '*',
      },
      ...this.sesStatements(),
    ];
  }

  manualStatements(): ManualStatements[] {
    const s = this.sesStatements();
    return this.mode === 'reference' && s.length > 0 ? [{ target: `key policy of ${this.arn}`, statements: s }] : [];
  }
}
