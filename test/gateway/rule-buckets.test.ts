/**
 * The start-up check of the rule buckets (gateway/observability/rule-buckets.ts): mail is taken either way, but
 * missing credentials or a missing bucket are said once, at start, with the fix — not only as a failed delivery per
 * message for hours.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRuleBuckets, ruleBuckets } from '../../gateway/observability/rule-buckets.js';
import { parseConfig } from '../../shared/config/index.js';
import { startMoto, useMotoEnv, type Moto } from '../support/moto.js';
import { capturedLog } from './helpers.js';

let moto: Moto;
let restoreEnv: () => void;

beforeAll(async () => {
  moto = await startMoto();
  restoreEnv = useMotoEnv(moto);
  const s3 = new S3Client({ region: 'us-east-1', endpoint: moto.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
  await s3.send(new CreateBucketCommand({ Bucket: 'there' }));
  s3.destroy();
}, 60_000);

afterAll(async () => {
  restoreEnv?.();
  await moto?.stop();
});

const config = parseConfig({
  region: 'us-east-1',
  accountId: '123456789012',
  ruleSetName: 'check',
  rules: [
    { name: 'a', recipients: ['a.example'], s3Action: { bucketName: 'there', objectKeyPrefix: 'a' } },
    { name: 'b', recipients: ['b.example'], s3Action: { bucketName: 'there', objectKeyPrefix: 'b' } },
    { name: 'c', recipients: ['c.example'], s3Action: { bucketName: 'not-there', objectKeyPrefix: 'c' } },
    { name: 'off', enabled: false, recipients: ['d.example'], s3Action: { bucketName: 'disabled-rule-bucket', objectKeyPrefix: 'd' } },
  ],
}).config;

async function check(cfg = config): Promise<ReturnType<typeof capturedLog>['lines']> {
  const { log, lines } = capturedLog();
  await checkRuleBuckets(cfg, 5_000, log, new AbortController().signal);
  return lines;
}

describe('rule buckets at start', () => {
  it('one entry per bucket, naming the enabled rules that deliver there', () => {
    expect(ruleBuckets(config)).toEqual([
      { bucket: 'there', region: 'us-east-1', rules: ['a', 'b'] },
      { bucket: 'not-there', region: 'us-east-1', rules: ['c'] },
    ]);
  });

  it('warns about a bucket that does not exist, naming its rules; says nothing against one that does', async () => {
    const lines = await check();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, bucket: 'not-there', rules: ['c'], problem: 'HeadBucket answered 404: bucket "not-there" does not exist' });
    expect(lines[0]!.msg).toMatch(/mail is still accepted and spooled, and its deliveries retry until this is fixed$/);
  });

  it('says so, with the fix, when there are no AWS credentials at all', async () => {
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY, imds: process.env.AWS_EC2_METADATA_DISABLED, home: process.env.HOME };
    delete process.env.AWS_ACCESS_KEY_ID;
    delete process.env.AWS_SECRET_ACCESS_KEY;
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    process.env.HOME = '/nonexistent'; // no ~/.aws files either
    try {
      const lines = await check();
      expect(lines.map((l) => l.problem)).toEqual([expect.stringMatching(/^no AWS credentials found: set AWS_PROFILE/), expect.stringMatching(/^no AWS credentials found/)]);
    } finally {
      process.env.AWS_ACCESS_KEY_ID = saved.id;
      process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
      if (saved.imds === undefined) delete process.env.AWS_EC2_METADATA_DISABLED;
      else process.env.AWS_EC2_METADATA_DISABLED = saved.imds;
      process.env.HOME = saved.home;
    }
  });

  it('all there: one line that says so', async () => {
    const lines = await check({ ...config, rules: config.rules.filter((r) => r.name !== 'c') });
    expect(lines).toEqual([expect.objectContaining({ msg: 'every rule bucket answered', buckets: 1 })]);
  });
});
