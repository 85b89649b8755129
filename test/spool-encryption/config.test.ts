/** `gateway.spool.encryption` in the config: its defaults, and every mistake said with the field and the fix. */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, type ReceivingConfigInput } from '../../shared/config/index.js';
import { resolveRuntime } from '../../gateway/runtime/settings.js';

const KEY = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

function settingsWith(encryption: unknown) {
  const cfg = { region: 'us-east-1', accountId: '123456789012', ruleSetName: 's', rules: [{ name: 'r', s3Action: { bucketName: 'mail-bucket' } }], gateway: { spool: { encryption } } } as ReceivingConfigInput;
  return resolveRuntime(parseConfig(cfg), {}, 'mailroom.json').settings;
}

function problems(encryption: unknown) {
  try {
    settingsWith(encryption);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('gateway.spool.encryption', () => {
  it('is off unless set; set, it seals new mail with data keys bounded by age, files and bytes', () => {
    const cfg = { region: 'us-east-1', accountId: '123456789012', ruleSetName: 's', rules: [{ name: 'r', s3Action: { bucketName: 'mail-bucket' } }] } as ReceivingConfigInput;
    expect(resolveRuntime(parseConfig(cfg), {}, 'x').settings.spool.encryption).toBeUndefined();
    expect(settingsWith({ kmsKeyArn: KEY }).spool.encryption).toEqual({ kmsKeyArn: KEY, enabled: true, thread: 'auto', dataKeyMaxAgeMs: 300_000, dataKeyMaxFiles: 100_000, dataKeyMaxBytes: 8 * 2 ** 30 });
    expect(settingsWith({ keyFile: '/etc/mailroom/spool.key', enabled: false }).spool.encryption).toMatchObject({ keyFile: '/etc/mailroom/spool.key', enabled: false });
  });

  it('names exactly one key: a KMS key by its full ARN, or a key file', () => {
    expect(problems({})).toEqual([{ path: 'gateway.spool.encryption', message: 'names no key', fix: 'give exactly one of "kmsKeyArn" (a KMS key ARN) and "keyFile" (a file holding a 256-bit key)' }]);
    expect(problems({ kmsKeyArn: KEY, keyFile: '/k' })[0]).toMatchObject({ path: 'gateway.spool.encryption', message: 'names two keys' });
    for (const [arn, why] of [
      ['arn:aws:kms:us-east-1:123456789012:alias/mail', 'an alias ARN other than alias/aws/ses'],
      ['arn:aws:kms:us-east-1:123456789012:alias/aws/ses', 'an alias ARN'],
      ['alias/mail', 'an alias name, not a key ARN'],
      ['1234abcd-12ab-34cd-56ef-1234567890ab', 'a bare key id, not a key ARN'],
    ] as const) {
      expect(problems({ kmsKeyArn: arn })).toEqual([
        { path: 'gateway.spool.encryption.kmsKeyArn', message: `"${arn}" is ${why}`, fix: "write the key's full ARN, arn:aws:kms:<region>:<account>:key/<key-id> (an alias will not do: each sealed file names the key that opens it)" },
      ]);
    }
    expect(problems({ kmsKeyArn: KEY, dataKeyMaxFiles: 0 })[0]).toMatchObject({ path: 'gateway.spool.encryption.dataKeyMaxFiles' });
    expect(problems({ kmsKeyArn: KEY, keyId: 'x' })[0]).toMatchObject({ path: 'gateway.spool.encryption.keyId', message: 'unknown field' });
  });
});
