/** What every resource SES delivers through has in common: the account SES acts for, a mode, what a rule waits for. */
import type { TerraformResource } from './framework.js';
import { uniq, type PolicyStatement } from './policy.js';

export const SES_PRINCIPAL = 'ses.amazonaws.com';

/** Who SES acts for. */
export interface AccountContext {
  accountId: string;
  region: string;
  partition: string;
}

/** `create`: the stack creates it and owns its policy; `policy`: it exists, the stack owns its whole policy; `reference`: the user applies the statements. */
export type DeliveryMode = 'create' | 'policy' | 'reference';

/** A resource SES delivers through. Grants are added by the actions' `bind()`; policies render at synth. */
export interface DeliveryResource {
  readonly mode: DeliveryMode;
  /** What a rule must depend on so SES's setup write at rule creation succeeds. Complete once every rule is bound. */
  readonly dependables: TerraformResource[];
  /** Statements the user must apply by hand (reference mode). Complete once every rule is bound. */
  manualStatements(): ManualStatements[];
}

export interface ManualStatements {
  /** e.g. `bucket policy of mailroom-inbound-mail`. */
  target: string;
  statements: PolicyStatement[];
}

/** The confused-deputy conditions of a resource-policy statement for SES: this account, these rules. */
export function sesSourceCondition(ctx: AccountContext, ruleArns: string[]): Record<string, string | string[]> {
  return { 'AWS:SourceAccount': ctx.accountId, 'AWS:SourceArn': uniq(ruleArns) };
}
