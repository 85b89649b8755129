import { IamRole, IamRolePolicy } from './aws.js';
import { arnResourceName } from './arns.js';
import type { CustomerKey } from './customer-key.js';
import type { DeliveryKey } from './delivery-key.js';
import { SES_PRINCIPAL, type AccountContext, type DeliveryResource, type ManualStatements } from './delivery.js';
import { Construct, Lazy, type TerraformResource } from './framework.js';
import { awsManagedSesKeySelector, KeyPermissions } from './key-permissions.js';
import { policyJson, uniq, type PolicyStatement } from './policy.js';

export interface DeliveryRoleProps {
  ctx: AccountContext;
  arn: string;
  mode: 'create' | 'reference';
}

/**
 * The role SES assumes for an S3 action (docs/ses-format.md#iam-role): with it SES uses only the role, so the rules
 * using it get no resource-policy statements. Trust: ses.amazonaws.com for exactly these rules.
 */
export class DeliveryRole extends Construct implements DeliveryResource {
  readonly mode: DeliveryRoleProps['mode'];
  readonly role?: IamRole;
  /** For the rule's s3_action: the resource attribute when created (same value as the configured ARN). */
  readonly arnRef: string;
  private inline?: IamRolePolicy;
  private readonly ruleArns: string[] = [];
  private readonly objects: string[] = [];
  private readonly keys = new KeyPermissions();
  private readonly writeKeys: string[] = [];
  private readonly topics: string[] = [];

  constructor(scope: Construct, id: string, private readonly props: DeliveryRoleProps) {
    super(scope, id);
    this.mode = props.mode;
    if (props.mode === 'create') {
      const role = new IamRole(this, 'role', {
        name: arnResourceName(props.arn),
        description: 'mailroom: SES receipt rule S3 action',
        assumeRolePolicy: Lazy.stringValue({ produce: () => policyJson(this.trustStatements()) }),
      });
      this.inline = new IamRolePolicy(this, 'permissions', {
        name: 'ses-s3-action',
        role: role.name,
        policy: Lazy.stringValue({ produce: () => policyJson(this.permissionStatements()) }),
      });
      this.role = role;
    }
    this.arnRef = this.role ? this.role.arn : props.arn;
  }

  get arn(): string {
    return this.props.arn;
  }

  trustRule(ruleArn: string): void {
    this.ruleArns.push(ruleArn);
  }
  grantPut(objectPattern: string): void {
    this.objects.push(objectPattern);
  }
  grantEncrypt(key: DeliveryKey, ruleName: string): void {
    key.grantUse(this.keys, ruleName);
  }
  /** Keys SES uses through S3 (SSE-KMS bucket) or SNS (encrypted topic). */
  grantKeyForWrite(key: CustomerKey): void {
    this.writeKeys.push(key.arn);
  }
  grantPublish(topicArn: string): void {
    this.topics.push(topicArn);
  }

  trustStatements(): PolicyStatement[] {
    return [
      {
        Sid: 'AllowSESToAssumeForTheseRules',
        Effect: 'Allow',
        Principal: { Service: SES_PRINCIPAL },
        Action: 'sts:AssumeRole',
        Condition: { StringEquals: { 'aws:SourceAccount': this.props.ctx.accountId, 'aws:SourceArn': uniq(this.ruleArns) } },
      },
    ];
  }

  permissionStatements(): PolicyStatement[] {
    const out: PolicyStatement[] = [{ Sid: 'S3Access', Effect: 'Allow', Action: 's3:PutObject', Resource: uniq(this.objects) }];
    if (this.keys.customerKeys.size > 0) out.push({ Sid: 'KMSAccess', Effect: 'Allow', Action: 'kms:GenerateDataKey*', Resource: uniq(this.keys.customerKeys.keys()) });
    if (this.keys.awsManagedSesKeyRules.length > 0) {
      out.push({ Sid: 'KMSAccessAwsManagedSesKey', Effect: 'Allow', Action: 'kms:GenerateDataKey*', ...awsManagedSesKeySelector(this.props.ctx) });
    }
    if (this.writeKeys.length > 0) {
      // SSE-KMS bucket / encrypted topic: the API reference lists kms:Encrypt and kms:GenerateDataKey; kms:Decrypt is
      // what S3 needs to complete a multipart upload under SSE-KMS.
      out.push({ Sid: 'KMSAccessForBucketAndTopicEncryption', Effect: 'Allow', Action: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*'], Resource: uniq(this.writeKeys) });
    }
    if (this.topics.length > 0) out.push({ Sid: 'SNSAccess', Effect: 'Allow', Action: 'sns:Publish', Resource: uniq(this.topics) });
    return out;
  }

  get dependables(): TerraformResource[] {
    return this.role ? [this.role, ...(this.inline ? [this.inline] : [])] : [];
  }

  manualStatements(): ManualStatements[] {
    if (this.mode !== 'reference') return [];
    return [
      { target: `trust policy of ${this.props.arn}`, statements: this.trustStatements() },
      { target: `permissions of ${this.props.arn}`, statements: this.permissionStatements() },
    ];
  }
}
