/**
 * Recipients for a load run from the config: one address per enabled receipt rule, one that the rule's own
 * recipient conditions match — so every rule takes a copy of every message, as it would of real mail.
 */
import type { ReceiptRule, ReceivingConfig } from '../shared/config/index.js';
import { parseRecipientCondition, ruleMatchesRecipient, type RecipientCondition } from '../shared/ses/recipients.js';

const LOCAL = 'mailroom-load';

function conditions(rule: ReceiptRule): RecipientCondition[] {
  return rule.recipients.map((c) => parseRecipientCondition(c)).filter((c): c is RecipientCondition => !('error' in c));
}

/** An address the rule matches: its first condition made concrete (a domain gets `mailroom-load@`, `.domain` a `load.` host). */
export function recipientFor(rule: ReceiptRule, config: ReceivingConfig): string {
  const cs = conditions(rule);
  const c = cs[0];
  let address: string;
  if (!c) {
    // No conditions: the rule takes every recipient; borrow another rule's domain, so the address is plausible.
    const other = config.rules.flatMap(conditions)[0];
    address = `${LOCAL}@${other ? (other.kind === 'subdomain' ? `load.${other.domain}` : other.domain) : 'load.invalid'}`;
  } else if (c.kind === 'address') address = `${c.local}@${c.domain}`;
  else if (c.kind === 'domain') address = `${LOCAL}@${c.domain}`;
  else address = `${LOCAL}@load.${c.domain}`;
  if (!ruleMatchesRecipient(cs, address)) throw new Error(`no address found that rule "${rule.name}" matches`);
  return address;
}

/** One recipient per enabled rule, without repeats (an address two rules match gives both their copy). */
export function recipientsFor(config: ReceivingConfig): string[] {
  return [...new Set(config.rules.filter((r) => r.enabled).map((r) => recipientFor(r, config)))];
}
