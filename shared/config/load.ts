import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { createdKmsKeyOfRule } from './infra.js';
import { ConfigError, toProblems, type ConfigProblem } from './problems.js';
import { ReceivingConfigSchema, type ReceivingConfig } from './schema.js';
import { checkSesRules, sesWarnings } from './ses-rules.js';

export interface LoadedConfig {
  config: ReceivingConfig;
  warnings: string[];
}

/** Validates an already-parsed config object; throws ConfigError listing every problem. */
export function parseConfig(data: unknown, source = 'config'): LoadedConfig {
  const result = ReceivingConfigSchema.safeParse(data, { reportInput: true });
  if (result.success) return { config: result.data, warnings: sesWarnings(result.data) };
  const problems = toProblems(result.error.issues);
  // zod skips the SES cross-field rules once a field has the wrong shape; run them on what is usable so the user
  // sees every problem in one pass, not one round per fix.
  const shapePaths = new Set(problems.map((p) => p.path));
  if (!result.error.issues.some((i) => i.code === 'custom')) {
    for (const p of sesRuleProblems(data)) if (!shapePaths.has(p.path)) problems.push(p);
  }
  throw new ConfigError(source, problems);
}

function sesRuleProblems(data: unknown): ConfigProblem[] {
  const issues: z.core.$ZodIssue[] = [];
  const ctx = { addIssue: (i: object) => issues.push({ input: undefined, ...i } as z.core.$ZodIssue), value: data } as unknown as z.RefinementCtx;
  checkSesRules(tolerant(data), ctx);
  return toProblems(issues);
}

const obj = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const optStr = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** The config with wrongly typed fields blanked, so the SES rules can run over the rest. */
function tolerant(data: unknown): Parameters<typeof checkSesRules>[0] {
  const d = obj(data);
  const rules = Array.isArray(d.rules) ? d.rules : [];
  return {
    region: str(d.region),
    accountId: str(d.accountId),
    ruleSetName: str(d.ruleSetName),
    receivingRegions: Array.isArray(d.receivingRegions) ? d.receivingRegions.filter((r): r is string => typeof r === 'string') : undefined,
    maxMessageSize: typeof d.maxMessageSize === 'number' ? d.maxMessageSize : 0,
    rules: rules.map((r) => {
      const rule = obj(r);
      const a = obj(rule.s3Action);
      return {
        name: str(rule.name),
        recipients: Array.isArray(rule.recipients) ? rule.recipients.map(str) : [],
        s3Action: {
          bucketName: str(a.bucketName),
          objectKeyPrefix: str(a.objectKeyPrefix),
          kmsKeyArn: optStr(a.kmsKeyArn),
          topicArn: optStr(a.topicArn),
          iamRoleArn: optStr(a.iamRoleArn),
          bucketRegion: optStr(a.bucketRegion),
        },
      };
    }),
  };
}

/** Reads and validates a JSON config file. */
export function loadConfigFile(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(file, [
      { path: '(file)', message: code === 'ENOENT' ? 'file not found' : `cannot read the file (${code ?? String(err)})`, fix: 'pass the path of a mailroom JSON config, e.g. examples/minimal.json' },
    ]);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(file, [{ path: '(file)', message: `not valid JSON: ${(err as Error).message}`, fix: 'correct the JSON syntax (a trailing comma or a missing quote is the usual cause)' }]);
  }
  return parseConfig(data, file);
}

/** One line a human can check at a glance. */
export function summarizeConfig(cfg: ReceivingConfig): string {
  const enabled = cfg.rules.filter((r) => r.enabled).length;
  const kms = cfg.rules.filter((r) => r.s3Action.kmsKeyArn !== undefined || createdKmsKeyOfRule(cfg.infra, r.name) !== undefined).length;
  const topics = cfg.rules.filter((r) => r.s3Action.topicArn).length;
  const buckets = new Set(cfg.rules.map((r) => r.s3Action.bucketName));
  return `rule set "${cfg.ruleSetName}" in ${cfg.region} (account ${cfg.accountId}): ${cfg.rules.length} rule${cfg.rules.length === 1 ? '' : 's'} (${enabled} enabled), ${buckets.size} bucket${buckets.size === 1 ? '' : 's'}, ${kms} encrypted with KMS, ${topics} notifying SNS; max message ${cfg.maxMessageSize} bytes`;
}
