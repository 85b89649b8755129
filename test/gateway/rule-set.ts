/** A rule set for the unit tests of settings and routing: an address, a domain, a .subdomain requiring TLS, a disabled rule. */
import type { ReceivingConfigInput } from '../../shared/config/index.js';

export const base: ReceivingConfigInput = {
  region: 'us-east-1',
  accountId: '123456789012',
  ruleSetName: 'units',
  rules: [
    { name: 'exact', recipients: ['Support@Example.com'], s3Action: { bucketName: 'bucket-1' } },
    { name: 'domain', recipients: ['example.com'], s3Action: { bucketName: 'bucket-2' } },
    { name: 'sub', recipients: ['.example.org'], tlsPolicy: 'Require', s3Action: { bucketName: 'bucket-3' } },
    { name: 'disabled', enabled: false, recipients: ['off.example'], s3Action: { bucketName: 'bucket-4' } },
  ],
  gateway: { smtp: { port: 2600 }, redis: { url: 'redis://127.0.0.9:6379' } },
};
