import type { Readable } from 'node:stream';
import { HEADER_READ_LIMIT, type ReceivedNotification } from '../../shared/notification/index.js';
import { objectKey } from '../../shared/ses/object-key.js';
import type { MessageEnvelope, SpooledRule } from '../spool/format.js';
import { putMessage, type PutMessageResult, type UploadTuning } from '../store/put-message.js';
import type { MessageVerdicts } from '../verdicts/verdicts.js';
import type { AwsClients } from './aws.js';
import { notificationFor } from './notify.js';
import { headerBlockFor, storedMessageStream } from './stored-message.js';

/** A message's DATA: in memory, or read from where it is kept (a spool file) as often as needed. */
export type CopyData = Buffer | { length: number; open(limit?: number): Readable };

/**
 * One rule's copy of one message, as SES's S3 action stores and announces it: the key, the header block with the
 * message's verdicts, then the DATA; stored in one PUT or in parts, encrypted under the rule's KMS key with SES's
 * encryption context; the `Received` notification built from what was stored. The delivery worker and
 * `mailroom load upload` both go through here, so they cannot store a message differently.
 */
export class MessageCopy {
  readonly key: string;
  readonly headerBlock: Buffer;
  /** Header block + DATA as one buffer, for a message held in memory: one signed PUT, and the notification's head. */
  private readonly inMemory: Buffer | undefined;

  constructor(
    readonly envelope: MessageEnvelope,
    /** The rule, with the recipients it matched for this message. */
    readonly rule: SpooledRule,
    private readonly data: CopyData,
    private readonly verdicts?: MessageVerdicts,
  ) {
    this.key = objectKey(rule.s3Action.objectKeyPrefix, envelope.messageId);
    this.headerBlock = headerBlockFor(envelope, rule, verdicts);
    this.inMemory = Buffer.isBuffer(data) ? Buffer.concat([this.headerBlock, data]) : undefined;
  }

  /** Stores the copy at its key in the rule's bucket. */
  async store(aws: AwsClients, tuning: UploadTuning, abortSignal?: AbortSignal): Promise<PutMessageResult> {
    const { envelope, rule } = this;
    const action = rule.s3Action;
    const body = this.inMemory ?? storedMessageStream(this.headerBlock, (this.data as Exclude<CopyData, Buffer>).open());
    try {
      return await putMessage({
        s3: aws.s3(action.bucketRegion ?? envelope.region),
        bucket: action.bucketName,
        key: this.key,
        body,
        length: this.headerBlock.length + (Buffer.isBuffer(this.data) ? this.data.length : this.data.length),
        ...(action.kmsKeyArn
          ? { encryption: { kms: aws.kms(action.kmsKeyArn, envelope.region), context: { messageId: envelope.messageId, ruleName: rule.name, accountId: envelope.accountId, kmsKeyArn: action.kmsKeyArn } } }
          : {}),
        tuning,
        ...(abortSignal ? { abortSignal } : {}),
      });
    } finally {
      if (!Buffer.isBuffer(body)) body.destroy();
    }
  }

  /** The notification SES publishes to the rule's topic once the copy is stored. */
  notification(topicArn: string, now: number = Date.now()): Promise<ReceivedNotification> {
    const head = this.inMemory ? { stored: this.inMemory } : (this.data as Exclude<CopyData, Buffer>).open(HEADER_READ_LIMIT);
    return notificationFor(this.envelope, { ...this.rule, s3Action: { ...this.rule.s3Action, topicArn } }, this.headerBlock, head, now, this.verdicts);
  }
}
