/**
 * `terraform validate` and `terraform plan` of the synthesized stacks, offline: the hashicorp/aws provider comes from a
 * local filesystem mirror (infra/terraform-offline.ts finds it) through a generated TF_CLI_CONFIG_FILE.
 *
 * Plan needs no AWS: the stacks are synthesized with AWS_ENDPOINT_URL pointing at a closed local port and the
 * skip flags, and with empty state Terraform plans creations without calling the API. Skips (with the reason) only
 * where terraform or the mirror is missing.
 */
import { copyFileSync, cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { synth } from './support/synth.js';
import { describe as describeRun, offlineTerraform, stackDir, terraform, terraformUnavailable, type TerraformEnv } from './support/terraform.js';

const unavailable = terraformUnavailable();
if (unavailable) console.warn(`[infra terraform tests skipped] ${unavailable}`);

describe.skipIf(unavailable !== undefined)('terraform validate + plan (offline)', () => {
  let tf: TerraformEnv;
  let initDir: string;
  let closedEndpoint: string;

  beforeAll(async () => {
    tf = offlineTerraform();
    closedEndpoint = `http://127.0.0.1:${await freePort()}`;
    // One init (the provider is ~700 MB to link); the other stacks reuse its .terraform and lock file.
    initDir = stackDir(tf, 'init', synth('examples/infra.json').text);
    const init = await terraform(tf, initDir, ['init', '-input=false', '-no-color', '-backend=false'], { timeoutMs: 120_000 });
    expect(init.code, describeRun(init)).toBe(0);
  }, 150_000);
  afterAll(() => tf?.cleanup());

  const reuseInit = (dir: string) => {
    cpSync(join(initDir, '.terraform'), join(dir, '.terraform'), { recursive: true, verbatimSymlinks: true });
    if (existsSync(join(initDir, '.terraform.lock.hcl'))) copyFileSync(join(initDir, '.terraform.lock.hcl'), join(dir, '.terraform.lock.hcl'));
  };

  it('installed hashicorp/aws 5.100.0 from the mirror, not the registry', async () => {
    const v = await terraform(tf, initDir, ['version', '-json'], { timeoutMs: 30_000 });
    expect(JSON.parse(v.stdout).provider_selections).toEqual({ 'registry.terraform.io/hashicorp/aws': '5.100.0' });
  });

  it.each(['infra.json', 'minimal.json', 'full.json'])('examples/%s: validate, then plan creates everything with no errors', async (name) => {
    const dir = name === 'infra.json' ? initDir : stackDir(tf, name, synth(`examples/${name}`).text);
    if (dir !== initDir) reuseInit(dir);
    const v = await terraform(tf, dir, ['validate', '-no-color', '-json'], { timeoutMs: 90_000 });
    expect(v.code, describeRun(v)).toBe(0);
    const report = JSON.parse(v.stdout) as { valid: boolean; error_count: number; warning_count: number; diagnostics: Array<{ summary: string }> };
    expect(report, v.stdout).toMatchObject({ valid: true, error_count: 0 });

    const planDir = stackDir(tf, `plan-${name}`, synth(`examples/${name}`, { endpointUrl: closedEndpoint }).text);
    reuseInit(planDir);
    const p = await terraform(tf, planDir, ['plan', '-input=false', '-no-color', '-lock=false', '-detailed-exitcode', '-json'], {
      timeoutMs: 120_000,
      env: { AWS_ACCESS_KEY_ID: 'offline', AWS_SECRET_ACCESS_KEY: 'offline', AWS_EC2_METADATA_DISABLED: 'true' },
    });
    expect(p.code, describeRun(p)).toBe(2); // 2 = succeeded, with changes
    const messages = p.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; '@level': string; change?: { action: string; resource: { resource_type: string } }; changes?: { add: number; change: number; remove: number } });
    expect(messages.filter((m) => m['@level'] === 'error')).toEqual([]);
    const planned = messages.filter((m) => m.type === 'planned_change').map((m) => m.change!);
    expect(planned.every((c) => c.action === 'create')).toBe(true);
    const types = new Set(planned.map((c) => c.resource.resource_type));
    for (const t of ['aws_ses_receipt_rule_set', 'aws_ses_receipt_rule', 'aws_s3_bucket', 'aws_s3_bucket_policy']) expect(types).toContain(t);
    const summary = messages.find((m) => m.type === 'change_summary')!.changes!;
    expect(summary).toMatchObject({ add: planned.length, change: 0, remove: 0 });
  }, 300_000);
});
