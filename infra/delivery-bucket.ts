import {
  S3Bucket,
  S3BucketLifecycleConfiguration,
  S3BucketOwnershipControls,
  S3BucketPolicy,
  S3BucketPublicAccessBlock,
  S3BucketServerSideEncryption,
  type AwsProvider,
} from './aws.js';
import { bucketArn, objectArnPattern } from './arns.js';
import type { CustomerKey } from './customer-key.js';
import type { DeliveryKey } from './delivery-key.js';
import { SES_PRINCIPAL, sesSourceCondition, type AccountContext, type DeliveryMode, type DeliveryResource, type ManualStatements } from './delivery.js';
import { Construct, Lazy, type TerraformResource } from './framework.js';
import { policyJson, type PolicyStatement } from './policy.js';
import { sesPutSid } from './ses-put-sid.js';

export interface DeliveryBucketProps {
  ctx: AccountContext;
  name: string;
  region: string;
  mode: DeliveryMode;
  provider?: AwsProvider | undefined;
  /** SSE-KMS default encryption key. Absent: SSE-S3. */
  sseKmsKey?: CustomerKey | undefined;
  objectLockEnabled: boolean;
  abortIncompleteMultipartUploadDays: number;
  forceDestroy: boolean;
  /** prevent_destroy: `destroy` refuses as a whole instead of deleting the mail (infra.allowMailDestroy off). */
  preventDestroy: boolean;
}

/** The bucket SES writes a rule's messages to: created private and owner-enforced, or existing (policy / reference). */
export class DeliveryBucket extends Construct implements DeliveryResource {
  readonly mode: DeliveryMode;
  readonly name: string;
  readonly region: string;
  readonly sseKmsKey: CustomerKey | undefined;
  readonly bucket?: S3Bucket;
  /** The bucket name as a rule references it: the resource's attribute when created (an implicit dependency). */
  readonly bucketNameRef: string;
  private readonly created: TerraformResource[] = [];
  private readonly puts = new Map<string, { prefix: string; ruleArn: string; ruleName: string }>();
  private readonly mailKeys = new Set<DeliveryKey>();
  private policy?: S3BucketPolicy;

  constructor(scope: Construct, id: string, private readonly props: DeliveryBucketProps) {
    super(scope, id);
    this.mode = props.mode;
    this.name = props.name;
    this.region = props.region;
    this.sseKmsKey = props.sseKmsKey;
    if (props.mode === 'create') this.bucket = this.createBucket(props);
    this.bucketNameRef = this.bucket ? this.bucket.bucket : this.name;
  }

  private createBucket(props: DeliveryBucketProps): S3Bucket {
    const provider = props.provider;
    const bucket = new S3Bucket(this, 'bucket', {
      provider,
      bucket: props.name,
      forceDestroy: props.forceDestroy,
      ...(props.objectLockEnabled ? { objectLockEnabled: true } : {}),
      ...(props.preventDestroy ? { lifecycle: { preventDestroy: true } } : {}),
    });
    // Terraform destroys what depends on a resource before the resource: with the bucket depending on the keys of
    // its mail, a key is scheduled for deletion only once its bucket is gone — never while S3 still refuses to
    // delete a bucket full of mail encrypted under it. (Its policy, public access block and settings refer to the
    // bucket, so Terraform removes them first whatever is done here; prevent_destroy is what keeps those.)
    bucket.dependsOn = Lazy.listValue({ produce: () => this.mailKeyAddresses() }, { omitEmpty: true });
    const pab = new S3BucketPublicAccessBlock(this, 'public-access-block', {
      provider,
      bucket: bucket.id,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
    const own = new S3BucketOwnershipControls(this, 'ownership', { provider, bucket: bucket.id, rule: { objectOwnership: 'BucketOwnerEnforced' } });
    const sse = new S3BucketServerSideEncryption(this, 'encryption', {
      provider,
      bucket: bucket.id,
      rule: [
        props.sseKmsKey
          ? { applyServerSideEncryptionByDefault: { sseAlgorithm: 'aws:kms', kmsMasterKeyId: props.sseKmsKey.arn }, bucketKeyEnabled: true }
          : { applyServerSideEncryptionByDefault: { sseAlgorithm: 'AES256' } },
      ],
    });
    const lifecycle = new S3BucketLifecycleConfiguration(this, 'lifecycle', {
      provider,
      bucket: bucket.id,
      rule: [
        {
          id: 'abort-incomplete-multipart-uploads',
          status: 'Enabled',
          filter: [{ prefix: '' }],
          abortIncompleteMultipartUpload: [{ daysAfterInitiation: props.abortIncompleteMultipartUploadDays }],
        },
      ],
    });
    this.created.push(bucket, pab, own, sse, lifecycle);
    return bucket;
  }

  get arn(): string {
    return bucketArn(this.props.ctx.partition, this.name);
  }

  /** `arn:aws:s3:::bucket/<prefix>*`: every object a rule with this prefix writes. */
  objectsArn(prefix: string): string {
    return objectArnPattern(this.props.ctx.partition, this.name, prefix);
  }

  /** A key that objects in this bucket are encrypted under (a rule's client-side key, or the bucket's SSE-KMS key). */
  storesMailEncryptedWith(key: DeliveryKey): void {
    this.mailKeys.add(key);
  }

  /** Bucket policy statement letting SES put `<prefix>*` for exactly this rule (docs/ses-format.md#bucket-policy, CDK's prefix scoping). */
  grantSesPut(prefix: string, ruleName: string, ruleArn: string): void {
    this.puts.set(ruleName, { prefix, ruleArn, ruleName });
    if (this.mode === 'reference' || this.policy) return;
    this.policy = new S3BucketPolicy(this, 'policy', {
      provider: this.props.provider,
      bucket: this.bucketNameRef,
      policy: Lazy.stringValue({ produce: () => policyJson(this.statements()) }),
      // Public access block first, so S3 never sees a policy on a bucket still open to public policies.
      dependsOn: this.created.slice(1, 3),
    });
  }

  statements(): PolicyStatement[] {
    return [...this.puts.values()].map((p) => ({
      Sid: sesPutSid(p.ruleName),
      Effect: 'Allow',
      Principal: { Service: SES_PRINCIPAL },
      Action: 's3:PutObject',
      Resource: this.objectsArn(p.prefix),
      Condition: { StringEquals: sesSourceCondition(this.props.ctx, [p.ruleArn]) },
    }));
  }

  get dependables(): TerraformResource[] {
    return [...this.created, ...(this.policy ? [this.policy] : [])];
  }

  manualStatements(): ManualStatements[] {
    const statements = this.statements();
    return this.mode === 'reference' && statements.length > 0 ? [{ target: `bucket policy of ${this.name}`, statements }] : [];
  }

  private mailKeyAddresses(): string[] {
    const keys = [...this.mailKeys, ...(this.sseKmsKey ? [this.sseKmsKey] : [])].flatMap((k) => (k.createdKey ? [`${k.createdKey.terraformResourceType}.${k.createdKey.friendlyUniqueId}`] : []));
    return [...new Set(keys)];
  }
}
