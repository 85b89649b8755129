import type { S3Client } from '@aws-sdk/client-s3';
import { objectExists } from '../aws/s3-head-object.js';

/**
 * Whether an object is in its bucket: one HEAD of its key. Replay asks it for each rule's key of a message that
 * neither the checkpoint nor the replay spool knows, so that what an earlier run (or another spool) stored is not
 * stored — and announced — again.
 *
 * HEAD needs s3:GetObject on the key, and S3 answers 403 rather than 404 for a missing key to a caller without
 * s3:ListBucket. A writer with PutObject alone (what SES itself is granted) cannot tell, so a refused HEAD says
 * "unknown": the message is stored (the same key again: nothing is lost, a notification may repeat), and the bucket
 * is not asked again in this run.
 */
export type Presence = 'present' | 'absent' | 'unknown';

export class BucketCheck {
  private readonly refused = new Map<string, string>();

  constructor(
    private readonly s3For: (region: string) => S3Client,
    /** Told once per bucket that refuses HEAD, with why. */
    private readonly onRefused: (bucket: string, why: string) => void = () => undefined,
  ) {}

  async presence(bucket: string, region: string, key: string, abortSignal?: AbortSignal): Promise<Presence> {
    if (this.refused.has(bucket)) return 'unknown';
    try {
      return (await objectExists(this.s3For(region), bucket, key, abortSignal)) ? 'present' : 'absent';
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 403) {
        if (!this.refused.has(bucket)) {
          const why = `HEAD of s3://${bucket}/${key} was refused (403 ${(err as Error).name})`;
          this.refused.set(bucket, why);
          this.onRefused(bucket, why);
        }
        return 'unknown';
      }
      throw err;
    }
  }
}
