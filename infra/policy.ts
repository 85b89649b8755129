/** IAM policy documents as plain data, so tests can read them back statement by statement. */

export type ConditionBlock = Record<string, Record<string, string | string[] | boolean>>;

export interface PolicyStatement {
  Sid: string;
  Effect: 'Allow' | 'Deny';
  Principal?: { Service: string | string[] } | { AWS: string | string[] };
  Action: string | string[];
  Resource?: string | string[];
  Condition?: ConditionBlock;
}

export interface PolicyDocument {
  Version: '2012-10-17';
  Statement: PolicyStatement[];
}

export function policyDocument(statements: PolicyStatement[]): PolicyDocument {
  return { Version: '2012-10-17', Statement: statements };
}

/**
 * The JSON text Terraform gets. Values may hold cdktf tokens (e.g. a created key's ARN); they stay `${...}`
 * interpolations inside the string. One value lists are written as a plain string, the way IAM returns them, so the
 * provider sees no diff after apply.
 */
export function policyJson(statements: PolicyStatement[]): string {
  return JSON.stringify(policyDocument(statements.map(normalize)));
}

function single<T>(v: T | T[]): T | T[] {
  return Array.isArray(v) && v.length === 1 ? v[0]! : v;
}

function normalize(s: PolicyStatement): PolicyStatement {
  const out: PolicyStatement = { ...s, Action: single(s.Action) };
  if (s.Principal) out.Principal = 'AWS' in s.Principal ? { AWS: single(s.Principal.AWS) } : { Service: single(s.Principal.Service) };
  if (s.Resource !== undefined) out.Resource = single(s.Resource);
  if (s.Condition) {
    const c: ConditionBlock = {};
    for (const [op, kv] of Object.entries(s.Condition)) {
      c[op] = {};
      for (const [k, v] of Object.entries(kv)) c[op]![k] = Array.isArray(v) ? (single(v) as string | string[]) : v;
    }
    out.Condition = c;
  }
  return out;
}

/** Unique, sorted — a set of ARNs or names renders the same way every synth. */
export function uniq(values: Iterable<string>): string[] {
  return [...new Set(values)].sort();
}
