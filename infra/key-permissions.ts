/**
 * The message keys an identity policy (an S3 action's role, the gateway writer) is granted, per rule. A key adds
 * itself (`DeliveryKey.grantUse`), so the policy never asks which kind of key it holds.
 */
import type { AccountContext } from './delivery.js';
import type { ConditionBlock } from './policy.js';

export class KeyPermissions {
  /** Customer keys by ARN (a created key's ARN is a token), each with the rules that use it, in first-use order. */
  readonly customerKeys = new Map<string, string[]>();
  /** Rules whose messages are encrypted under this account's AWS-managed `alias/aws/ses`. */
  readonly awsManagedSesKeyRules: string[] = [];

  addCustomerKey(arn: string, ruleName: string): void {
    this.customerKeys.set(arn, [...(this.customerKeys.get(arn) ?? []), ruleName]);
  }

  addAwsManagedSesKey(ruleName: string): void {
    this.awsManagedSesKeyRules.push(ruleName);
  }
}

/**
 * IAM matches KMS permissions against key ARNs, never alias ARNs: an identity policy selects the AWS-managed key by
 * its alias, as any key of the account carrying `alias/aws/ses`.
 */
export function awsManagedSesKeySelector(ctx: AccountContext): { Resource: string; Condition: ConditionBlock } {
  return {
    Resource: `arn:${ctx.partition}:kms:${ctx.region}:${ctx.accountId}:key/*`,
    Condition: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/aws/ses' } },
  };
}
