import type { AwsProviderConfig } from './aws.js';

/** Every AWS service the stack calls (the provider needs sts to sign in, even when told to skip checks). */
export const STACK_SERVICES = ['iam', 'kms', 'route53', 's3', 'ses', 'sns', 'sts'] as const;

/**
 * Provider settings for an AWS API emulator (moto_server, LocalStack), what `tflocal` does: one endpoint for every
 * service the stack uses, path-style S3 (no `<bucket>.localhost` DNS), and no calls to the metadata service, STS
 * or the account-id lookup.
 */
export function localEndpointSettings(endpointUrl: string): Partial<AwsProviderConfig> {
  return {
    endpoints: [Object.fromEntries(STACK_SERVICES.map((s) => [s, endpointUrl]))],
    s3UsePathStyle: true,
    skipCredentialsValidation: true,
    skipMetadataApiCheck: 'true',
    skipRequestingAccountId: true,
    skipRegionValidation: true,
  };
}
