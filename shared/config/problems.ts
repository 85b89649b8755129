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

/** An enum or literal refusal, with the value given when zod reported it (parse with `reportInput: true`). */
function notAllowed(path: string, values: readonly unknown[], input: unknown): ConfigProblem {
  const allowed = values.map((v) => JSON.stringify(v));
  const given = input === undefined ? '' : typeof input === 'string' || typeof input === 'number' || typeof input === 'boolean' ? `${JSON.stringify(input)} is ` : `${describe(input)} is `;
  // "require" for "Require": say it is the case, not the word, that is wrong.
  const sameWord = typeof input === 'string' ? values.find((v) => typeof v === 'string' && v.toLowerCase() === input.toLowerCase()) : undefined;
  return {
    path,
    message: `${given}not one of the allowed values`,
    fix: sameWord !== undefined ? `write it as ${JSON.stringify(sameWord)} (the values are case-sensitive)` : allowed.length === 1 ? `use ${allowed[0]!}` : `use one of ${allowed.join(', ')}`,
  };
}

/**
 * A bound missed, said plainly — zod's own text ("Too small: expected number to be >0") is for developers — with a
 * fix that respects whether the bound itself is allowed (`inclusive`): exclusive 0 is "greater than 0", not "at least 0".
 */
function outOfRange(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig): { message: string; fix: string } {
  const small = issue.code === 'too_small';
  const bound = String(small ? (issue as z.core.$ZodIssueTooSmall).minimum : (issue as z.core.$ZodIssueTooBig).maximum);
  const inclusive = issue.inclusive !== false;
  const exact = (issue as { exact?: boolean }).exact === true;
  const input = (issue as { input?: unknown }).input;
  const unit = issue.origin === 'string' ? 'characters' : issue.origin === 'array' || issue.origin === 'set' ? 'items' : undefined;
  if (unit) {
    const size = typeof input === 'string' || Array.isArray(input) ? ` (it has ${input.length})` : '';
    const n = Number(bound) + (inclusive ? 0 : small ? 1 : -1);
    if (exact) return { message: `must have exactly ${n} ${unit}${size}`, fix: `give exactly ${n} ${unit}` };
    if (small && n === 1) return { message: `must not be empty`, fix: unit === 'items' ? 'list at least one item' : 'write a value' };
    return small ? { message: `must have at least ${n} ${unit}${size}`, fix: `give ${n} ${unit} or more` } : { message: `must have at most ${n} ${unit}${size}`, fix: `give ${n} ${unit} or fewer` };
  }
  const got = typeof input === 'number' || typeof input === 'bigint' ? ` (got ${String(input)})` : '';
  if (exact) return { message: `must be ${bound}${got}`, fix: `use ${bound}` };
  if (small) return inclusive ? { message: `must be at least ${bound}${got}`, fix: `use ${bound} or more` } : { message: `must be greater than ${bound}${got}`, fix: `use a number greater than ${bound}` };
  return inclusive ? { message: `must be at most ${bound}${got}`, fix: `use ${bound} or less` } : { message: `must be less than ${bound}${got}`, fix: `use a number less than ${bound}` };
}

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
        out.push(notAllowed(path, issue.values, (issue as { input?: unknown }).input));
        break;
      case 'too_small':
      case 'too_big':
        out.push({ path, ...outOfRange(issue) });
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
