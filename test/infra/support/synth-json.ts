/**
 * Synthesizes example configs in a process of its own and prints {framework, node, stacks: {<config>: <Terraform JSON>}}:
 * how a test gets the synth of the other framework (MAILROOM_CDK=cdktn) or of another Node.
 *   node --import tsx test/infra/support/synth-json.ts examples/infra.json …
 */
import { FRAMEWORK } from '../../../infra/framework.js';
import { synth } from './synth.js';

const stacks = Object.fromEntries(process.argv.slice(2).map((config) => [config, JSON.parse(synth(config).text) as unknown]));
process.stdout.write(JSON.stringify({ framework: FRAMEWORK, node: process.version, stacks }));
