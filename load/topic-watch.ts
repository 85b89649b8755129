/**
 * `--watch-topic`: a temporary SQS queue per region, subscribed to the rules' topics for the run, read until every
 * copy was announced (or the wait is over), then unsubscribed and deleted — also after an error or Ctrl-C.
 *
 * The queue sees every notification on the topics while it exists, the run's and any other mail's: the others are
 * counted as foreign and deleted unread beyond the fields that tell them apart (never printed or kept).
 */
import { performance } from 'node:perf_hooks';
import { SubscribeCommand, UnsubscribeCommand } from '@aws-sdk/client-sns';
import { CreateQueueCommand, DeleteMessageBatchCommand, DeleteQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { snsClient } from '../gateway/aws/clients.js';
import { defaultRegion, serviceEndpoint } from '../gateway/aws/endpoints.js';
import type { ReceivedNotification } from '../shared/notification/index.js';
import { parseArn } from '../shared/ses/arn.js';

export interface WatchedQueue {
  region: string;
  queueUrl: string;
  queueArn?: string;
  subscriptions: string[];
}

export interface Leftover {
  what: string;
  /** The command that removes it by hand. */
  fix: string;
  error: string;
}

const REQUEST_TIMEOUT_MS = 15_000;

/** Already removed (by someone else): nothing left behind. */
const gone = (err: unknown) => /NonExistentQueue|QueueDoesNotExist|NotFound/.test((err as Error).name ?? '');

function sqsClient(region: string): SQSClient {
  return new SQSClient({ region, ...serviceEndpoint('sqs'), requestHandler: { requestTimeout: REQUEST_TIMEOUT_MS, connectionTimeout: 10_000 }, maxAttempts: 3 });
}

/** Only SNS, and only for these topics, may send to the queue (what a real account needs for the subscription to deliver). */
function queuePolicy(queueArn: string, topics: string[]): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Sid: 'MailroomLoadTopics', Effect: 'Allow', Principal: { Service: 'sns.amazonaws.com' }, Action: 'sqs:SendMessage', Resource: queueArn, Condition: { ArnEquals: { 'aws:SourceArn': topics } } }],
  });
}

export class TopicWatcher {
  readonly queues: WatchedQueue[] = [];
  private readonly sqs = new Map<string, SQSClient>();
  private readonly polling = new AbortController();
  private readonly loops: Promise<void>[] = [];
  received = 0;
  receiveErrors = 0;
  lastReceiveError: string | undefined;

  constructor(
    private readonly runId: string,
    private readonly topics: string[],
    private readonly onNotification: (n: ReceivedNotification, at: number) => void,
  ) {}

  private client(region: string): SQSClient {
    let c = this.sqs.get(region);
    if (!c) this.sqs.set(region, (c = sqsClient(region)));
    return c;
  }

  /** Creates the queues and subscribes them. Whatever was created is in `queues` even when this throws. */
  async start(): Promise<void> {
    const byRegion = new Map<string, string[]>();
    for (const t of this.topics) {
      const region = parseArn(t)?.region || defaultRegion() || 'us-east-1';
      byRegion.set(region, [...(byRegion.get(region) ?? []), t]);
    }
    for (const [region, topics] of byRegion) {
      const sqs = this.client(region);
      const created = await sqs.send(new CreateQueueCommand({ QueueName: `mailroom-load-${this.runId}`, Attributes: { MessageRetentionPeriod: '3600' }, tags: { 'mailroom:load-run': this.runId } }));
      const q: WatchedQueue = { region, queueUrl: created.QueueUrl!, subscriptions: [] };
      this.queues.push(q);
      const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: q.queueUrl, AttributeNames: ['QueueArn'] }));
      q.queueArn = attrs.Attributes?.QueueArn;
      if (!q.queueArn) throw new Error(`SQS did not return the ARN of ${q.queueUrl}`);
      await sqs.send(new SetQueueAttributesCommand({ QueueUrl: q.queueUrl, Attributes: { Policy: queuePolicy(q.queueArn, topics) } }));
      const sns = snsClient({ region, requestTimeoutMs: REQUEST_TIMEOUT_MS });
      try {
        for (const topicArn of topics) {
          const sub = await sns.send(new SubscribeCommand({ TopicArn: topicArn, Protocol: 'sqs', Endpoint: q.queueArn, ReturnSubscriptionArn: true }));
          if (sub.SubscriptionArn) q.subscriptions.push(sub.SubscriptionArn);
        }
      } finally {
        sns.destroy();
      }
    }
    for (const q of this.queues) for (let i = 0; i < 3; i++) this.loops.push(this.poll(q));
  }

  private async poll(q: WatchedQueue): Promise<void> {
    const sqs = this.client(q.region);
    const signal = this.polling.signal;
    while (!signal.aborted) {
      try {
        const r = await sqs.send(new ReceiveMessageCommand({ QueueUrl: q.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }), { abortSignal: signal });
        const at = performance.now();
        const msgs = r.Messages ?? [];
        for (const m of msgs) {
          this.received++;
          try {
            const envelope = JSON.parse(m.Body ?? '') as { Message?: string };
            const n = JSON.parse(envelope.Message ?? '') as ReceivedNotification;
            if (n?.notificationType === 'Received') this.onNotification(n, at);
          } catch {
            // not an SNS notification of SES's kind: nothing of ours
          }
        }
        if (msgs.length > 0) await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: q.queueUrl, Entries: msgs.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
      } catch (err) {
        if (signal.aborted) break;
        this.receiveErrors++;
        this.lastReceiveError = `${(err as Error).name}: ${(err as Error).message}`;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Unsubscribes and deletes every queue; what could not be removed is returned with the command that removes it. */
  async stop(): Promise<Leftover[]> {
    this.polling.abort();
    await Promise.all(this.loops);
    const left: Leftover[] = [];
    for (const q of this.queues) {
      const sns = snsClient({ region: q.region, requestTimeoutMs: REQUEST_TIMEOUT_MS });
      try {
        for (const s of q.subscriptions) {
          try {
            await sns.send(new UnsubscribeCommand({ SubscriptionArn: s }));
          } catch (err) {
            if (gone(err)) continue;
            left.push({ what: `subscription ${s}`, fix: `aws sns unsubscribe --region ${q.region} --subscription-arn ${s}`, error: (err as Error).message });
          }
        }
      } finally {
        sns.destroy();
      }
      try {
        await this.client(q.region).send(new DeleteQueueCommand({ QueueUrl: q.queueUrl }));
      } catch (err) {
        if (gone(err)) continue;
        left.push({ what: `queue ${q.queueUrl}`, fix: `aws sqs delete-queue --region ${q.region} --queue-url ${q.queueUrl}`, error: (err as Error).message });
      }
    }
    for (const c of this.sqs.values()) c.destroy();
    return left;
  }
}
