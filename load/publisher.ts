/**
 * Notifications of `load upload` go out as the workers send theirs: SNS PublishBatch through the workers' own
 * publishNotifications, up to ten a call. A worker publishes a job's messages together once they are stored; here,
 * what finished storing in the same event-loop turn goes in one call.
 */
import type { SNSClient } from '@aws-sdk/client-sns';
import { publishNotifications, type PublishOutcome } from '../gateway/worker/notify.js';
import type { ReceivedNotification } from '../shared/notification/index.js';

interface Waiting {
  key: string;
  notification: ReceivedNotification;
  done: (o: PublishOutcome) => void;
}

const BATCH = 10;

export class Publisher {
  private batch: Waiting[] = [];
  private scheduled = false;

  constructor(
    private readonly sns: SNSClient,
    private readonly topicArn: string,
  ) {}

  publish(key: string, notification: ReceivedNotification): Promise<PublishOutcome> {
    return new Promise((done) => {
      this.batch.push({ key, notification, done });
      if (this.batch.length >= BATCH) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const items = this.batch;
    this.batch = [];
    if (items.length === 0) return;
    publishNotifications(this.sns, this.topicArn, items.map((i) => ({ key: i.key, notification: i.notification }))).then(
      (out) => {
        for (const i of items) i.done(out.get(i.key) ?? { ok: false, error: new Error('no publish outcome for this message') });
      },
      (err: unknown) => {
        for (const i of items) i.done({ ok: false, error: err instanceof Error ? err : new Error(String(err)) });
      },
    );
  }
}
