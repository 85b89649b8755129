/**
 * Receipt-rule recipient conditions (docs/ses-format.md#recipient-conditions): `user@example.com` (that mailbox and its `+label` variants),
 * `example.com` (every mailbox of that domain) and `.example.com` (every subdomain of it).
 *
 * Choice for an UNCONFIRMED point (docs/ses-format.md#bare-domain-conditions): a bare domain does NOT match its subdomains, as in the old DG's
 * table; add a `.example.com` condition for those. A rule with no recipients matches every recipient, as in SES.
 */

export type RecipientCondition =
  | { kind: 'address'; local: string; domain: string }
  | { kind: 'domain'; domain: string }
  | { kind: 'subdomain'; domain: string };

const LOCAL_RE = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$/;
const DOMAIN_RE = /^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}$/;

export function parseRecipientCondition(value: string): RecipientCondition | { error: string } {
  const v = value.trim();
  if (v !== value || v === '') return { error: 'empty or surrounded by spaces' };
  const at = v.lastIndexOf('@');
  if (at >= 0) {
    const local = v.slice(0, at);
    const domain = v.slice(at + 1);
    if (!local || !LOCAL_RE.test(local) || local.startsWith('.') || local.endsWith('.')) return { error: 'the local part is not a valid mailbox name' };
    if (!DOMAIN_RE.test(domain)) return { error: 'the domain is not a valid domain name' };
    return { kind: 'address', local: local.toLowerCase(), domain: domain.toLowerCase() };
  }
  if (v.startsWith('.')) {
    const domain = v.slice(1);
    if (!DOMAIN_RE.test(domain)) return { error: 'not a valid domain after the leading dot' };
    return { kind: 'subdomain', domain: domain.toLowerCase() };
  }
  if (!DOMAIN_RE.test(v)) return { error: 'neither an address, a domain nor a .subdomain' };
  return { kind: 'domain', domain: v.toLowerCase() };
}

/** Splits an envelope address into lowercase local part (without `+label`) and domain. */
function splitAddress(address: string): { local: string; base: string; domain: string } | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  const local = address.slice(0, at).toLowerCase();
  const plus = local.indexOf('+');
  return { local, base: plus > 0 ? local.slice(0, plus) : local, domain: address.slice(at + 1).toLowerCase() };
}

export function recipientMatches(condition: RecipientCondition, address: string): boolean {
  const a = splitAddress(address);
  if (!a) return false;
  switch (condition.kind) {
    case 'address':
      return a.domain === condition.domain && (a.local === condition.local || a.base === condition.local);
    case 'domain':
      return a.domain === condition.domain;
    case 'subdomain':
      return a.domain.endsWith(`.${condition.domain}`);
  }
}

/** True when a rule with these conditions applies to `address` (no conditions: every recipient). */
export function ruleMatchesRecipient(conditions: readonly RecipientCondition[], address: string): boolean {
  return conditions.length === 0 || conditions.some((c) => recipientMatches(c, address));
}

/**
 * The rules SES runs for one recipient: those whose conditions match it, in rule-set order, up to and including the
 * first with a Stop action — SES's stop ends the evaluation of the rule set for the recipients that rule matched.
 * Give it the enabled rules only.
 */
export function rulesRunFor<R>(rules: readonly R[], address: string, conditionsOf: (rule: R) => readonly RecipientCondition[], stops: (rule: R) => boolean): R[] {
  const out: R[] = [];
  for (const rule of rules) {
    if (!ruleMatchesRecipient(conditionsOf(rule), address)) continue;
    out.push(rule);
    if (stops(rule)) break;
  }
  return out;
}
