import { IamPolicy, IamRole, IamRolePolicyAttachment } from './aws.js';
import type { DeliveryBucket } from './delivery-bucket.js';
import type { DeliveryKey } from './delivery-key.js';
import type { DeliveryTopic } from './delivery-topic.js';
import type { AccountContext } from './delivery.js';
import { Construct } from './framework.js';
import { awsManagedSesKeySelector, KeyPermissions } from './key-permissions.js';
import { policyJson, uniq, type PolicyStatement } from './policy.js';

/** What the gateway writes for one rule — the same bucket, prefix, key and topic SES uses. */
export interface GatewayWriterRule {
  ruleName: string;
  bucket: DeliveryBucket;
  prefix: string;
  key?: DeliveryKey | undefined;
  topic?: DeliveryTopic | undefined;
}

export interface GatewayWriterAccessProps {
  ctx: AccountContext;
  policyName: string;
  rules: GatewayWriterRule[];
  role?: { name: string; trustedPrincipalArns: string[]; trustedServices: string[] } | undefined;
}

/**
 * Least-privilege access for `mailroom gateway` to write exactly what SES would: objects under each rule's prefix
 * (multipart included: lib-storage's Upload aborts and lists parts), a data key per message under the SES
 * encryption context (this account, these rules), and publishing to the rules' topics.
 *
 * The gateway writes the SAME encryption context as SES (docs/ses-format.md#encryption-context): aws:ses:message-id, aws:ses:rule-name,
 * aws:ses:source-account, kms_cmk_id; the conditions below pin the two that identify this deployment.
 */
export class GatewayWriterAccess extends Construct {
  readonly policy: IamPolicy;
  readonly role?: IamRole;
  /** Rules configured with alias/aws/ses: the gateway may not be able to use that key at all (docs/ses-format.md#the-aws-managed-key-and-the-gateway). */
  readonly awsManagedKeyRules: string[];
  private readonly keys = new KeyPermissions();

  constructor(scope: Construct, id: string, private readonly props: GatewayWriterAccessProps) {
    super(scope, id);
    for (const r of props.rules) r.key?.grantUse(this.keys, r.ruleName);
    this.awsManagedKeyRules = [...this.keys.awsManagedSesKeyRules];
    this.policy = new IamPolicy(this, 'policy', {
      name: props.policyName,
      description: 'mailroom gateway: write received mail exactly where SES does',
      policy: policyJson(this.statements()),
    });
    if (props.role) {
      const trust: PolicyStatement[] = [];
      if (props.role.trustedPrincipalArns.length > 0) {
        trust.push({ Sid: 'TrustedPrincipals', Effect: 'Allow', Principal: { AWS: uniq(props.role.trustedPrincipalArns) }, Action: 'sts:AssumeRole' });
      }
      if (props.role.trustedServices.length > 0) {
        trust.push({ Sid: 'TrustedServices', Effect: 'Allow', Principal: { Service: uniq(props.role.trustedServices) }, Action: 'sts:AssumeRole' });
      }
      this.role = new IamRole(this, 'role', {
        name: props.role.name,
        description: 'mailroom gateway writer',
        assumeRolePolicy: policyJson(trust),
      });
      new IamRolePolicyAttachment(this, 'attachment', { role: this.role.name, policyArn: this.policy.arn });
    }
  }

  statements(): PolicyStatement[] {
    const { ctx, rules } = this.props;
    const out: PolicyStatement[] = [
      {
        Sid: 'WriteMessages',
        Effect: 'Allow',
        Action: ['s3:AbortMultipartUpload', 's3:ListMultipartUploadParts', 's3:PutObject'],
        Resource: uniq(rules.map((r) => r.bucket.objectsArn(r.prefix))),
      },
    ];
    // One statement per customer key, limited to the rules that use it.
    let i = 0;
    for (const [arn, names] of this.keys.customerKeys) {
      out.push({
        Sid: `EncryptMessages${++i}`,
        Effect: 'Allow',
        Action: 'kms:GenerateDataKey',
        Resource: arn,
        Condition: {
          StringEquals: {
            'kms:EncryptionContext:aws:ses:source-account': ctx.accountId,
            'kms:EncryptionContext:aws:ses:rule-name': uniq(names),
          },
        },
      });
    }
    const awsManaged = this.keys.awsManagedSesKeyRules;
    if (awsManaged.length > 0) {
      const selector = awsManagedSesKeySelector(ctx);
      // UNCONFIRMED (docs/ses-format.md#the-aws-managed-key-and-the-gateway): whether a non-SES principal may use the AWS-managed key at all. The grant is
      // harmless if its key policy refuses; the stack warns at synth.
      out.push({
        Sid: 'EncryptMessagesAwsManagedSesKey',
        Effect: 'Allow',
        Action: 'kms:GenerateDataKey',
        Resource: selector.Resource,
        Condition: {
          ...selector.Condition,
          StringEquals: {
            'kms:EncryptionContext:aws:ses:source-account': ctx.accountId,
            'kms:EncryptionContext:aws:ses:rule-name': uniq(awsManaged),
          },
        },
      });
    }
    // SSE-KMS buckets: S3 calls KMS for the gateway (GenerateDataKey per object, Decrypt to complete multipart).
    const sseKeys = new Map<string, Set<string>>();
    for (const r of rules) {
      if (!r.bucket.sseKmsKey) continue;
      const set = sseKeys.get(r.bucket.sseKmsKey.arn) ?? new Set<string>();
      set.add(`s3.${r.bucket.region}.amazonaws.com`);
      sseKeys.set(r.bucket.sseKmsKey.arn, set);
    }
    i = 0;
    for (const [arn, via] of sseKeys) {
      out.push({ Sid: `BucketEncryption${++i}`, Effect: 'Allow', Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: arn, Condition: { StringEquals: { 'kms:ViaService': uniq(via) } } });
    }
    const topics = uniq(rules.flatMap((r) => (r.topic ? [r.topic.arn] : [])));
    if (topics.length > 0) out.push({ Sid: 'PublishNotifications', Effect: 'Allow', Action: 'sns:Publish', Resource: topics });
    const topicKeys = uniq(rules.flatMap((r) => (r.topic?.key ? [r.topic.key.arn] : [])));
    if (topicKeys.length > 0) {
      out.push({ Sid: 'TopicEncryption', Effect: 'Allow', Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: topicKeys, Condition: { StringEquals: { 'kms:ViaService': `sns.${ctx.region}.amazonaws.com` } } });
    }
    return out;
  }
}
