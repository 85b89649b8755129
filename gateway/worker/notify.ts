import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { buildReceivedNotification, readHeaderBlock, serializeNotification, SNS_SUBJECT, HEADER_READ_LIMIT, type ReceivedNotification } from '../../shared/notification/index.js';
import type { Readable } from 'node:stream';
import type { MessageEnvelope, SpooledRule } from '../spool/format.js';
import { storedMessageStream } from './stored-message.js';

/**
 * The notification for one rule's copy. Its header list comes from the head of the stored message (header block +
 * DATA), read through the shared parser with its read limit, so a 40 MB message costs at most that limit.
 *
 * Timestamps are the receipt time, so a re-run publishes the same document apart from processingTimeMillis.
 * Verdicts: spam/virus GRAY when the rule scans (nothing is scanned yet), else DISABLED (the value consumers know
 * from SES's non-scanning rules, spec §4.2); SPF/DKIM/DMARC GRAY — not computed, so not claimed.
 */
export async function notificationFor(
  envelope: MessageEnvelope,
  rule: SpooledRule & { s3Action: { topicArn: string } },
  headerBlock: Buffer,
  dataHead: Readable,
  now: number = Date.now(),
): Promise<ReceivedNotification> {
  const head = await readHeaderBlock(storedMessageStream(headerBlock, dataHead), HEADER_READ_LIMIT);
  const received = new Date(envelope.receivedAt);
  const scan = rule.scanEnabled ? 'GRAY' : 'DISABLED';
  return buildReceivedNotification({
    timestamp: received,
    processingTimeMillis: Math.max(0, now - received.getTime()),
    source: envelope.mailFrom,
    messageId: envelope.messageId,
    recipients: rule.recipients,
    headerBlock: head.block,
    verdicts: { spam: scan, virus: scan, spf: 'GRAY', dkim: 'GRAY', dmarc: 'GRAY' },
    action: { topicArn: rule.s3Action.topicArn, bucketName: rule.s3Action.bucketName, objectKeyPrefix: rule.s3Action.objectKeyPrefix },
  });
}

export async function publishNotification(sns: SNSClient, topicArn: string, notification: ReceivedNotification, abortSignal?: AbortSignal): Promise<string | undefined> {
  const out = await sns.send(new PublishCommand({ TopicArn: topicArn, Subject: SNS_SUBJECT, Message: serializeNotification(notification) }), abortSignal ? { abortSignal } : {});
  return out.MessageId;
}
