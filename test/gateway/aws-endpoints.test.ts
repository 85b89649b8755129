import { describe, expect, it } from 'vitest';
import { defaultRegion, serviceEndpoint } from '../../gateway/aws/endpoints.js';

describe('AWS endpoint conventions (every mailroom command)', () => {
  it('uses the per-service variable over AWS_ENDPOINT_URL, and path-style S3 whenever an endpoint is set', () => {
    const env = { AWS_ENDPOINT_URL: 'http://127.0.0.1:5000', AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000' };
    expect(serviceEndpoint('s3', env)).toEqual({ endpoint: 'http://127.0.0.1:9000', forcePathStyle: true });
    expect(serviceEndpoint('kms', env)).toEqual({ endpoint: 'http://127.0.0.1:5000' });
    expect(serviceEndpoint('sns', { ...env, AWS_ENDPOINT_URL_SNS: 'http://127.0.0.1:5001' })).toEqual({ endpoint: 'http://127.0.0.1:5001' });
    expect(serviceEndpoint('s3', { AWS_ENDPOINT_URL: 'http://127.0.0.1:5000' })).toEqual({ endpoint: 'http://127.0.0.1:5000', forcePathStyle: true });
  });
  it('leaves AWS’s own endpoints and virtual-hosted S3 alone when nothing is set', () => {
    expect(serviceEndpoint('s3', {})).toEqual({});
    expect(serviceEndpoint('kms', { AWS_ENDPOINT_URL: '' })).toEqual({});
  });
  it('takes the region from AWS_REGION, then AWS_DEFAULT_REGION', () => {
    expect(defaultRegion({ AWS_REGION: 'eu-west-1', AWS_DEFAULT_REGION: 'us-east-1' })).toBe('eu-west-1');
    expect(defaultRegion({ AWS_DEFAULT_REGION: 'us-east-1' })).toBe('us-east-1');
    expect(defaultRegion({})).toBeUndefined();
  });
});
