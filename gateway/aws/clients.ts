import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { defaultRegion, serviceEndpoint } from './endpoints.js';

export interface ClientOptions {
  region?: string;
  /** Per-request ceiling; SDK default is no timeout, which can hang a worker forever. */
  requestTimeoutMs?: number;
  maxAttempts?: number;
  /** S3 only: 'WHEN_REQUIRED' for S3-compatible stores that reject the SDK's default CRC32 checksums. */
  checksums?: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
}

function region(opts: ClientOptions): string {
  const r = opts.region ?? defaultRegion();
  if (!r) throw new Error('no AWS region: set AWS_REGION (e.g. export AWS_REGION=us-east-1)');
  return r;
}

function requestHandler(opts: ClientOptions) {
  return { requestTimeout: opts.requestTimeoutMs ?? 60_000, connectionTimeout: 10_000 };
}

export function s3Client(opts: ClientOptions = {}): S3Client {
  const cfg: S3ClientConfig = {
    region: region(opts),
    ...serviceEndpoint('s3'),
    requestHandler: requestHandler(opts),
    maxAttempts: opts.maxAttempts ?? 3,
  };
  if (opts.checksums) {
    cfg.requestChecksumCalculation = opts.checksums;
    cfg.responseChecksumValidation = opts.checksums;
  }
  return new S3Client(cfg);
}

export function kmsClient(opts: ClientOptions = {}): KMSClient {
  return new KMSClient({ region: region(opts), ...serviceEndpoint('kms'), requestHandler: requestHandler(opts), maxAttempts: opts.maxAttempts ?? 3 });
}

export function snsClient(opts: ClientOptions = {}): SNSClient {
  return new SNSClient({ region: region(opts), ...serviceEndpoint('sns'), requestHandler: requestHandler(opts), maxAttempts: opts.maxAttempts ?? 3 });
}
