/**
 * The one place infra/ chooses its CDK for Terraform framework and, with it, the AWS provider bindings:
 *  - cdktf + @cdktf/provider-aws (the default; the project's devDependencies);
 *  - cdktn + @cdktn/provider-aws, cdktf's maintained fork, with MAILROOM_CDK=cdktn: installed apart from the
 *    project's lockfile (`npm ci --prefix infra/cdktn`, ~480 MB) and run on Node ≥ 22.11 (docs/infra.md#cdktn).
 * Both have the same API, so the code is typed against cdktf's declarations whichever one runs. A framework and
 * its provider bindings must come as a pair: a resource class extends its own framework's TerraformResource.
 */
import { createRequire } from 'node:module';
import type * as Cdktf from 'cdktf';
import type * as Constructs from 'constructs';

export type CdkFramework = 'cdktf' | 'cdktn';

function chosen(value = 'cdktf'): CdkFramework {
  if (value === 'cdktf' || value === 'cdktn') return value;
  throw new Error(`MAILROOM_CDK=${value}: expected "cdktf" (the default) or "cdktn"`);
}

export const FRAMEWORK: CdkFramework = chosen(process.env.MAILROOM_CDK || undefined);

const load = createRequire(FRAMEWORK === 'cdktn' ? new URL('./cdktn/package.json', import.meta.url) : import.meta.url);

function required<T>(id: string): T {
  try {
    return load(id) as T;
  } catch (err) {
    if (FRAMEWORK !== 'cdktn' || (err as { code?: string }).code !== 'MODULE_NOT_FOUND') throw err;
    throw new Error(`MAILROOM_CDK=cdktn: ${id} is not installed; run \`npm ci --prefix infra/cdktn\` (docs/infra.md#cdktn)`, { cause: err });
  }
}

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (FRAMEWORK === 'cdktn' && (major < 22 || (major === 22 && minor < 11))) {
  throw new Error(`MAILROOM_CDK=cdktn needs Node 22.11 or later (@cdktn/provider-aws); this is Node ${process.versions.node}`);
}

const cdk = required<typeof Cdktf>(FRAMEWORK);
export const { Annotations, App, Fn, Lazy, TerraformOutput, TerraformStack, Testing, Token } = cdk;
export type Annotations = Cdktf.Annotations;
export type App = Cdktf.App;
export type TerraformOutput = Cdktf.TerraformOutput;
export type TerraformStack = Cdktf.TerraformStack;
export type { ITerraformDependable, TerraformResource } from 'cdktf';
export const { Construct } = required<typeof Constructs>('constructs');
export type Construct = Constructs.Construct;

/** One module of the chosen provider bindings by deep path (lib/<resource>/index.js): the barrel loads every resource. */
export function awsBindings<M>(resource: string): M {
  return required<M>(`@${FRAMEWORK}/provider-aws/lib/${resource}/index.js`);
}
