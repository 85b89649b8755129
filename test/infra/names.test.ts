/**
 * Rule names become construct ids (Terraform addresses) and bucket-policy statement ids. Both must stay distinct for
 * every pair of names SES accepts (letters, digits, ".", "_", "-"), or synth dies on a duplicate construct, or two
 * rules share one Sid. Synth is in-process (cdktf Testing).
 */
import { describe, expect, it } from 'vitest';
import { receiptRuleArn } from '../../shared/ses/arn.js';
import { checkRuleName } from '../../shared/ses/names.js';
import { sesPutSid } from '../../infra/ses-put-sid.js';
import { all, one, policy, synth } from './support/synth.js';

const ALNUM = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'];
const ALPHABET = [...ALNUM, '.', '_', '-'];

function config(names: string[]) {
  return {
    region: 'us-east-1',
    accountId: '123456789012',
    ruleSetName: 'names',
    rules: names.map((name) => ({ name, recipients: ['example.com'], s3Action: { bucketName: 'names-mail', objectKeyPrefix: `${name}/` } })),
  };
}

/** Every valid rule name of one to three characters: all of SES's alphabet, in every position it may take. */
function shortNames(): string[] {
  const out: string[] = [];
  for (const a of ALNUM) {
    out.push(a);
    for (const b of ALNUM) {
      out.push(a + b);
      for (const c of ALPHABET) out.push(a + c + b);
    }
  }
  return out.filter((n) => checkRuleName(n) === undefined);
}

describe('rule names that differ only in ".", "_", "-" or case', () => {
  // One rule set may hold 200 rules: every separator and letter inside a name, plus the pairs old mappings merged.
  const names = [...new Set([...ALPHABET.map((c) => `x${c}y`), 'support.v2', 'support_v2', 'support-v2', 'supportV2', 'SupportV2', 'supportv2', 'set', 'set_a', 'a.b_c', 'a_b.c', 'a-b_c', 'a_b-c'])];

  it('synthesize: one receipt rule each, no duplicate construct', () => {
    const { json } = synth(config(names));
    expect(all(json, 'aws_ses_receipt_rule').map(([, r]) => r.name as string).sort()).toEqual([...names].sort());
    expect(new Set(all(json, 'aws_ses_receipt_rule').map(([id]) => id)).size).toBe(names.length);
  });

  it('get one bucket policy statement each, with its own Sid, for its own rule', () => {
    const { json } = synth(config(names));
    const doc = policy(one(json, 'aws_s3_bucket_policy')[1].policy);
    expect(doc.Statement).toHaveLength(names.length);
    expect(new Set(doc.Statement.map((s) => s.Sid)).size).toBe(names.length);
    for (const name of names) {
      const s = doc.Statement.find((x) => x.Sid === sesPutSid(name))!;
      expect(s.Condition).toMatchObject({ StringEquals: { 'AWS:SourceArn': receiptRuleArn({ region: 'us-east-1', accountId: '123456789012', ruleSetName: 'names', ruleName: name }) } });
    }
  });
});

describe('statement ids', () => {
  it('are distinct for every valid name of up to three characters, and alphanumeric (what every AWS policy accepts)', () => {
    const names = shortNames();
    expect(names.length).toBeGreaterThan(200_000);
    const sids = new Set<string>();
    for (const n of names) {
      const sid = sesPutSid(n);
      expect(sid).toMatch(/^[A-Za-z0-9]+$/);
      sids.add(sid);
    }
    expect(sids.size).toBe(names.length);
  });

  it('read as the rule name', () => {
    expect(sesPutSid('support')).toBe('AllowSESPutsForRuleSupport');
    expect(sesPutSid('catch-all')).not.toBe(sesPutSid('catch_all'));
    expect(sesPutSid('catch-all')).not.toBe(sesPutSid('catchAll'));
  });
});

describe('a rule whose name has a "." keeps its Terraform state', () => {
  // Before names were mapped injectively, "." became "_": "support.v2" had the address that "support_v2" has now.
  const addressOf = (names: string[], name: string) => `aws_ses_receipt_rule.${one(synth(config(names)).json, 'aws_ses_receipt_rule', (r) => r.name === name)[0]}`;

  it('is moved from the address it had', () => {
    const { json } = synth(config(['support.v2']));
    expect((json as unknown as { moved?: unknown }).moved).toEqual([{ from: addressOf(['support_v2'], 'support_v2'), to: addressOf(['support.v2'], 'support.v2') }]);
  });

  it('unless another rule now has that address (the two could not be deployed together before)', () => {
    const { json } = synth(config(['support.v2', 'support_v2']));
    expect((json as unknown as { moved?: unknown }).moved).toBeUndefined();
  });

  it('names without "." keep their address', () => {
    expect(synth(config(['catch-all', 'support_v2'])).text).not.toContain('"moved"');
  });
});
