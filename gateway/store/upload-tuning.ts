import { SES_MULTIPART } from '../../shared/ses/multipart.js';

/** How stored messages go up to S3. */
export interface UploadTuning {
  /** Messages at or above this size go up in parts; below it, one PUT. */
  multipartThresholdBytes: number;
  /** Part size (S3 minimum 5 MiB). Memory per upload ≈ partSize × queueSize. */
  partSizeBytes: number;
  /** Parts in flight per upload. */
  queueSize: number;
}

/** SES's own threshold and part size, so the gateway's ETags take the form SES's would. */
export const DEFAULT_UPLOAD_TUNING: UploadTuning = {
  multipartThresholdBytes: SES_MULTIPART.thresholdBytes,
  partSizeBytes: SES_MULTIPART.partSizeBytes,
  queueSize: 2,
};
