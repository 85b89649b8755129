import { objectKey } from '../ses/object-key.js';
import { commonHeaders, destination } from './common-headers.js';
import { parseHeaderBlock } from './headers.js';
import { fitNotification } from './size.js';
import type { DmarcPolicy, ReceivedNotification, Receipt, VerdictStatus } from './types.js';

/** The SNS `Subject` SES publishes the notification with (docs/ses-format.md#publication). */
export const SNS_SUBJECT = 'Amazon SES Email Receipt Notification';

export interface ReceivedNotificationInput {
  /**
   * When the message was received. Used for both `mail.timestamp` and `receipt.timestamp`: they are equal in
   * every observed sample.
   */
  timestamp: Date;
  /** Whole milliseconds from receipt to the stored object (OBS: SNS Timestamp ≈ timestamp + this). */
  processingTimeMillis: number;
  /** Envelope MAIL FROM. */
  source: string;
  messageId: string;
  /** RCPT TO addresses the rule matched. */
  recipients: readonly string[];
  /**
   * The stored message's header block — SES block first, then the sender's headers — or any head of the stored
   * message containing it (bytes after the blank line are ignored). See readHeaderBlock.
   */
  headerBlock: Uint8Array | string;
  verdicts: { spam: VerdictStatus; virus: VerdictStatus; spf: VerdictStatus; dkim: VerdictStatus; dmarc: VerdictStatus };
  /**
   * The sender domain's DMARC policy, given when DMARC failed (DOC): written when `verdicts.dmarc` is FAIL, or GRAY
   * (a failure under `p=none`, docs/ses-format.md#verdicts), right after `dmarcVerdict` — its position is UNCONFIRMED
   * (docs/ses-format.md#notification-details); next to the verdict it qualifies is the reading least likely to surprise.
   */
  dmarcPolicy?: DmarcPolicy;
  action: { topicArn: string; bucketName: string; objectKeyPrefix?: string };
}

/**
 * The notification object, with keys inserted in the wire order of docs/ses-format.md#notification-document
 * (JSON.stringify keeps insertion order, so the object literals below *are* the format), bounded so that it always
 * fits SNS (size.ts).
 */
export function buildReceivedNotification(input: ReceivedNotificationInput): ReceivedNotification {
  const { processingTimeMillis: ms } = input;
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`processingTimeMillis must be a whole number ≥ 0, got ${ms}`);
  const timestamp = input.timestamp.toISOString();
  const parsed = parseHeaderBlock(input.headerBlock);
  const { verdicts, action } = input;
  const objectKeyPrefix = action.objectKeyPrefix ?? '';

  const receipt: Receipt = {
    timestamp,
    processingTimeMillis: ms,
    recipients: [...input.recipients],
    spamVerdict: { status: verdicts.spam },
    virusVerdict: { status: verdicts.virus },
    spfVerdict: { status: verdicts.spf },
    dkimVerdict: { status: verdicts.dkim },
    dmarcVerdict: { status: verdicts.dmarc },
    ...((verdicts.dmarc === 'FAIL' || verdicts.dmarc === 'GRAY') && input.dmarcPolicy ? { dmarcPolicy: input.dmarcPolicy } : {}),
    action: {
      type: 'S3',
      topicArn: action.topicArn,
      bucketName: action.bucketName,
      objectKeyPrefix,
      objectKey: objectKey(objectKeyPrefix, input.messageId),
    },
  };

  return fitNotification({
    notificationType: 'Received',
    mail: {
      timestamp,
      source: input.source,
      messageId: input.messageId,
      destination: destination(parsed.allHeaders),
      headersTruncated: parsed.headersTruncated,
      headers: parsed.headers,
      commonHeaders: commonHeaders(parsed.allHeaders),
    },
    receipt,
  });
}

/** Compact JSON, non-ASCII as raw UTF-8 (as in the 2024 sample; `\u` escaping is UNCONFIRMED, docs/ses-format.md#notification-details). */
export function serializeNotification(notification: ReceivedNotification): string {
  return JSON.stringify(notification);
}
