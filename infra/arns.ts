import { parseArn } from '../shared/ses/arn.js';

/** The partition of a region, for ARNs built from names. */
export function partitionOf(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  if (region.startsWith('us-iso-')) return 'aws-iso';
  if (region.startsWith('us-isob-')) return 'aws-iso-b';
  return 'aws';
}

export function bucketArn(partition: string, bucket: string): string {
  return `arn:${partition}:s3:::${bucket}`;
}

/** `arn:aws:s3:::bucket/<prefix>*` — SES adds "/" after a prefix without one, so `<prefix>*` covers every key. */
export function objectArnPattern(partition: string, bucket: string, prefix: string): string {
  return `${bucketArn(partition, bucket)}/${prefix}*`;
}

/** The last part of an ARN's resource (`role/name` → `name`, a topic ARN → its name). */
export function arnResourceName(arn: string): string {
  const p = parseArn(arn);
  const res = p?.resource ?? arn;
  return res.slice(res.lastIndexOf('/') + 1);
}

/** A Terraform-safe construct id fragment: `mailroom-inbound.mail` → `mailroom-inbound_mail`. */
export function idOf(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, '_');
}
