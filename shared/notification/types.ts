/**
 * The `Received` notification SES publishes to the S3 action's topic once the message is stored (docs/ses-format.md#notification-document).
 * Property order in these types is the wire order; build.ts is what actually guarantees it.
 */

import type { DmarcPolicy, VerdictStatus } from '../ses/verdicts.js';

export type { DmarcPolicy, VerdictStatus };

export interface Verdict {
  status: VerdictStatus;
}

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
