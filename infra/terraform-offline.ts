/**
 * Offline Terraform: find a filesystem mirror holding hashicorp/aws and write a CLI config that installs the
 * provider from it and never from the registry. Used by `infra/offline.ts` and `infra/offline-rc.ts` for users, and
 * by the tests.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The provider version @cdktf/provider-aws pins in the synthesized required_providers. */
export const AWS_PROVIDER_VERSION = '5.100.0';
export const AWS_PROVIDER_SOURCE = 'registry.terraform.io/hashicorp/aws';

/** Terraform's name for this OS and CPU (`linux_amd64`, `darwin_arm64`, `windows_amd64`). */
export function platformDir(): string {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'ia32' ? '386' : process.arch;
  return `${process.platform === 'win32' ? 'windows' : process.platform}_${arch}`;
}

/**
 * Where to look for a mirror, in order: MAILROOM_TF_PLUGIN_MIRROR, then Terraform's own implied local mirror
 * directories for this OS (see Terraform's CLI configuration docs), then the plugin cache (TF_PLUGIN_CACHE_DIR,
 * same layout), then /opt/tf-plugins, where this project's machine image keeps it.
 */
export function mirrorCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const home = homedir();
  const implied =
    process.platform === 'win32'
      ? [join(env.APPDATA ?? join(home, 'AppData', 'Roaming'), 'terraform.d', 'plugins'), join(env.APPDATA ?? join(home, 'AppData', 'Roaming'), 'HashiCorp', 'Terraform', 'plugins')]
      : process.platform === 'darwin'
        ? [join(home, '.terraform.d', 'plugins'), join(home, 'Library', 'Application Support', 'io.terraform', 'plugins'), '/Library/Application Support/io.terraform/plugins']
        : [
            join(home, '.terraform.d', 'plugins'),
            join(env.XDG_DATA_HOME || join(home, '.local', 'share'), 'terraform', 'plugins'),
            ...(env.XDG_DATA_DIRS || '/usr/local/share:/usr/share').split(':').filter(Boolean).map((d) => join(d, 'terraform', 'plugins')),
          ];
  return [env.MAILROOM_TF_PLUGIN_MIRROR, ...implied, env.TF_PLUGIN_CACHE_DIR, ...(process.platform === 'linux' ? ['/opt/tf-plugins'] : [])].filter((p): p is string => typeof p === 'string' && p !== '');
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

/** The mirror's directory, or the process exits 1 saying where it looked and which variable names another. */
export function requireProviderMirror(): string {
  const mirror = findProviderMirror();
  if (mirror) return mirror;
  console.error(
    `no filesystem mirror with hashicorp/aws ${AWS_PROVIDER_VERSION} found; looked in:\n  ${mirrorCandidates().join('\n  ')}\n` +
      'set MAILROOM_TF_PLUGIN_MIRROR to the directory that holds registry.terraform.io/hashicorp/aws/',
  );
  process.exit(1);
}
