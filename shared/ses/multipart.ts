/**
 * How SES's S3 action uploads big messages: in parts from 5 MB on (docs/ses-format.md#multipart-threshold-and-part-size;
 * the part size is not confirmed). The threshold and the part size are S3's minimum part, 5 MiB (the MB of S3 and of
 * the Java client SES writes through), so a message that SES would store with a multipart ETag
 * (`<md5-of-md5s>-<n>`) gets one from the gateway too.
 */
export const SES_MULTIPART = {
  thresholdBytes: 5 * 1024 * 1024,
  partSizeBytes: 5 * 1024 * 1024,
} as const;
