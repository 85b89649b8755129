import { KmsKeyPolicy } from './aws.js';
import { CustomerKey } from './customer-key.js';
import type { AccountContext } from './delivery.js';
import { Lazy, type Construct, type TerraformResource } from './framework.js';
import { policyJson } from './policy.js';

export interface ReferencedKeyProps {
  ctx: AccountContext;
  /** The full key ARN a rule or an `encryption` names. */
  arn: string;
  /** `policy`: the stack owns the whole key policy; `reference`: the SES statements are printed for the user. */
  mode: 'policy' | 'reference';
}

/** A customer key that exists outside the stack (`infra.kmsKeys`). */
export class ReferencedKey extends CustomerKey {
  readonly mode: 'policy' | 'reference';
  readonly arn: string;
  readonly createdKey = undefined;
  readonly keyPolicy?: KmsKeyPolicy;

  constructor(scope: Construct, id: string, props: ReferencedKeyProps) {
    super(scope, id, props.ctx);
    this.mode = props.mode;
    this.arn = props.arn;
    if (props.mode === 'policy') {
      this.keyPolicy = new KmsKeyPolicy(this, 'policy', { keyId: props.arn, policy: Lazy.stringValue({ produce: () => policyJson(this.policyStatements()) }) });
    }
  }

  get dependables(): TerraformResource[] {
    return this.keyPolicy ? [this.keyPolicy] : [];
  }
}
