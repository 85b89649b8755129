/**
 * The `Received` notification SES publishes to the S3 action's topic once the message is stored (docs/ses-format.md#notification-document).
 * Property order in these types is the wire order; build.ts is what actually guarantees it.
 */

/**
 * `PASS | FAIL | GRAY | PROCESSING_FAILED` are AWS's verdict set; `DISABLED` (spam/virus when the rule does not
 * scan) comes from the community type definitions only (UNCONFIRMED, docs/ses-format.md#verdicts) but consumers already expect it.
 */
export type VerdictStatus = 'PASS' | 'FAIL' | 'GRAY' | 'PROCESSING_FAILED' | 'DISABLED';

export interface Verdict {
  status: VerdictStatus;
}

/** The sender domain's published DMARC policy; SES reports it only when DMARC fails. */
export type DmarcPolicy = 'none' | 'quarantine' | 'reject';

export interface MailHeader {
  /** As written, case kept. */
  name: string;
  /** Unfolded (headers.ts), otherwise raw: encoded-words are not decoded here. */
  value: string;
}

/** Only the fields present in the message appear (docs/ses-format.md#notification-document). */
export interface CommonHeaders {
  returnPath?: string;
  from?: string[];
  sender?: string[];
  replyTo?: string[];
  date?: string;
  to?: string[];
  cc?: string[];
  bcc?: string[];
  messageId?: string;
  subject?: string;
}

export interface ReceivedMail {
  timestamp: string;
  source: string;
  messageId: string;
  destination: string[];
  headersTruncated: boolean;
  headers: MailHeader[];
  commonHeaders: CommonHeaders;
}

export interface S3ActionReceipt {
  type: 'S3';
  topicArn: string;
  bucketName: string;
  /** Always present; `""` when the rule has no prefix (OBS 2016–2024, unlike the DG example). */
  objectKeyPrefix: string;
  objectKey: string;
}

export interface Receipt {
  timestamp: string;
  processingTimeMillis: number;
  recipients: string[];
  spamVerdict: Verdict;
  virusVerdict: Verdict;
  spfVerdict: Verdict;
  dkimVerdict: Verdict;
  dmarcVerdict: Verdict;
  dmarcPolicy?: DmarcPolicy;
  action: S3ActionReceipt;
}

export interface ReceivedNotification {
  notificationType: 'Received';
  mail: ReceivedMail;
  receipt: Receipt;
}
