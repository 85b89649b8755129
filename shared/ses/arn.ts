/** ARN shapes SES receiving cares about, parsed strictly so errors can name what is wrong. */

export interface ParsedArn {
  partition: string;
  service: string;
  region: string;
  account: string;
  resource: string;
}

const ARN_RE = /^arn:(aws[a-z-]*):([a-z0-9-]+):([a-z0-9-]*):(\d{12})?:(.+)$/;

export function parseArn(arn: string): ParsedArn | undefined {
  const m = ARN_RE.exec(arn);
  if (!m) return undefined;
  return { partition: m[1]!, service: m[2]!, region: m[3]!, account: m[4] ?? '', resource: m[5]! };
}

export type KmsKeyRef =
  | { kind: 'key'; arn: ParsedArn; keyId: string }
  | { kind: 'aws-managed-ses'; arn: ParsedArn };

const KEY_ID_RE = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$/;

/**
 * SES accepts a full key ARN, or the AWS-managed `alias/aws/ses` as an alias ARN (docs/ses-format.md#the-aws-managed-key): any other alias could
 * resolve to a key in the *sender's* account, so it is refused.
 */
export function parseKmsKeyArn(value: string): KmsKeyRef | { error: string } {
  const arn = parseArn(value);
  if (!arn || arn.service !== 'kms') {
    if (/^alias\//.test(value)) return { error: 'an alias name, not a key ARN' };
    if (KEY_ID_RE.test(value)) return { error: 'a bare key id, not a key ARN' };
    return { error: 'not a KMS ARN' };
  }
  if (!arn.region || !arn.account) return { error: 'missing its region or account' };
  if (arn.resource === 'alias/aws/ses') return { kind: 'aws-managed-ses', arn };
  if (arn.resource.startsWith('alias/')) return { error: 'an alias ARN other than alias/aws/ses' };
  const m = /^key\/(.+)$/.exec(arn.resource);
  if (!m || !KEY_ID_RE.test(m[1]!)) return { error: 'not of the form key/<key-id>' };
  return { kind: 'key', arn, keyId: m[1]! };
}

export function isAwsManagedSesKey(kmsKeyArn: string): boolean {
  const ref = parseKmsKeyArn(kmsKeyArn);
  return 'kind' in ref && ref.kind === 'aws-managed-ses';
}

/** `AWS:SourceArn` of a receipt rule, built from names so a policy never depends on the rule resource. */
export function receiptRuleArn(p: { partition?: string; region: string; accountId: string; ruleSetName: string; ruleName: string }): string {
  return `${receiptRuleSetArn(p)}:receipt-rule/${p.ruleName}`;
}

export function receiptRuleSetArn(p: { partition?: string; region: string; accountId: string; ruleSetName: string }): string {
  return `arn:${p.partition ?? 'aws'}:ses:${p.region}:${p.accountId}:receipt-rule-set/${p.ruleSetName}`;
}
