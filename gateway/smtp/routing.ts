import type { ReceiptRule, ReceivingConfig } from '../../shared/config/index.js';
import { parseRecipientCondition, rulesRunFor, type RecipientCondition } from '../../shared/ses/recipients.js';
import type { SpooledRule } from '../spool/format.js';
import { replies, type SmtpReply } from './replies.js';

interface CompiledRule {
  rule: ReceiptRule;
  conditions: RecipientCondition[];
}

export type RouteResult = { ok: true; rules: ReceiptRule[] } | { ok: false; reply: SmtpReply };

/**
 * Decides each RCPT TO as SES does (docs/ses-format.md#evaluation): the enabled rules whose recipient conditions match
 * (exact address, its +label variants, domain, .subdomain; no conditions = everyone), in rule-set order, up to and
 * including the first with a Stop action (`stopAction`): the rules after it do not run for this recipient.
 *
 * TLS choice: a recipient is refused (530) on a plain connection when ANY rule that runs for it requires TLS — SES bounces
 * mail a Require rule would have received without TLS, and silently delivering to the other rules only would split
 * one recipient's mail across rules without anyone noticing.
 */
export class RecipientRouter {
  private readonly rules: CompiledRule[];

  constructor(config: ReceivingConfig) {
    this.rules = config.rules
      .filter((r) => r.enabled)
      .map((rule) => ({
        rule,
        conditions: rule.recipients.map((c) => {
          const parsed = parseRecipientCondition(c);
          // The config schema already refused bad conditions; this only guards a config built in code.
          if ('error' in parsed) throw new Error(`rule "${rule.name}": recipient condition "${c}" is ${parsed.error}`);
          return parsed;
        }),
      }));
  }

  route(address: string, secure: boolean): RouteResult {
    const matched = rulesRunFor(this.rules, address, (r) => r.conditions, (r) => r.rule.stopAction !== undefined).map((r) => r.rule);
    if (matched.length === 0) return { ok: false, reply: replies.unknownRecipient(address) };
    if (!secure && matched.some((r) => r.tlsPolicy === 'Require')) return { ok: false, reply: replies.tlsRequired(address) };
    return { ok: true, rules: matched };
  }

  /** Per matched rule, its recipients in SMTP order (recipients that no longer route are left out). */
  rulesFor(recipients: readonly string[], secure: boolean): SpooledRule[] {
    const byRule = new Map<string, SpooledRule>();
    for (const address of recipients) {
      const r = this.route(address, secure);
      if (!r.ok) continue;
      for (const rule of r.rules) {
        let entry = byRule.get(rule.name);
        if (!entry) byRule.set(rule.name, (entry = { name: rule.name, recipients: [], scanEnabled: rule.scanEnabled, s3Action: rule.s3Action }));
        entry.recipients.push(address);
      }
    }
    // Rule-set order, not first-recipient order.
    return this.rules.map((r) => byRule.get(r.rule.name)).filter((r): r is SpooledRule => r !== undefined);
  }
}
