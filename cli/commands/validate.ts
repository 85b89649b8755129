import { ConfigError, loadConfigFile, summarizeConfig } from '../../shared/config/index.js';
import { infraProblems } from '../../shared/config/infra.js';
import { parse } from '../command/args.js';
import { UsageError, type Command } from '../command/command.js';

export const validate: Command = {
  name: 'validate',
  summary: 'check a config file against SES’s rules',
  usage: `usage: mailroom validate <config.json> [--quiet]

Checks the file against the config schema and SES's receiving rules. Prints every problem with its JSON path and
the fix and exits 1; a valid file prints a one-line summary (and any warnings) and exits 0.`,
  async run(args) {
    const { values, positionals } = parse(args, { quiet: { type: 'boolean', short: 'q' } });
    if (positionals.length !== 1) throw new UsageError('give exactly one config file');
    try {
      const { config, warnings } = loadConfigFile(positionals[0]!);
      // The infra section's own checks (object lock retention, AWS-managed topic keys, …), in the same format.
      const infra = infraProblems(config);
      if (infra.length) throw new ConfigError(positionals[0]!, infra);
      if (!values.quiet) console.log(`ok: ${summarizeConfig(config)}`);
      for (const w of warnings) console.error(`warning: ${w}`);
      return 0;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      console.error(err.message);
      return 1;
    }
  },
};
