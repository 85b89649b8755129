import {
  IamRole,
  IamRolePolicy,
  KmsAlias,
  KmsKey,
  KmsKeyPolicy,
  S3Bucket,
  S3BucketLifecycleConfiguration,
  S3BucketOwnershipControls,
  S3BucketPolicy,
  S3BucketPublicAccessBlock,
  S3BucketServerSideEncryption,
  SnsTopic,
  SnsTopicPolicy,
  type AwsProvider,
} from './aws.js';
import { arnResourceName, bucketArn, objectArnPattern } from './arns.js';
import { Construct, type ITerraformDependable } from './framework.js';
import { policyJson, uniq, type PolicyStatement } from './policy.js';

export const SES_PRINCIPAL = 'ses.amazonaws.com';

/** Context every delivery resource needs: who SES acts for. */
export interface AccountContext {
  accountId: string;
  region: string;
  partition: string;
}

/** A resource SES delivers through: created, policy-managed, or referenced (the user applies the statements). */
export interface DeliveryResource {
  readonly mode: 'create' | 'policy' | 'reference';
  /** What a rule must depend on so SES's setup write at rule creation succeeds. Valid after finish(). */
  readonly dependables: ITerraformDependable[];
  /** Creates the policy resources from the grants collected by the actions' bind(). */
  finish(): void;
  /** Statements the user must apply by hand (reference mode). Valid after finish(). */
  manualStatements(): ManualStatements[];
}

export interface ManualStatements {
  /** e.g. `bucket policy of mailroom-inbound-mail`. */
  target: string;
  statements: PolicyStatement[];
}

const WORDS = /^[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*$/;
const ESCAPES: Record<string, string> = { Z: 'ZZ', '-': 'Zh', '.': 'Zd', _: 'Zu' };

/**
 * The Sid of the bucket policy statement that lets SES put for one rule: alphanumeric (what every AWS policy
 * accepts) and distinct for every pair of names SES accepts. Lowercase words joined by "-" read as CamelCase
 * (`catch-all` → `CatchAll`; the capitals mark where a word began, so the name can be read back). Any other name is
 * written as "x" + the name with Z, "-", "." and "_" as ZZ, Zh, Zd and Zu (`support.v2` → `xsupportZdv2`): it starts
 * lowercase, so it can be neither a CamelCase form nor another escaped name.
 */
export function sesPutSid(ruleName: string): string {
  const part = WORDS.test(ruleName)
    ? ruleName
        .split('-')
        .map((w) => w[0]!.toUpperCase() + w.slice(1))
        .join('')
    : 'x' + [...ruleName].map((c) => ESCAPES[c] ?? c).join('');
  return `AllowSESPutsForRule${part}`;
}

function sesCondition(ctx: AccountContext, ruleArns: string[]) {
  return { 'AWS:SourceAccount': ctx.accountId, 'AWS:SourceArn': uniq(ruleArns) };
}

// ----------------------------------------------------------------------------------------------------------------
// Bucket

export interface DeliveryBucketProps {
  ctx: AccountContext;
  name: string;
  region: string;
  mode: 'create' | 'policy' | 'reference';
  provider?: AwsProvider | undefined;
  /** SSE-KMS default encryption key (ARN, possibly a token of a created key). Absent: SSE-S3. */
  sseKmsKey?: DeliveryKey | undefined;
  objectLockEnabled: boolean;
  abortIncompleteMultipartUploadDays: number;
  forceDestroy: boolean;
  /** prevent_destroy: `destroy` refuses as a whole instead of deleting the mail (infra.allowMailDestroy off). */
  preventDestroy: boolean;
}

export class DeliveryBucket extends Construct implements DeliveryResource {
  readonly mode: DeliveryBucketProps['mode'];
  readonly name: string;
  readonly region: string;
  readonly sseKmsKey: DeliveryKey | undefined;
  readonly bucket?: S3Bucket;
  private readonly created: ITerraformDependable[] = [];
  private readonly puts = new Map<string, { prefix: string; ruleArn: string; ruleName: string }>();
  private readonly mailKeys = new Set<DeliveryKey>();
  private policy?: S3BucketPolicy;

  constructor(scope: Construct, id: string, private readonly props: DeliveryBucketProps) {
    super(scope, id);
    this.mode = props.mode;
    this.name = props.name;
    this.region = props.region;
    this.sseKmsKey = props.sseKmsKey;
    if (props.mode !== 'create') return;
    const provider = props.provider;
    this.bucket = new S3Bucket(this, 'bucket', {
      provider,
      bucket: props.name,
      forceDestroy: props.forceDestroy,
      ...(props.objectLockEnabled ? { objectLockEnabled: true } : {}),
      ...(props.preventDestroy ? { lifecycle: { preventDestroy: true } } : {}),
    });
    const pab = new S3BucketPublicAccessBlock(this, 'public-access-block', {
      provider,
      bucket: this.bucket.id,
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
    const own = new S3BucketOwnershipControls(this, 'ownership', {
      provider,
      bucket: this.bucket.id,
      rule: { objectOwnership: 'BucketOwnerEnforced' },
    });
    const sse = new S3BucketServerSideEncryption(this, 'encryption', {
      provider,
      bucket: this.bucket.id,
      rule: [
        props.sseKmsKey
          ? { applyServerSideEncryptionByDefault: { sseAlgorithm: 'aws:kms', kmsMasterKeyId: props.sseKmsKey.arn }, bucketKeyEnabled: true }
          : { applyServerSideEncryptionByDefault: { sseAlgorithm: 'AES256' } },
      ],
    });
    const lifecycle = new S3BucketLifecycleConfiguration(this, 'lifecycle', {
      provider,
      bucket: this.bucket.id,
      rule: [
        {
          id: 'abort-incomplete-multipart-uploads',
          status: 'Enabled',
          filter: [{ prefix: '' }],
          abortIncompleteMultipartUpload: [{ daysAfterInitiation: props.abortIncompleteMultipartUploadDays }],
        },
      ],
    });
    this.created.push(this.bucket, pab, own, sse, lifecycle);
  }

  get arn(): string {
    return bucketArn(this.props.ctx.partition, this.name);
  }

  /** The bucket name as a rule should reference it: the resource's attribute when created (an implicit dependency). */
  get bucketNameRef(): string {
    return (this.nameRef ??= this.bucket ? this.bucket.bucket : this.name);
  }
  private nameRef?: string;

  /** A key that objects in this bucket are encrypted under (a rule's client-side key, or the bucket's SSE-KMS key). */
  storesMailEncryptedWith(key: DeliveryKey): void {
    this.mailKeys.add(key);
  }

  /** Bucket policy statement letting SES put `<prefix>*` for exactly this rule (docs/ses-format.md#bucket-policy, CDK's prefix scoping). */
  grantSesPut(prefix: string, ruleName: string, ruleArn: string): void {
    this.puts.set(ruleName, { prefix, ruleArn, ruleName });
  }

  statements(): PolicyStatement[] {
    return [...this.puts.values()].map((p) => ({
      Sid: sesPutSid(p.ruleName),
      Effect: 'Allow',
      Principal: { Service: SES_PRINCIPAL },
      Action: 's3:PutObject',
      Resource: objectArnPattern(this.props.ctx.partition, this.name, p.prefix),
      Condition: { StringEquals: sesCondition(this.props.ctx, [p.ruleArn]) },
    }));
  }

  finish(): void {
    if (this.bucket) {
      // Terraform destroys what depends on a resource before the resource: with the bucket depending on the keys of
      // its mail, a key is scheduled for deletion only once its bucket is gone — never while S3 still refuses to
      // delete a bucket full of mail encrypted under it. (Its policy, public access block and settings refer to the
      // bucket, so Terraform removes them first whatever is done here; prevent_destroy is what keeps those.)
      const keys = [...this.mailKeys, ...(this.sseKmsKey ? [this.sseKmsKey] : [])].flatMap((k) => (k.key ? [`${k.key.terraformResourceType}.${k.key.friendlyUniqueId}`] : []));
      if (keys.length > 0) this.bucket.dependsOn = [...new Set([...(this.bucket.dependsOn ?? []), ...keys])];
    }
    const statements = this.statements();
    if (statements.length === 0 || this.mode === 'reference') return;
    this.policy = new S3BucketPolicy(this, 'policy', {
      provider: this.props.provider,
      bucket: this.bucketNameRef,
      policy: policyJson(statements),
      // Public access block first, so S3 never sees a policy on a bucket still open to public policies.
      dependsOn: this.created.slice(1, 3),
    });
  }

  get dependables(): ITerraformDependable[] {
    return [...this.created, ...(this.policy ? [this.policy] : [])];
  }

  manualStatements(): ManualStatements[] {
    const statements = this.statements();
    return this.mode === 'reference' && statements.length > 0 ? [{ target: `bucket policy of ${this.name}`, statements }] : [];
  }
}

// ----------------------------------------------------------------------------------------------------------------
// KMS key

export type DeliveryKeyProps =
  | { ctx: AccountContext; kind: 'created'; name: string; alias?: string | undefined; description?: string | undefined; deletionWindowInDays: number; preventDestroy: boolean }
  | { ctx: AccountContext; kind: 'referenced'; arn: string; mode: 'policy' | 'reference' };

/**
 * A customer-managed key SES uses: to encrypt messages (client-side, docs/ses-format.md#client-side-encryption), for an SSE-KMS bucket, or for an
 * encrypted topic. Statements are added by the actions that need them; `alias/aws/ses` never gets one.
 */
export class DeliveryKey extends Construct implements DeliveryResource {
  readonly mode: 'create' | 'policy' | 'reference';
  readonly key?: KmsKey;
  /** The full key ARN (a token for a created key, read once so it is one stable string). */
  readonly arn: string;
  private keyPolicy?: KmsKeyPolicy;
  private readonly encryptRules: string[] = [];
  private readonly bucketRules: string[] = [];
  private readonly topicRules: string[] = [];

  constructor(scope: Construct, id: string, private readonly props: DeliveryKeyProps) {
    super(scope, id);
    this.mode = props.kind === 'created' ? 'create' : props.mode;
    if (props.kind === 'created') {
      this.key = new KmsKey(this, 'key', {
        description: props.description ?? `mailroom: SES receiving key ${props.name}`,
        enableKeyRotation: true,
        deletionWindowInDays: props.deletionWindowInDays,
        keyUsage: 'ENCRYPT_DECRYPT',
        customerMasterKeySpec: 'SYMMETRIC_DEFAULT',
        ...(props.preventDestroy ? { lifecycle: { preventDestroy: true } } : {}),
      });
      if (props.alias) new KmsAlias(this, 'alias', { name: props.alias, targetKeyId: this.key.keyId });
    }
    // What SES and the gateway are given: the full key ARN, never an alias.
    this.arn = this.key ? this.key.arn : (props as { arn: string }).arn;
  }

  get label(): string {
    return this.props.kind === 'created' ? `created key ${this.props.name}` : this.props.arn;
  }

  /** Spec §6.2: SES may encrypt messages of these rules only (encryption-context and source conditions). */
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

  sesStatements(): PolicyStatement[] {
    const { ctx } = this.props;
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
            ...sesCondition(ctx, this.encryptRules),
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
        Condition: { StringEquals: sesCondition(ctx, this.bucketRules) },
      });
    }
    if (this.topicRules.length > 0) {
      out.push({
        Sid: 'AllowSESToPublishToTopicsEncryptedWithThisKey',
        Effect: 'Allow',
        Principal: { Service: SES_PRINCIPAL },
        Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        Resource: '*',
        Condition: { StringEquals: sesCondition(ctx, this.topicRules) },
      });
    }
    return out;
  }

  /** The whole key policy the stack owns: the account-root statement (the KMS default, so IAM policies work) + SES. */
  policyStatements(): PolicyStatement[] {
    const { ctx } = this.props;
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

  finish(): void {
    if (this.key) this.key.policy = policyJson(this.policyStatements());
    else if (this.mode === 'policy') {
      this.keyPolicy = new KmsKeyPolicy(this, 'policy', { keyId: this.arn, policy: policyJson(this.policyStatements()) });
    }
  }

  get dependables(): ITerraformDependable[] {
    if (this.key) return [this.key];
    return this.keyPolicy ? [this.keyPolicy] : [];
  }

  manualStatements(): ManualStatements[] {
    const s = this.sesStatements();
    return this.mode === 'reference' && s.length > 0 ? [{ target: `key policy of ${this.arn}`, statements: s }] : [];
  }
}

// ----------------------------------------------------------------------------------------------------------------
// SNS topic

export interface DeliveryTopicProps {
  ctx: AccountContext;
  arn: string;
  mode: 'create' | 'policy' | 'reference';
  key?: DeliveryKey | undefined;
}

export class DeliveryTopic extends Construct implements DeliveryResource {
  readonly mode: DeliveryTopicProps['mode'];
  readonly topic?: SnsTopic;
  readonly key: DeliveryKey | undefined;
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
  }

  /** The topic ARN; for a created topic it is the resource's attribute (same value: ARNs of topics are names). */
  get arnRef(): string {
    return (this.ref ??= this.topic ? this.topic.arn : this.props.arn);
  }
  private ref?: string;

  get arn(): string {
    return this.props.arn;
  }

  grantSesPublish(ruleArn: string): void {
    this.rules.push(ruleArn);
    this.key?.grantSesTopicPublish(ruleArn);
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
        Condition: { StringEquals: sesCondition(this.props.ctx, this.rules) },
      },
    ];
  }

  finish(): void {
    const s = this.statements();
    if (s.length === 0 || this.mode === 'reference') return;
    this.topicPolicy = new SnsTopicPolicy(this, 'policy', { arn: this.arnRef, policy: policyJson(s) });
  }

  get dependables(): ITerraformDependable[] {
    return [...(this.topic ? [this.topic] : []), ...(this.topicPolicy ? [this.topicPolicy] : [])];
  }

  manualStatements(): ManualStatements[] {
    const s = this.statements();
    return this.mode === 'reference' && s.length > 0 ? [{ target: `topic policy of ${this.props.arn}`, statements: s }] : [];
  }
}

// ----------------------------------------------------------------------------------------------------------------
// IAM role for the S3 action

export interface DeliveryRoleProps {
  ctx: AccountContext;
  arn: string;
  mode: 'create' | 'reference';
}

/**
 * The role SES assumes for an S3 action (docs/ses-format.md#iam-role): with it SES uses only the role, so the rules using it get no
 * resource-policy statements. Trust: ses.amazonaws.com for exactly these rules.
 */
export class DeliveryRole extends Construct implements DeliveryResource {
  readonly mode: DeliveryRoleProps['mode'];
  readonly role?: IamRole;
  private inline?: IamRolePolicy;
  private readonly ruleArns: string[] = [];
  private readonly objects: string[] = [];
  private readonly keys: string[] = [];
  private awsManagedSesKey = false;
  private readonly writeKeys: string[] = [];
  private readonly topics: string[] = [];

  constructor(scope: Construct, id: string, private readonly props: DeliveryRoleProps) {
    super(scope, id);
    this.mode = props.mode;
    if (props.mode === 'create') {
      this.role = new IamRole(this, 'role', {
        name: arnResourceName(props.arn),
        description: 'mailroom: SES receipt rule S3 action',
        assumeRolePolicy: '{}', // set in finish(), once every rule that uses the role is known
      });
    }
  }

  get arn(): string {
    return this.props.arn;
  }

  /** For the rule's s3_action: the resource attribute when created (same value as the configured ARN). */
  get arnRef(): string {
    return (this.ref ??= this.role ? this.role.arn : this.props.arn);
  }
  private ref?: string;

  trustRule(ruleArn: string): void {
    this.ruleArns.push(ruleArn);
  }
  grantPut(objectPattern: string): void {
    this.objects.push(objectPattern);
  }
  grantEncrypt(key: DeliveryKey | 'aws-managed-ses'): void {
    if (key === 'aws-managed-ses') this.awsManagedSesKey = true;
    else this.keys.push(key.arn);
  }
  /** Keys SES uses through S3 (SSE-KMS bucket) or SNS (encrypted topic). */
  grantKeyForWrite(key: DeliveryKey): void {
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
    const { ctx } = this.props;
    const out: PolicyStatement[] = [{ Sid: 'S3Access', Effect: 'Allow', Action: 's3:PutObject', Resource: uniq(this.objects) }];
    if (this.keys.length > 0) out.push({ Sid: 'KMSAccess', Effect: 'Allow', Action: 'kms:GenerateDataKey*', Resource: uniq(this.keys) });
    if (this.awsManagedSesKey) {
      // IAM matches KMS permissions against key ARNs, not alias ARNs: select the AWS-managed key by its alias.
      out.push({
        Sid: 'KMSAccessAwsManagedSesKey',
        Effect: 'Allow',
        Action: 'kms:GenerateDataKey*',
        Resource: `arn:${ctx.partition}:kms:${ctx.region}:${ctx.accountId}:key/*`,
        Condition: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/aws/ses' } },
      });
    }
    if (this.writeKeys.length > 0) {
      // SSE-KMS bucket / encrypted topic: the API reference lists kms:Encrypt and kms:GenerateDataKey; kms:Decrypt is
      // what S3 needs to complete a multipart upload under SSE-KMS.
      out.push({ Sid: 'KMSAccessForBucketAndTopicEncryption', Effect: 'Allow', Action: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*'], Resource: uniq(this.writeKeys) });
    }
    if (this.topics.length > 0) out.push({ Sid: 'SNSAccess', Effect: 'Allow', Action: 'sns:Publish', Resource: uniq(this.topics) });
    return out;
  }

  finish(): void {
    if (!this.role) return;
    this.role.assumeRolePolicy = policyJson(this.trustStatements());
    this.inline = new IamRolePolicy(this, 'permissions', {
      name: 'ses-s3-action',
      role: this.role.name,
      policy: policyJson(this.permissionStatements()),
    });
  }

  get dependables(): ITerraformDependable[] {
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
