import type { z } from 'zod';

/** One thing wrong with a config, as a user needs it: where, what, and how to fix it. */
export interface ConfigProblem {
  path: string;
  message: string;
  fix: string;
}

/** `rules[0].s3Action.kmsKeyArn` — the JSON path form users see in errors. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out === '' ? '(top level)' : out;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value)}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

const TYPE_EXAMPLES: Record<string, string> = {
  string: 'a string in double quotes',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list in [ ]',
  object: 'an object in { }',
};

/** Turns zod issues (built-in and SES-rule ones) into problems with a fix each. */
export function toProblems(issues: readonly z.core.$ZodIssue[]): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of issues) {
    const path = formatPath(issue.path);
    switch (issue.code) {
      case 'invalid_type': {
        const input = (issue as { input?: unknown }).input;
        const want = TYPE_EXAMPLES[issue.expected] ?? issue.expected;
        if (input === undefined) out.push({ path, message: 'required field is missing', fix: `add "${String(issue.path.at(-1))}" as ${want}` });
        else out.push({ path, message: `expected ${issue.expected}, got ${describe(input)}`, fix: `write it as ${want}` });
        break;
      }
      case 'unrecognized_keys':
        for (const key of issue.keys) {
          out.push({ path: formatPath([...issue.path, key]), message: 'unknown field', fix: 'remove it or correct its spelling (see the JSON Schema: mailroom schema)' });
        }
        break;
      case 'invalid_value':
        out.push({ path, message: `not one of the allowed values`, fix: `use one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}` });
        break;
      case 'too_small':
      case 'too_big':
        out.push({ path, message: issue.message, fix: issue.code === 'too_small' ? `use at least ${String(issue.minimum)}` : `use at most ${String(issue.maximum)}` });
        break;
      case 'custom':
        out.push({ path, message: issue.message, fix: String((issue.params as { fix?: string } | undefined)?.fix ?? 'correct the value') });
        break;
      default:
        out.push({ path, message: issue.message, fix: 'correct the value' });
    }
  }
  return out;
}

export function formatProblems(problems: readonly ConfigProblem[]): string {
  return problems.map((p) => `  ${p.path}: ${p.message}\n    fix: ${p.fix}`).join('\n');
}

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: ConfigProblem[],
  ) {
    super(`${source}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${formatProblems(problems)}`);
    this.name = 'ConfigError';
  }
}
