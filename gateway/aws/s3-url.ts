/** `s3://bucket/key` → bucket and key; the key may contain any character, including further slashes. */
export function parseS3Url(url: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  if (!m) throw new Error(`"${url}" is not an S3 URL; write it as s3://<bucket>/<key>`);
  return { bucket: m[1]!, key: m[2]! };
}
