import { infraProblems } from '../shared/config/infra.js';
import { loadConfigFile, parseConfig, type LoadedConfig } from '../shared/config/load.js';
import { ConfigError } from '../shared/config/problems.js';
import type { ReceivingConfig } from '../shared/config/schema.js';
import { AwsProvider } from './aws.js';
import { idOf } from './arns.js';
import { Annotations, TerraformStack, type Construct } from './framework.js';
import { localEndpointSettings } from './local-endpoints.js';
import { MailroomReceiving } from './receiving.js';

export interface MailroomStackProps {
  /** A config object (validated here) or the path of a config file. */
  config: unknown;
  /** Where the config came from, for error messages (default: the path, or "config"). */
  source?: string;
  /** AWS_ENDPOINT_URL at synth time: point the provider at an emulator (see local-endpoints.ts). */
  endpointUrl?: string | undefined;
}

/**
 * Validates a config the way synth must: the shared schema and SES rules, then the checks only the infra can make.
 * Throws ConfigError (path, message, fix per problem) — the same format `mailroom validate` prints.
 */
export function loadInfraConfig(config: unknown, source?: string): LoadedConfig {
  const loaded = typeof config === 'string' ? loadConfigFile(config) : parseConfig(config, source ?? 'config');
  const problems = infraProblems(loaded.config);
  if (problems.length > 0) throw new ConfigError(typeof config === 'string' ? config : (source ?? 'config'), problems);
  return loaded;
}

/** A Terraform stack with the AWS provider(s) and one MailroomReceiving. */
export class MailroomStack extends TerraformStack {
  readonly config: ReceivingConfig;
  readonly receiving: MailroomReceiving;
  readonly warnings: string[];
  readonly notes: string[];
  readonly provider: AwsProvider;
  private readonly regionProviders = new Map<string, AwsProvider>();

  constructor(scope: Construct, id: string, props: MailroomStackProps) {
    super(scope, id);
    const loaded = loadInfraConfig(props.config, props.source);
    this.config = loaded.config;
    const tags = this.config.infra?.tags ?? {};
    const common = {
      ...(Object.keys(tags).length > 0 ? { defaultTags: [{ tags }] } : {}),
      ...(props.endpointUrl ? localEndpointSettings(props.endpointUrl) : {}),
    };
    this.provider = new AwsProvider(this, 'aws', { region: this.config.region, ...common });
    this.receiving = new MailroomReceiving(this, 'mailroom', {
      config: this.config,
      providerFor: (region) => {
        let p = this.regionProviders.get(region);
        if (!p) {
          p = new AwsProvider(this, `aws-${idOf(region)}`, { region, alias: idOf(region), ...common });
          this.regionProviders.set(region, p);
        }
        return p;
      },
    });
    this.warnings = [...loaded.warnings, ...this.receiving.warnings];
    if (props.endpointUrl) this.warnings.push(`AWS_ENDPOINT_URL is set: the provider talks to ${props.endpointUrl}, not AWS.`);
    this.notes = this.receiving.notes;
    for (const w of this.warnings) Annotations.of(this).addWarning(w);
    for (const n of this.notes) Annotations.of(this).addInfo(n);
  }
}
