/**
 * The example app behind `npx cdktf synth` / `npx cdktf deploy` (cdktf.json runs it with tsx).
 *
 *   MAILROOM_CONFIG   config file to deploy (default examples/infra.json)
 *   MAILROOM_STACK    stack name (default "mailroom")
 *   AWS_ENDPOINT_URL  synth for an AWS API emulator (moto_server, LocalStack) instead of AWS
 */
import { ConfigError } from '../shared/config/problems.js';
import { App } from './framework.js';
import { MailroomStack } from './stack.js';

const configFile = process.env.MAILROOM_CONFIG ?? 'examples/infra.json';
const app = new App();
try {
  new MailroomStack(app, process.env.MAILROOM_STACK ?? 'mailroom', { config: configFile, endpointUrl: process.env.AWS_ENDPOINT_URL || undefined });
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(1);
  }
  throw err;
}
app.synth();
