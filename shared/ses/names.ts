import { SES_LIMITS } from './limits.js';

/**
 * Receipt rule names: letters, digits, `_`, `-`, `.`; start and end alphanumeric; at most 64 characters.
 * Rule set names: the same without `.` (docs/ses-format.md#names).
 */
const RULE_NAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
const RULE_SET_NAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$/;

export function checkRuleName(name: string): string | undefined {
  if (name.length > SES_LIMITS.nameMaxLength) return `is ${name.length} characters; SES allows at most ${SES_LIMITS.nameMaxLength}`;
  if (!RULE_NAME_RE.test(name)) return 'may contain only letters, digits, "_", "-" and ".", and must start and end with a letter or digit';
  return undefined;
}

export function checkRuleSetName(name: string): string | undefined {
  if (name.length > SES_LIMITS.nameMaxLength) return `is ${name.length} characters; SES allows at most ${SES_LIMITS.nameMaxLength}`;
  if (!RULE_SET_NAME_RE.test(name)) return 'may contain only letters, digits, "_" and "-", and must start and end with a letter or digit';
  return undefined;
}
