/**
 * The infra under cdktn, cdktf's maintained fork: the same constructs, switched in infra/framework.ts by
 * MAILROOM_CDK=cdktn, synthesize the same Terraform JSON as under cdktf — apart from the provider each binding
 * package pins (cdktf's @cdktf/provider-aws 20.1.0: hashicorp/aws 5.100.0; @cdktn/provider-aws: 6.x). cdktn runs on
 * the Node 24 binary (@cdktn/provider-aws needs Node ≥ 22.11), installed from infra/cdktn/ by `npm run setup`.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { mirrorCandidates, mirrorHasProvider } from '../../infra/terraform-offline.js';
import { nodeBinary } from '../../scripts/node-lts.mjs';
import { synth } from './support/synth.js';
import { describe as describeRun, offlineTerraform, stackDir, terraform, terraformUnavailable } from './support/terraform.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CDKTN = join(ROOT, 'infra', 'cdktn');
const CONFIGS = ['examples/infra.json', 'examples/minimal.json', 'examples/full.json'];

type Json = Record<string, unknown>;
interface Synthesized {
  framework: string;
  node: string;
  stacks: Record<string, Json>;
}

/** The provider each binding package pins (its package.json's cdktf.provider), as synthesized into required_providers. */
function pinnedProvider(pkgJson: string): string {
  return (JSON.parse(readFileSync(pkgJson, 'utf8')) as { cdktf: { provider: { version: string } } }).cdktf.provider.version;
}

/** The JSON without cdktf/cdktn's "//" metadata and with the AWS provider requirement set aside. */
function comparable(stack: Json): { stack: Json; provider: { source?: string; version?: string } } {
  const strip = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(strip) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).filter(([k]) => k !== '//').map(([k, x]) => [k, strip(x)])) : v;
  const copy = strip(stack) as { terraform: { required_providers: { aws: { source?: string; version?: string } } } };
  const provider = copy.terraform.required_providers.aws;
  copy.terraform.required_providers.aws = {};
  return { stack: copy as unknown as Json, provider };
}

const installed = existsSync(join(CDKTN, 'node_modules', 'cdktn', 'package.json')) && existsSync(join(CDKTN, 'node_modules', '@cdktn', 'provider-aws', 'package.json'));

describe('the infra under cdktn (MAILROOM_CDK=cdktn)', () => {
  let cdktn: Synthesized;
  let cdktnProvider: string;

  beforeAll(async () => {
    if (!installed) throw new Error('cdktn is not installed in infra/cdktn: run `npm run setup` (or `npm ci --prefix infra/cdktn`)');
    cdktnProvider = pinnedProvider(join(CDKTN, 'node_modules', '@cdktn', 'provider-aws', 'package.json'));
    const { stdout } = await promisify(execFile)(nodeBinary('24'), ['--import', 'tsx', 'test/infra/support/synth-json.ts', ...CONFIGS], {
      cwd: ROOT,
      env: { ...process.env, MAILROOM_CDK: 'cdktn' },
      maxBuffer: 32 << 20,
      timeout: 240_000,
    });
    cdktn = JSON.parse(stdout) as Synthesized;
  }, 300_000);

  it('ran cdktn on Node 24', () => {
    expect(cdktn.framework).toBe('cdktn');
    expect(cdktn.node).toMatch(/^v24\./);
  });

  it.each(CONFIGS)('%s: the same Terraform JSON as cdktf, apart from metadata and the provider version', (config) => {
    const a = comparable(JSON.parse(synth(config).text) as Json);
    const b = comparable(cdktn.stacks[config]!);
    expect(b.stack).toEqual(a.stack);
    expect(a.provider.version).toBe(pinnedProvider(join(ROOT, 'node_modules', '@cdktf', 'provider-aws', 'package.json')));
    expect(b.provider.version).toBe(cdktnProvider);
    // The same registry provider either way: cdktf writes the short source "aws", cdktn the full "hashicorp/aws".
    expect([a.provider.source, b.provider.source].map((s) => (s === 'aws' ? 'hashicorp/aws' : s))).toEqual(['hashicorp/aws', 'hashicorp/aws']);
  });

  const mirrored = () => mirrorCandidates().some((dir) => mirrorHasProvider(dir, cdktnProvider));
  it('terraform validate of the cdktn output, offline, where the local mirror has its provider version', async (ctx) => {
    const unavailable = terraformUnavailable();
    if (unavailable) ctx.skip(unavailable);
    if (!mirrored()) ctx.skip(`hashicorp/aws ${cdktnProvider} (what @cdktn/provider-aws pins) is not in the local provider mirror: only cdktf's output is validated offline`);
    const tf = offlineTerraform();
    try {
      const dir = stackDir(tf, 'cdktn', JSON.stringify(cdktn.stacks['examples/infra.json']));
      const init = await terraform(tf, dir, ['init', '-input=false', '-no-color', '-backend=false'], { timeoutMs: 120_000 });
      expect(init.code, describeRun(init)).toBe(0);
      const v = await terraform(tf, dir, ['validate', '-no-color'], { timeoutMs: 90_000 });
      expect(v.code, describeRun(v)).toBe(0);
    } finally {
      tf.cleanup();
    }
  }, 240_000);
});
