/**
 * Writes .terraform/terraform-offline.rc (a Terraform CLI config using a local provider mirror) and prints the export line:
 *
 *   eval "$(npx tsx infra/offline-rc.ts)"   # then: npx cdktf deploy
 */
import { resolve } from 'node:path';
import { findProviderMirror, mirrorCandidates, writeCliConfig, AWS_PROVIDER_VERSION } from './terraform-offline.js';

const mirror = findProviderMirror();
if (!mirror) {
  console.error(`no filesystem mirror with hashicorp/aws ${AWS_PROVIDER_VERSION} found; looked in:\n  ${mirrorCandidates().join('\n  ')}\nset MAILROOM_TF_PLUGIN_MIRROR to its directory`);
  process.exit(1);
}
const file = writeCliConfig(resolve('.terraform'), mirror) // .terraform/ is git-ignored;
console.error(`# provider mirror: ${mirror}`);
console.log(`export TF_CLI_CONFIG_FILE=${JSON.stringify(file)} CHECKPOINT_DISABLE=1`);
