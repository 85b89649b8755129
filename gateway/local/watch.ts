import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { serviceEndpoint } from '../aws/endpoints.js';
import type { ReceivedNotification } from '../../shared/notification/index.js';

/** One line per arriving notification: where the message is and what it is, as a consumer of the topic sees it. */
export function summarize(n: ReceivedNotification): string {
  const a = n.receipt.action;
  const subject = n.mail.commonHeaders.subject;
  return [
    `✉  s3://${a.bucketName}/${a.objectKey}`,
    `   from ${n.mail.source || '<>'} to ${n.receipt.recipients.join(', ')}${subject !== undefined ? `, subject ${JSON.stringify(subject)}` : ''}`,
    `   ${n.mail.headers.length} headers${n.mail.headersTruncated ? ' (truncated)' : ''}, spam ${n.receipt.spamVerdict.status}, virus ${n.receipt.virusVerdict.status}, stored and notified in ${n.receipt.processingTimeMillis} ms`,
  ].join('\n');
}

/** Long-polls the watch queue until `signal` aborts, calling `print` per notification. */
export async function watchNotifications(region: string, queueUrl: string, print: (line: string) => void, signal: AbortSignal): Promise<void> {
  const sqs = new SQSClient({ region, ...(process.env.AWS_ACCESS_KEY_ID ? {} : { credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } }), ...serviceEndpoint('sqs') });
  try {
    while (!signal.aborted) {
      let messages;
      try {
        messages = (await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 2 }), { abortSignal: signal })).Messages ?? [];
      } catch (err) {
        if (signal.aborted) return;
        print(`(could not read notifications: ${(err as Error).message}; retrying)`);
        await new Promise((r) => setTimeout(r, 2_000));
        continue;
      }
      for (const m of messages) {
        try {
          const env = JSON.parse(m.Body ?? '{}') as { Message?: string; Subject?: string };
          print(summarize(JSON.parse(env.Message ?? '{}') as ReceivedNotification));
        } catch {
          print('(a notification arrived that is not JSON)');
        }
      }
      if (messages.length > 0) {
        await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) })).catch(() => undefined);
      }
    }
  } finally {
    sqs.destroy();
  }
}
