/** Turns AWS SDK failures into one line that says what to fix; undefined when we have nothing better to say. */
export function explainAwsError(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  switch (err.name) {
    case 'CredentialsProviderError':
      return 'no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an instance/task role is available';
    case 'NoSuchBucket':
      return `${err.message} (check the bucket name and AWS_REGION)`;
    case 'AccessDenied':
    case 'AccessDeniedException':
      return `access denied: ${err.message}`;
    case 'ECONNREFUSED':
      return `cannot connect: ${err.message} (is AWS_ENDPOINT_URL right?)`;
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND') return `cannot reach the AWS endpoint (${code}): check AWS_ENDPOINT_URL / AWS_REGION and the network`;
  return undefined;
}
