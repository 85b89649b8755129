/**
 * One message of `mailroom load upload`, through the code the delivery workers run for a stored copy (MessageCopy:
 * the SES header block, the envelope encryption under the rule's KMS key, one signed PUT for a message in memory or a
 * streamed PUT or multipart upload for a bigger one, the notification) and PublishBatch — with the workers' AWS
 * clients (AwsClients: the gateway's timeouts, retries and checksum setting). Nothing of the format is written here;
 * this only decides what goes in.
 */
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { KMSServiceException } from '@aws-sdk/client-kms';
import type { AwsClients } from '../gateway/worker/aws.js';
import { MessageCopy } from '../gateway/worker/message-copy.js';
import type { MessageEnvelope, SpooledRule } from '../gateway/spool/format.js';
import { KmsError } from '../gateway/aws/kms-data-key.js';
import type { ReceiptRule } from '../shared/config/index.js';
import { newMessageId } from '../shared/ses/message-id.js';
import type { UploadTuning } from '../gateway/store/put-message.js';
import type { Job, Lane } from './driver.js';
import { classifyAwsError, interrupted, LoadTimeoutError } from './errors.js';
import type { LoadMessage, MessageFactory } from './messages.js';
import type { Publisher } from './publisher.js';
import type { Recorder } from './recorder.js';
import { SMALL_MESSAGE_BYTES } from '../gateway/spool/writer.js';

/**
 * The gateway keeps a small message in memory from SMTP to S3 and streams bigger ones from its spool file
 * (docs/gateway.md#spool): the same split here sends each size down the same code path.
 */
const IN_MEMORY_BYTES = SMALL_MESSAGE_BYTES;

export interface UploadLaneDeps {
  rule: ReceiptRule;
  accountId: string;
  region: string;
  /** The recipients written in the header block and the notification (as if these had been RCPT TO). */
  recipients: string[];
  from: string;
  aws: AwsClients;
  tuning: UploadTuning;
  messages: MessageFactory;
  recorder: Recorder;
  publisher: Publisher | undefined;
  timeoutMs: number;
  stats: { stored: number; announced: number };
  /** Called when a message starts (its hand-over), for delivery tracking. */
  onStart?(token: string, messageId: string, at: number): void;
  onFailed?(token: string): void;
}

const byHost = hostname();

const isKmsError = (err: unknown) => err instanceof KmsError || err instanceof KMSServiceException;

export class UploadLane implements Lane {
  constructor(private readonly d: UploadLaneDeps) {}

  async run(job: Job, signal: AbortSignal): Promise<void> {
    const { recorder, rule } = this.d;
    const action = rule.s3Action;
    const msg = this.d.messages.message(job.seq);
    const id = newMessageId();
    const envelope: MessageEnvelope = { messageId: id, receivedAt: new Date().toISOString(), mailFrom: this.d.from, helo: 'mailroom-load.invalid', clientIp: '127.0.0.1', tls: false, byHost, accountId: this.d.accountId, region: this.d.region };
    const rule1: SpooledRule = { name: rule.name, recipients: this.d.recipients, scanEnabled: rule.scanEnabled, s3Action: action };
    const start = performance.now();
    recorder.count('sent', start);
    recorder.bytesSent += msg.bytes;
    this.d.onStart?.(msg.token, id, start);

    const ac = new AbortController();
    let stage = 'store';
    const timer = setTimeout(() => ac.abort(new LoadTimeoutError(stage, this.d.timeoutMs)), this.d.timeoutMs);
    const onAbort = () => ac.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const data = msg.data && msg.bytes <= IN_MEMORY_BYTES ? msg.data : { length: msg.bytes, open: () => dataStream(msg) };
      const copy = new MessageCopy(envelope, rule1, data);
      await abortable(copy.store(this.d.aws, this.d.tuning, ac.signal), ac.signal);
      const stored = performance.now();
      this.d.stats.stored++;
      recorder.latencyUs('store', (stored - start) * 1000, stored);
      if (action.topicArn && this.d.publisher) {
        stage = 'publish';
        const notification = await copy.notification(action.topicArn);
        const out = await abortable(this.d.publisher.publish(id, notification), ac.signal);
        if (!out.ok) throw out.error;
        this.d.stats.announced++;
      }
      const done = performance.now();
      recorder.count('accepted', done);
      recorder.latencyUs('accept', (done - start) * 1000, done);
      if (job.due !== undefined) recorder.latencyUs('response', (done - job.due) * 1000, done);
    } catch (err) {
      this.d.onFailed?.(msg.token);
      if (interrupted(ac.signal)) recorder.count('interrupted');
      else {
        recorder.count('failed');
        const e = ac.signal.aborted ? ac.signal.reason : err;
        recorder.error(classifyAwsError(e, stage === 'publish' ? 'sns' : isKmsError(err) ? 'kms' : 's3', stage));
      }
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  async close(): Promise<void> {}
}

function dataStream(m: LoadMessage): Readable {
  return m.stream ? m.stream() : Readable.from([m.data!]);
}

/** Rejects with the signal's reason as soon as it aborts, whatever `p` does. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (e) => (signal.removeEventListener('abort', onAbort), reject(e)),
    );
  });
}
