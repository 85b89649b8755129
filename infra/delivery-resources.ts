import type { InfraSettings } from '../shared/config/infra.js';
import type { ReceiptRule as RuleConfig } from '../shared/config/schema.js';
import { isAwsManagedSesKey } from '../shared/ses/arn.js';
import type { AwsProvider } from './aws.js';
import { arnResourceName, idOf } from './arns.js';
import { AwsManagedSesKey } from './aws-managed-key.js';
import { CreatedKey } from './created-key.js';
import type { CustomerKey } from './customer-key.js';
import { DeliveryBucket } from './delivery-bucket.js';
import type { DeliveryKey } from './delivery-key.js';
import { DeliveryRole } from './delivery-role.js';
import { DeliveryTopic } from './delivery-topic.js';
import type { AccountContext, DeliveryResource, ManualStatements } from './delivery.js';
import type { Construct } from './framework.js';
import { ReferencedKey } from './referenced-key.js';

/** What one rule's S3 action delivers through. */
export interface RuleDelivery {
  bucket: DeliveryBucket;
  key?: DeliveryKey | undefined;
  topic?: DeliveryTopic | undefined;
  role?: DeliveryRole | undefined;
}

export interface DeliveryResourcesProps {
  ctx: AccountContext;
  infra: InfraSettings;
  /** Provider for a bucket region other than the receiving one. */
  providerFor?: ((region: string) => AwsProvider | undefined) | undefined;
}

/**
 * The buckets, keys, topics and roles of a config, each created once on first use, in rule order, under `scope`
 * with the construct ids their Terraform addresses come from (`kms-<name>`, `kms-ref-<key id>`, `bucket-<name>`,
 * `topic-<name>`, `role-<name>`). Stored mail outlives the stack unless the config says otherwise: created buckets
 * and the created keys that encrypt mail get prevent_destroy.
 */
export class DeliveryResources {
  readonly createdKeys = new Map<string, CreatedKey>();
  readonly referencedKeys = new Map<string, ReferencedKey>();
  readonly buckets = new Map<string, DeliveryBucket>();
  readonly topics = new Map<string, DeliveryTopic>();
  readonly roles = new Map<string, DeliveryRole>();
  /** Created keys that encrypt mail (a rule's or a bucket's): `destroy` keeps them with the buckets. */
  readonly mailKeyNames: string[] = [];
  readonly keepMail: boolean;
  private readonly createdKeyOfRule = new Map<string, CreatedKey>();

  constructor(private readonly scope: Construct, private readonly props: DeliveryResourcesProps) {
    const { infra, ctx } = props;
    this.keepMail = !infra.allowMailDestroy;
    const bucketKeyNames = new Set(Object.values(infra.buckets).flatMap((b) => (b.encryption?.createdKmsKey !== undefined ? [b.encryption.createdKmsKey] : [])));
    for (const [name, k] of Object.entries(infra.createKmsKeys)) {
      const encryptsMail = k.rules.length > 0 || bucketKeyNames.has(name);
      const key = new CreatedKey(scope, `kms-${idOf(name)}`, {
        ctx,
        name,
        alias: k.alias,
        description: k.description,
        deletionWindowInDays: k.deletionWindowInDays,
        preventDestroy: this.keepMail && encryptsMail,
      });
      this.createdKeys.set(name, key);
      if (encryptsMail) this.mailKeyNames.push(name);
      for (const r of k.rules) this.createdKeyOfRule.set(r, key);
    }
  }

  /** The resources a rule's S3 action names, created if this is their first use. */
  forRule(rule: RuleConfig): RuleDelivery {
    const a = rule.s3Action;
    const bucket = this.bucket(a.bucketName, a.bucketRegion ?? this.props.ctx.region);
    const key = a.kmsKeyArn !== undefined ? this.messageKey(a.kmsKeyArn) : this.createdKeyOfRule.get(rule.name);
    const topic = a.topicArn !== undefined ? this.topic(a.topicArn) : undefined;
    const role = a.iamRoleArn !== undefined ? this.role(a.iamRoleArn) : undefined;
    return { bucket, key, topic, role };
  }

  /** Every resource, keys first: the order of `manual_policy_statements` and of the warnings. */
  all(): DeliveryResource[] {
    return [...this.createdKeys.values(), ...this.referencedKeys.values(), ...this.buckets.values(), ...this.topics.values(), ...this.roles.values()];
  }

  manualStatements(): ManualStatements[] {
    return this.all().flatMap((r) => r.manualStatements());
  }

  /** Synth warnings about what the stack does not own, or owns as a whole. */
  ownershipWarnings(): string[] {
    const out = this.manualStatements().map(
      (m) => `${m.target} is referenced, not managed: SES needs ${m.statements.length} statement(s) there before the rule can be created (output manual_policy_statements has them).`,
    );
    for (const b of this.buckets.values()) if (b.mode === 'policy') out.push(`bucket ${b.name}: mode "policy" replaces the bucket's whole bucket policy with the statements SES needs.`);
    for (const k of this.referencedKeys.values()) if (k.mode === 'policy') out.push(`key ${k.arn}: mode "policy" replaces the whole key policy (account-root statement + SES statements).`);
    for (const t of this.topics.values()) if (t.mode === 'policy') out.push(`topic ${t.arn}: mode "policy" replaces the whole topic policy.`);
    return out;
  }

  /** The key a rule names by ARN: this account's AWS-managed key, or a customer key. */
  private messageKey(arn: string): DeliveryKey {
    return isAwsManagedSesKey(arn) ? new AwsManagedSesKey(arn) : this.referencedKey(arn);
  }

  private customerKey(ref: { kmsKeyArn?: string | undefined; createdKmsKey?: string | undefined } | undefined): CustomerKey | undefined {
    if (ref?.createdKmsKey !== undefined) return this.createdKeys.get(ref.createdKmsKey);
    return ref?.kmsKeyArn !== undefined ? this.referencedKey(ref.kmsKeyArn) : undefined;
  }

  private referencedKey(arn: string): ReferencedKey {
    let key = this.referencedKeys.get(arn);
    if (!key) {
      key = new ReferencedKey(this.scope, `kms-ref-${idOf(arnResourceName(arn))}`, { ctx: this.props.ctx, arn, mode: this.props.infra.kmsKeys[arn]?.mode ?? 'reference' });
      this.referencedKeys.set(arn, key);
    }
    return key;
  }

  private bucket(name: string, region: string): DeliveryBucket {
    let b = this.buckets.get(name);
    if (!b) {
      const s = this.props.infra.buckets[name];
      b = new DeliveryBucket(this.scope, `bucket-${idOf(name)}`, {
        ctx: this.props.ctx,
        name,
        region,
        mode: s?.mode ?? 'create',
        provider: region === this.props.ctx.region ? undefined : this.props.providerFor?.(region),
        sseKmsKey: this.customerKey(s?.encryption),
        objectLockEnabled: s?.objectLock?.enabled ?? false,
        abortIncompleteMultipartUploadDays: s?.abortIncompleteMultipartUploadDays ?? 7,
        forceDestroy: s?.forceDestroy ?? false,
        preventDestroy: this.keepMail,
      });
      this.buckets.set(name, b);
    }
    return b;
  }

  private topic(arn: string): DeliveryTopic {
    let t = this.topics.get(arn);
    if (!t) {
      const s = this.props.infra.topics[arn];
      t = new DeliveryTopic(this.scope, `topic-${idOf(arnResourceName(arn))}`, { ctx: this.props.ctx, arn, mode: s?.mode ?? 'create', key: this.customerKey(s?.encryption) });
      this.topics.set(arn, t);
    }
    return t;
  }

  private role(arn: string): DeliveryRole {
    let r = this.roles.get(arn);
    if (!r) {
      r = new DeliveryRole(this.scope, `role-${idOf(arnResourceName(arn))}`, { ctx: this.props.ctx, arn, mode: this.props.infra.roles[arn]?.mode ?? 'create' });
      this.roles.set(arn, r);
    }
    return r;
  }
}
