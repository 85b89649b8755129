import { KmsAlias, KmsKey } from './aws.js';
import { CustomerKey } from './customer-key.js';
import type { AccountContext, DeliveryMode } from './delivery.js';
import { Lazy, type Construct, type TerraformResource } from './framework.js';
import { policyJson } from './policy.js';

export interface CreatedKeyProps {
  ctx: AccountContext;
  /** Its name in `infra.createKmsKeys`. */
  name: string;
  alias?: string | undefined;
  description?: string | undefined;
  deletionWindowInDays: number;
  /** prevent_destroy: the key decrypts stored mail (infra.allowMailDestroy off). */
  preventDestroy: boolean;
}

/** A key the stack creates (rotation on): its whole policy is the stack's, rendered at synth from the grants. */
export class CreatedKey extends CustomerKey {
  readonly mode: DeliveryMode = 'create';
  readonly key: KmsKey;
  readonly createdKey: KmsKey;
  /** The key's ARN attribute, read once so it is one stable token string. */
  readonly arn: string;

  constructor(scope: Construct, id: string, readonly props: CreatedKeyProps) {
    super(scope, id, props.ctx);
    this.key = new KmsKey(this, 'key', {
      description: props.description ?? `mailroom: SES receiving key ${props.name}`,
      enableKeyRotation: true,
      deletionWindowInDays: props.deletionWindowInDays,
      keyUsage: 'ENCRYPT_DECRYPT',
      customerMasterKeySpec: 'SYMMETRIC_DEFAULT',
      policy: Lazy.stringValue({ produce: () => policyJson(this.policyStatements()) }),
      ...(props.preventDestroy ? { lifecycle: { preventDestroy: true } } : {}),
    });
    this.createdKey = this.key;
    if (props.alias) new KmsAlias(this, 'alias', { name: props.alias, targetKeyId: this.key.keyId });
    this.arn = this.key.arn;
  }

  get dependables(): TerraformResource[] {
    return [this.key];
  }
}
