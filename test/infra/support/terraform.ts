import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AWS_PROVIDER_VERSION, findProviderMirror, mirrorCandidates, writeCliConfig } from '../../../infra/terraform-offline.js';

/** The mirror the tests use: where `npm run deploy:offline` finds it (infra/terraform-offline.ts). */
export function providerMirror(): string | undefined {
  return findProviderMirror();
}

export interface TerraformEnv {
  bin: string;
  mirror: string;
  /** Env for every terraform child: the offline CLI config, no checkpoint calls, no colour. */
  env: NodeJS.ProcessEnv;
  dir: string;
  cleanup: () => void;
}

/** Why terraform tests cannot run here, or undefined when they can. Tests skip with this reason. */
export function terraformUnavailable(): string | undefined {
  const bin = process.env.MAILROOM_TERRAFORM ?? 'terraform';
  const v = spawnSync(bin, ['version', '-json'], { encoding: 'utf8', env: { ...process.env, CHECKPOINT_DISABLE: '1', TF_CLI_CONFIG_FILE: '/dev/null' } });
  if (v.error || v.status !== 0) return `terraform not found (${bin}); install terraform ≥ 1.5 or set MAILROOM_TERRAFORM`;
  if (!providerMirror()) return `no filesystem mirror with hashicorp/aws ${AWS_PROVIDER_VERSION}; looked in ${mirrorCandidates().join(', ')} (set MAILROOM_TF_PLUGIN_MIRROR)`;
  return undefined;
}

export function offlineTerraform(): TerraformEnv {
  const mirror = providerMirror();
  if (!mirror) throw new Error(terraformUnavailable());
  const dir = mkdtempSync(join(tmpdir(), 'mailroom-tf-'));
  const rc = writeCliConfig(dir, mirror);
  const env: NodeJS.ProcessEnv = { ...process.env, TF_CLI_CONFIG_FILE: rc, CHECKPOINT_DISABLE: '1', TF_IN_AUTOMATION: '1', TF_INPUT: '0' };
  for (const k of Object.keys(env)) if (k.startsWith('TF_VAR_') || k === 'TF_PLUGIN_CACHE_DIR' || k === 'TF_LOG') delete env[k];
  return { bin: process.env.MAILROOM_TERRAFORM ?? 'terraform', mirror, env, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface TfResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs terraform in `cwd`, killed (SIGTERM, then SIGKILL) after timeoutMs so a hung apply never hangs the suite. */
export function terraform(tf: TerraformEnv, cwd: string, args: string[], opts: { timeoutMs: number; env?: Record<string, string> }): Promise<TfResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(tf.bin, [...args], { cwd, env: { ...tf.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${opts.timeoutMs} ms: terraform ${args.join(' ')}]`;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }, opts.timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** A working directory holding one synthesized stack (cdk.tf.json). */
export function stackDir(tf: TerraformEnv, name: string, synthesized: string): string {
  const dir = join(tf.dir, name);
  rmSync(dir, { recursive: true, force: true });
  spawnSync('mkdir', ['-p', dir]);
  writeFileSync(join(dir, 'cdk.tf.json'), synthesized);
  return dir;
}

export function describe(r: TfResult): string {
  return `exit ${r.code} after ${r.ms} ms\n--- stdout\n${r.stdout.slice(-6000)}\n--- stderr\n${r.stderr.slice(-6000)}`;
}
