/**
 * Where each AWS client points, from the same environment conventions for every mailroom command:
 * `AWS_ENDPOINT_URL_<SERVICE>` over `AWS_ENDPOINT_URL`, region from `AWS_REGION` / `AWS_DEFAULT_REGION`.
 * Credentials always come from the SDK's standard provider chain.
 */
export type AwsService = 's3' | 'kms' | 'sns' | 'sqs';

export interface ServiceEndpoint {
  endpoint?: string;
  /** S3 emulators and proxies rarely resolve virtual-hosted bucket names, so any custom endpoint means path style. */
  forcePathStyle?: boolean;
}

export function serviceEndpoint(service: AwsService, env: NodeJS.ProcessEnv = process.env): ServiceEndpoint {
  const endpoint = env[`AWS_ENDPOINT_URL_${service.toUpperCase()}`] || env.AWS_ENDPOINT_URL || undefined;
  if (!endpoint) return {};
  return service === 's3' ? { endpoint, forcePathStyle: true } : { endpoint };
}

export function defaultRegion(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined;
}
