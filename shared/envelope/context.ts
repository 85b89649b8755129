import { canonicalMatdesc } from './metadata.js';

/** What SES binds each message's data key to (docs/ses-format.md#encryption-context): identical in GenerateDataKey and in x-amz-matdesc. */
export interface SesEncryptionContext {
  messageId: string;
  /** Receipt rule name, not its ARN. */
  ruleName: string;
  /** 12-digit account id that owns the rule set. */
  accountId: string;
  /** The rule's KmsKeyArn exactly as configured; an alias ARN stays an alias ARN. */
  kmsKeyArn: string;
}

export function sesEncryptionContext(c: SesEncryptionContext): Record<string, string> {
  return {
    'aws:ses:message-id': c.messageId,
    'aws:ses:rule-name': c.ruleName,
    'aws:ses:source-account': c.accountId,
    kms_cmk_id: c.kmsKeyArn,
  };
}

export function sesMatdesc(c: SesEncryptionContext): string {
  return canonicalMatdesc(sesEncryptionContext(c));
}
