/**
 * For raw `terraform` commands offline (`npm run deploy:offline` needs none of this): writes a Terraform CLI config
 * that installs hashicorp/aws from a local filesystem mirror to $XDG_CONFIG_HOME/mailroom/terraform-offline.rc
 * (~/.config/mailroom/ by default; never into the checkout) and prints the line that points Terraform at it:
 *
 *   eval "$(npx tsx infra/offline-rc.ts)"   # then e.g.: terraform -chdir=cdktf.out/stacks/mailroom plan
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { requireProviderMirror, writeCliConfig } from './terraform-offline.js';

const mirror = requireProviderMirror();
const file = writeCliConfig(join(process.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'mailroom'), mirror);
console.error(`# provider mirror: ${mirror}`);
console.log(`export TF_CLI_CONFIG_FILE=${JSON.stringify(file)} CHECKPOINT_DISABLE=1`);
