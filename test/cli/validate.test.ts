/** `mailroom validate`: every problem with its path and fix, or one line saying what the file describes. */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { ReceivingConfigInput } from '../../shared/config/index.js';
import { tempDir } from '../support/files.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

function base(): ReceivingConfigInput & { rules: Array<Record<string, unknown> & { s3Action: Record<string, unknown> }> } {
  return {
    region: 'us-east-1',
    accountId: '123456789012',
    ruleSetName: 'inbound',
    rules: [{ name: 'deliver', recipients: ['example.com'], s3Action: { bucketName: 'mail-bucket' } }],
  };
}

describe('mailroom validate', () => {
  it('prints every problem with its path and fix, exit 1; a valid file prints one line, exit 0', async () => {
    const dir = await tempDir();
    try {
      const bad = join(dir.path, 'bad.json');
      const c = base();
      c.rules[0]!.s3Action.topicArn = 'arn:aws:sns:eu-west-1:123456789012:t';
      c.ruleSetName = 'bad.set';
      writeFileSync(bad, JSON.stringify(c));
      const err = await run('node', [join(ROOT, 'bin/mailroom.js'), 'validate', bad]).then(() => undefined, (e: { code: number; stderr: string }) => e);
      expect(err?.code).toBe(1);
      expect(err?.stderr).toBe(
        `${bad}: 2 problems\n` +
          '  ruleSetName: rule set name "bad.set" may contain only letters, digits, "_" and "-", and must start and end with a letter or digit\n' +
          '    fix: rename the rule set, e.g. "mailroom-inbound"\n' +
          '  rules[0].s3Action.topicArn: the SNS topic is in eu-west-1, but SES needs it in the receiving region us-east-1\n' +
          '    fix: use a topic in us-east-1\n',
      );
      const ok = await run('node', [join(ROOT, 'bin/mailroom.js'), 'validate', join(ROOT, 'examples/minimal.json')]);
      expect(ok.stdout).toBe(
        'ok: rule set "mailroom-inbound" in us-east-1 (account 123456789012): 1 rule (1 enabled), 1 bucket, 0 encrypted with KMS, 0 notifying SNS; max message 41943040 bytes\n',
      );
      // Rules encrypted with a key the stack creates (infra.createKmsKeys) count as encrypted, as do those naming one.
      const infra = await run('node', [join(ROOT, 'bin/mailroom.js'), 'validate', join(ROOT, 'examples/infra.json')]);
      expect(infra.stdout).toBe(
        'ok: rule set "mailroom-inbound" in us-east-1 (account 123456789012): 3 rules (3 enabled), 2 buckets, 3 encrypted with KMS, 2 notifying SNS; max message 41943040 bytes\n',
      );
      const missing = await run('node', [join(ROOT, 'bin/mailroom.js'), 'validate', join(dir.path, 'nope.json')]).catch((e: { code: number; stderr: string }) => e);
      expect(missing).toMatchObject({ code: 1 });
      expect((missing as { stderr: string }).stderr).toContain('(file): file not found\n    fix: pass the path of a mailroom JSON config');
    } finally {
      await dir.remove();
    }
  });
});
