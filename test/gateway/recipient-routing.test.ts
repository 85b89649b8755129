/** Recipient routing: which rules a recipient matches, as SES matches them, and the reply when none or TLS is missing. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../shared/config/index.js';
import { RecipientRouter } from '../../gateway/smtp/routing.js';
import { base } from './rule-set.js';

describe('recipient routing', () => {
  const router = new RecipientRouter(parseConfig(base).config);
  it('matches as SES does and refuses with the right reply', () => {
    expect(router.route('support+tag@example.com', false)).toMatchObject({ ok: true, rules: [{ name: 'exact' }, { name: 'domain' }] });
    expect(router.route('other@EXAMPLE.com', false)).toMatchObject({ ok: true, rules: [{ name: 'domain' }] });
    expect(router.route('x@mail.example.org', true)).toMatchObject({ ok: true, rules: [{ name: 'sub' }] });
    const tls = router.route('x@mail.example.org', false);
    expect(tls.ok || tls.reply.responseCode).toBe(530);
    const none = router.route('x@example.org', true); // a bare parent domain is not a .subdomain match
    expect(none.ok || none.reply.message).toMatch(/^5\.1\.1 /);
    const off = router.route('x@off.example', true);
    expect(off.ok || off.reply.responseCode).toBe(550);
  });
  it('groups recipients per rule in rule-set order', () => {
    expect(router.rulesFor(['b@example.com', 'support@example.com', 'nobody@none.example'], false).map((r) => [r.name, r.recipients])).toEqual([
      ['exact', ['support@example.com']],
      ['domain', ['b@example.com', 'support@example.com']],
    ]);
  });
  it("a rule with SES's Stop action ends evaluation for the recipients it matched, and only for them", () => {
    const stopping = new RecipientRouter(
      parseConfig({ ...base, rules: [{ ...base.rules[0]!, stopAction: { scope: 'RuleSet' } }, ...base.rules.slice(1), { name: 'secure-support', recipients: ['support@example.com'], tlsPolicy: 'Require', s3Action: { bucketName: 'bucket-5' } }] }).config,
    );
    expect(stopping.route('support+tag@example.com', false)).toMatchObject({ ok: true, rules: [{ name: 'exact' }] });
    // The Require rule after the stop never runs for support@, so it does not decide the TLS reply.
    expect(stopping.route('support@example.com', false)).toMatchObject({ ok: true, rules: [{ name: 'exact' }] });
    expect(stopping.rulesFor(['b@example.com', 'support@example.com'], false).map((r) => [r.name, r.recipients])).toEqual([
      ['exact', ['support@example.com']],
      ['domain', ['b@example.com']],
    ]);
  });
});
