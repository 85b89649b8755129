/**
 * The one place infra/ imports the CDK for Terraform framework. A later move to a fork (e.g. cdktn) changes only
 * these two lines; the provider bindings are imported by deep path in aws.ts.
 */
export { Annotations, App, Fn, Lazy, TerraformOutput, TerraformStack, Testing, Token } from 'cdktf';
export type { ITerraformDependable, TerraformResource } from 'cdktf';
export { Construct } from 'constructs';
