/**
 * cdktf without the Terraform registry — `npm run deploy:offline`, `npm run destroy:offline`, or any cdktf command:
 *
 *   npx tsx infra/offline.ts <deploy|destroy|diff|output|synth|…> [cdktf flags]
 *
 * hashicorp/aws comes from a local filesystem mirror (infra/terraform-offline.ts finds it) through a Terraform CLI
 * config written to a temporary directory, removed afterwards: nothing is written into the checkout. cdktf also runs
 * `terraform providers lock` before the first init of a stack; that step asks the registry for checksums and ignores
 * the CLI config's mirror, so it is skipped (--skip-provider-lock): `terraform init` still writes the stack's lock
 * file, with the checksum of the package it installed from the mirror.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { AWS_PROVIDER_VERSION, requireProviderMirror, writeCliConfig } from './terraform-offline.js';

/** The cdktf commands that run `terraform providers lock` (and accept the flag that skips it). */
const LOCKING = new Set(['deploy', 'apply', 'destroy', 'diff', 'plan', 'output', 'outputs']);

const args = process.argv.slice(2);
if (args.length === 0) {
  console.error('usage: tsx infra/offline.ts <cdktf command> [flags]   e.g. deploy --auto-approve');
  process.exit(2);
}
const mirror = requireProviderMirror();
const dir = mkdtempSync(join(tmpdir(), 'mailroom-terraform-'));
const rc = writeCliConfig(dir, mirror);
const cdktfArgs = LOCKING.has(args[0]!) && !args.includes('--skip-provider-lock') ? [...args, '--skip-provider-lock'] : args;
const cdktf = join(dirname(createRequire(import.meta.url).resolve('cdktf-cli/package.json')), 'bundle', 'bin', 'cdktf');
console.error(`# hashicorp/aws ${AWS_PROVIDER_VERSION} from the mirror ${mirror}; running: cdktf ${cdktfArgs.join(' ')}`);

const child = spawn(process.execPath, [cdktf, ...cdktfArgs], {
  stdio: 'inherit',
  env: { ...process.env, TF_CLI_CONFIG_FILE: rc, CHECKPOINT_DISABLE: '1' },
});
const forward = (signal: NodeJS.Signals) => child.kill(signal);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, forward);
child.on('close', (code, signal) => {
  rmSync(dir, { recursive: true, force: true });
  process.exitCode = code ?? (signal ? 1 : 0);
});
