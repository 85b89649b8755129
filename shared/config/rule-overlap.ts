import { parseRecipientCondition, ruleMatchesRecipient, rulesRunFor, type RecipientCondition } from '../ses/recipients.js';
import { createdKmsKeyOfRule, type InfraSettings } from './infra.js';

/** What the overlap check reads of a config (after parsing). */
export interface OverlapInput {
  rules: Array<{
    name: string;
    enabled: boolean;
    recipients: string[];
    tlsPolicy: 'Require' | 'Optional';
    stopAction?: { scope: string } | undefined;
    s3Action: { bucketName: string; objectKeyPrefix: string; kmsKeyArn?: string | undefined };
  }>;
  infra?: Pick<InfraSettings, 'createKmsKeys'> | undefined;
}

interface Rule {
  index: number;
  name: string;
  conditions: RecipientCondition[];
  encrypted: boolean;
  requiresTls: boolean;
  stops: boolean;
  where: string;
}

/**
 * SES runs every rule that matches a recipient, so one rule's mail can end up where another rule's settings do not
 * hold. Warned about, with the fix:
 * - a rule without a KMS key that stores mail for recipients of a rule with one (a second, unencrypted copy — or the
 *   only copy, when it stops the rule set first);
 * - a Stop action before a rule that requires TLS, for recipients both match: that rule never runs for them, so
 *   nothing refuses their mail on a plain connection.
 * Overlap is decided on sample recipients that stand for every way an address can relate to the conditions.
 */
export function ruleOverlapWarnings(cfg: OverlapInput): string[] {
  const rules: Rule[] = [];
  cfg.rules.forEach((r, index) => {
    if (!r.enabled) return;
    const conditions = r.recipients.map(parseRecipientCondition);
    if (conditions.some((c) => 'error' in c)) return; // reported by validation already
    rules.push({
      index,
      name: r.name,
      conditions: conditions as RecipientCondition[],
      encrypted: r.s3Action.kmsKeyArn !== undefined || createdKmsKeyOfRule(cfg.infra, r.name) !== undefined,
      requiresTls: r.tlsPolicy === 'Require',
      stops: r.stopAction !== undefined,
      where: `s3://${r.s3Action.bucketName}/${r.s3Action.objectKeyPrefix}`,
    });
  });

  const leaks = new Map<string, { keyed: Rule; plain: Rule; example: string }>();
  const tlsSkips = new Map<string, { secure: Rule; stopper: Rule; example: string }>();
  for (const address of sampleRecipients(rules.flatMap((r) => r.conditions))) {
    const matching = rules.filter((r) => ruleMatchesRecipient(r.conditions, address));
    if (matching.length === 0) continue;
    const run = rulesRunFor(rules, address, (r) => r.conditions, (r) => r.stops);
    for (const keyed of matching.filter((r) => r.encrypted)) {
      for (const plain of run.filter((r) => !r.encrypted)) {
        const k = `${keyed.index}:${plain.index}`;
        if (!leaks.has(k)) leaks.set(k, { keyed, plain, example: address });
      }
    }
    if (run.every((r) => !r.requiresTls)) {
      const stopper = run[run.length - 1]!;
      for (const secure of matching.filter((r) => r.requiresTls)) {
        const k = `${secure.index}:${stopper.index}`;
        if (!tlsSkips.has(k)) tlsSkips.set(k, { secure, stopper, example: address });
      }
    }
  }

  const out: Array<[number, number, string]> = [];
  const stop = '"stopAction": {"scope": "RuleSet"}';
  for (const { keyed, plain, example } of leaks.values()) {
    const at = `rules[${plain.index}].recipients: rule "${plain.name}" (no KMS key)`;
    const narrow = `narrow the recipients of "${plain.name}"`;
    let text: string;
    if (plain.index > keyed.index) {
      text =
        `${at} also matches recipients of rule "${keyed.name}" (KMS key), e.g. ${example}: SES runs every rule that matches a recipient, so their mail is also stored without KMS encryption, under ${plain.where}. ` +
        `Fix: add ${stop} to rule "${keyed.name}" (no later rule runs for the recipients it matched), or ${narrow}.`;
    } else if (plain.stops) {
      text =
        `${at} comes before rule "${keyed.name}" (KMS key) and stops the rule set for recipients they share, e.g. ${example}: their mail is stored only without KMS encryption, under ${plain.where}, and never by "${keyed.name}". ` +
        `Fix: move rule "${keyed.name}" before "${plain.name}", or ${narrow}.`;
    } else {
      text =
        `${at} comes before rule "${keyed.name}" (KMS key) and also matches its recipients, e.g. ${example}: SES runs both, so their mail is also stored without KMS encryption, under ${plain.where}. ` +
        `Fix: move rule "${keyed.name}" before "${plain.name}" and add ${stop} to it, or ${narrow}.`;
    }
    out.push([plain.index, keyed.index, text]);
  }
  for (const { secure, stopper, example } of tlsSkips.values()) {
    out.push([
      stopper.index,
      secure.index,
      `rules[${stopper.index}].stopAction: rule "${stopper.name}" stops the rule set before rule "${secure.name}" (tlsPolicy "Require") for recipients they share, e.g. ${example}: "${secure.name}" never runs for them, so their mail is accepted without TLS. ` +
        `Fix: move rule "${secure.name}" before "${stopper.name}", set the tlsPolicy of "${stopper.name}" to "Require", or narrow the recipients of "${stopper.name}".`,
    ]);
  }
  return out.sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(([, , text]) => text);
}

/**
 * Recipients that stand for every class of address the conditions can tell apart: each address named (and a +label
 * variant), someone else at each domain named, someone at a fresh subdomain of each, and someone at an unrelated
 * domain. Two rules share a recipient exactly when they share one of these.
 */
function sampleRecipients(conditions: readonly RecipientCondition[]): string[] {
  const domains = new Set<string>();
  const localsAt = new Map<string, Set<string>>();
  for (const c of conditions) {
    domains.add(c.domain);
    if (c.kind === 'address') {
      let set = localsAt.get(c.domain);
      if (!set) localsAt.set(c.domain, (set = new Set()));
      set.add(c.local);
    }
  }
  const allLocals = new Set([...localsAt.values()].flatMap((s) => [...s]));
  const local = fresh('someone', (l) => !allLocals.has(l));
  const tag = fresh('tag', (t) => ![...allLocals].some((l) => l.endsWith(`+${t}`)));
  const label = fresh('any', (l) => ![...domains].some((d) => domains.has(`${l}.${d}`)));
  const elsewhere = fresh('unrelated.invalid', (d) => ![...domains].some((x) => d === x || d.endsWith(`.${x}`)));

  const out: string[] = [];
  for (const d of domains) {
    for (const l of localsAt.get(d) ?? []) out.push(`${l}@${d}`, `${l}+${tag}@${d}`);
    out.push(`${local}@${d}`, `${local}@${label}.${d}`);
  }
  out.push(`${local}@${elsewhere}`);
  return out;
}

function fresh(base: string, ok: (candidate: string) => boolean): string {
  for (let i = 0; ; i++) {
    const candidate = i === 0 ? base : base.replace(/^([^.]*)/, `$1${i}`);
    if (ok(candidate)) return candidate;
  }
}
