/**
 * Offline Terraform: find a filesystem mirror holding hashicorp/aws and write a CLI config that installs the
 * provider from it and never from the registry. Used by the tests and by `infra/offline-rc.ts` for users.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The provider version @cdktf/provider-aws pins in the synthesized required_providers. */
export const AWS_PROVIDER_VERSION = '5.100.0';
export const AWS_PROVIDER_SOURCE = 'registry.terraform.io/hashicorp/aws';

export function platformDir(): string {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'ia32' ? '386' : process.arch;
  return `${process.platform}_${arch}`;
}

/** Places mirrors usually live; MAILROOM_TF_PLUGIN_MIRROR first. */
export function mirrorCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const home = homedir();
  return [
    env.MAILROOM_TF_PLUGIN_MIRROR,
    '/opt/tf-plugins',
    '/opt/terraform/plugins',
    join(home, '.terraform.d', 'plugins'),
    join(home, '.local', 'share', 'terraform', 'plugins'),
    '/usr/local/share/terraform/plugins',
    '/usr/share/terraform/plugins',
    env.TF_PLUGIN_CACHE_DIR,
    join(home, '.terraform.d', 'plugin-cache'),
  ].filter((p): p is string => typeof p === 'string' && p !== '');
}

/** True when `dir` holds hashicorp/aws at `version` in the unpacked or the packed mirror layout. */
export function mirrorHasProvider(dir: string, version = AWS_PROVIDER_VERSION): boolean {
  const base = join(dir, AWS_PROVIDER_SOURCE);
  const unpacked = join(base, version, platformDir());
  if (existsSync(unpacked) && readdirSync(unpacked).some((f) => f.startsWith('terraform-provider-aws'))) return true;
  return existsSync(join(base, `terraform-provider-aws_${version}_${platformDir()}.zip`));
}

export function findProviderMirror(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return mirrorCandidates(env).find((d) => mirrorHasProvider(d));
}

/** A CLI config: hashicorp/aws from the mirror only, everything else direct (nothing else is needed). */
export function cliConfigText(mirror: string): string {
  return [
    'provider_installation {',
    '  filesystem_mirror {',
    `    path    = ${JSON.stringify(mirror)}`,
    `    include = [${JSON.stringify(AWS_PROVIDER_SOURCE)}]`,
    '  }',
    '  direct {',
    `    exclude = [${JSON.stringify(AWS_PROVIDER_SOURCE)}]`,
    '  }',
    '}',
    '',
  ].join('\n');
}

export function writeCliConfig(dir: string, mirror: string): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'terraform-offline.rc');
  writeFileSync(file, cliConfigText(mirror));
  return file;
}
