import { UnrecoverableError, type Job } from 'bullmq';
import { HEADER_READ_LIMIT } from '../../shared/notification/index.js';
import { HeaderInjectionError } from '../../shared/ses/header-block.js';
import { objectKey } from '../../shared/ses/object-key.js';
import { putMessage, type UploadTuning } from '../../shared/store/put-message.js';
import type { DeliveryJobData } from '../queue/jobs.js';
import { SpoolFormatError } from '../spool/format.js';
import { SpoolMissingError, type Spool, type SpooledMessage } from '../spool/spool.js';
import type { DeliveryMetrics } from '../observability/metrics.js';
import type { AwsClients } from './aws.js';
import { notificationFor, publishNotification } from './notify.js';
import { headerBlockFor, storedMessageStream } from './stored-message.js';

export interface DeliverDeps {
  spool: Spool;
  aws: AwsClients;
  tuning: UploadTuning;
  metrics?: DeliveryMetrics;
}

export interface DeliveryResult {
  bucket: string;
  key: string;
  storedBytes: number;
  multipart: boolean;
  encrypted: boolean;
  snsMessageId?: string;
}

/**
 * One rule's S3 action for one message: store (header block + DATA, encrypted when the rule has a key) at the SES key,
 * then notify the rule's topic. Idempotent: a re-run writes the same key with the same plaintext (with KMS the
 * ciphertext differs — a fresh data key and IV per write, as SES itself would) and publishes again (at-least-once).
 *
 * Errors from S3, KMS and SNS are thrown as they are, for the queue's retries with backoff. What no retry can fix —
 * the spool file is gone or damaged, or the envelope cannot go into a header — is UnrecoverableError: straight to
 * the failed set, where an operator sees it.
 */
export async function deliver(job: Job<DeliveryJobData>, deps: DeliverDeps, abortSignal?: AbortSignal): Promise<DeliveryResult> {
  const { envelope, rule } = job.data;
  const { messageId } = envelope;
  let msg: SpooledMessage;
  let headerBlock: Buffer;
  try {
    msg = await deps.spool.open(deps.spool.fileIdOf(job.data.spoolFile), job.data.spoolAt ?? 0, messageId);
    headerBlock = headerBlockFor(envelope, rule);
  } catch (err) {
    if (err instanceof SpoolMissingError || err instanceof SpoolFormatError || err instanceof HeaderInjectionError) throw new UnrecoverableError(err.message);
    throw err;
  }
  const action = rule.s3Action;
  const key = objectKey(action.objectKeyPrefix, messageId);
  const length = headerBlock.length + msg.dataLength;
  const result: DeliveryResult = { bucket: action.bucketName, key, storedBytes: 0, multipart: false, encrypted: !!action.kmsKeyArn };

  if (!job.data.stored) {
    const body = storedMessageStream(headerBlock, deps.spool.dataStream(msg));
    const started = process.hrtime.bigint();
    try {
      const put = await putMessage({
        s3: deps.aws.s3(action.bucketRegion ?? envelope.region),
        bucket: action.bucketName,
        key,
        body,
        length,
        ...(action.kmsKeyArn
          ? { encryption: { kms: deps.aws.kms(action.kmsKeyArn, envelope.region), context: { messageId, ruleName: rule.name, accountId: envelope.accountId, kmsKeyArn: action.kmsKeyArn } } }
          : {}),
        tuning: deps.tuning,
        ...(abortSignal ? { abortSignal } : {}),
      });
      result.storedBytes = put.storedBytes;
      result.multipart = put.multipart;
      deps.metrics?.uploaded(put.storedBytes, Number(process.hrtime.bigint() - started) / 1e9);
    } finally {
      body.destroy();
    }
  }

  const topicArn = action.topicArn;
  if (topicArn) {
    try {
      const notification = await notificationFor(envelope, { ...rule, s3Action: { ...action, topicArn } }, headerBlock, deps.spool.dataStream(msg, HEADER_READ_LIMIT));
      const id = await publishNotification(deps.aws.sns(topicArn, envelope.region), topicArn, notification, abortSignal);
      if (id) result.snsMessageId = id;
    } catch (err) {
      // The object is stored; let the retry only publish instead of uploading up to 40 MB again.
      if (!job.data.stored) await job.updateData({ ...job.data, stored: true }).catch(() => undefined);
      throw err;
    }
  }
  return result;
}
