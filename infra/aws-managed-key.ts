import type { DeliveryKey } from './delivery-key.js';
import type { DeliveryMode, ManualStatements } from './delivery.js';
import type { TerraformResource } from './framework.js';
import type { KeyPermissions } from './key-permissions.js';

/**
 * This account's AWS-managed `alias/aws/ses`: AWS owns its key policy and SES needs no statement there
 * (docs/ses-format.md#the-aws-managed-key), so its resource grants are no-ops and a rule has nothing to wait for.
 * A principal's identity policy still names it, by alias (`awsManagedSesKeySelector`).
 */
export class AwsManagedSesKey implements DeliveryKey {
  readonly mode: DeliveryMode = 'reference';
  readonly createdKey = undefined;
  readonly dependables: TerraformResource[] = [];

  /** @param arn the alias ARN as the rule names it (`arn:aws:kms:<region>:<account>:alias/aws/ses`). */
  constructor(readonly arn: string) {}

  grantSesEncrypt(): void {}

  grantUse(permissions: KeyPermissions, ruleName: string): void {
    permissions.addAwsManagedSesKey(ruleName);
  }

  manualStatements(): ManualStatements[] {
    return [];
  }
}
