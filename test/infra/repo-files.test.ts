/** What `cdktf deploy` leaves in a checkout is ignored by git, so state (with every ARN and policy) is never committed. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

/** The paths among `paths` that git would ignore (check-ignore exits 1 when none is). */
function ignored(paths: string[]): string[] {
  try {
    return execFileSync('git', ['check-ignore', '--no-index', ...paths], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch (err) {
    if ((err as { status?: number }).status === 1) return [];
    throw err;
  }
}

describe('.gitignore', () => {
  it('ignores the local state cdktf writes to the project root (terraform.<stack>.tfstate and its backup), the synth output and terraform working dirs', () => {
    const paths = [
      'terraform.mailroom.tfstate',
      'terraform.mailroom.tfstate.backup',
      'terraform.my-stack.tfstate',
      'terraform.tfstate',
      'cdktf.out/stacks/mailroom/cdk.tf.json',
      'cdktf.out/stacks/mailroom/.terraform.lock.hcl',
      '.terraform/terraform-offline.rc',
    ];
    expect(ignored(paths)).toEqual(paths);
  });

  it('does not ignore sources or examples', () => {
    expect(ignored(['infra/stack.ts', 'examples/infra.json', 'README.md'])).toEqual([]);
  });
});
