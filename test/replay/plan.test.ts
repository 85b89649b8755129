/** What replay decides per message before the accept: envelope, receipt rules (SMTP's router), message id, time. */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addressesIn, recoverEnvelope, storedAddress } from '../../gateway/replay/envelope.js';
import { Planner, replayIdKey, replayMessageId } from '../../gateway/replay/plan.js';
import { ReplayProblem, type PreparedMessage } from '../../gateway/replay/source.js';
import { parseConfig } from '../../shared/config/index.js';
import { isMessageId } from '../../shared/ses/message-id.js';
import { tempDir } from '../support/files.js';
import { readArg, writeArchives, type Archives } from './helpers.js';

const config = parseConfig({
  region: 'us-east-1',
  accountId: '123456789012',
  ruleSetName: 'replay-test',
  rules: [
    { name: 'support', recipients: ['support@example.com'], tlsPolicy: 'Require', s3Action: { bucketName: 'mail', objectKeyPrefix: 'support' } },
    { name: 'sales', recipients: ['sales@example.com'], s3Action: { bucketName: 'mail', objectKeyPrefix: 'sales/' } },
    { name: 'inbox', recipients: ['example.com'], scanEnabled: true, s3Action: { bucketName: 'other-mail' } },
    { name: 'off', enabled: false, recipients: ['example.com'], s3Action: { bucketName: 'off' } },
  ],
}).config;

let dir: Awaited<ReturnType<typeof tempDir>>;
let a: Archives;
const mbox = new Map<string, PreparedMessage>();
const eml = new Map<string, PreparedMessage>();

beforeAll(async () => {
  dir = await tempDir('mailroom-replay-');
  a = await writeArchives(dir.path);
  const m = await readArg(join(a.dir, a.manifest.mboxrd.path));
  a.manifest.mboxrd.messages.forEach((e, i) => mbox.set(e.name, m.messages[i]!.prepared));
  for (const e of a.manifest.emldir.messages) eml.set(e.name, (await readArg(join(a.dir, e.path))).messages[0]!.prepared);
}, 120_000);

afterAll(async () => {
  await dir?.remove();
});

const plan = (m: PreparedMessage, o: Partial<ConstructorParameters<typeof Planner>[0]> = {}) => new Planner({ config, envelope: {}, timestamp: 'source', ...o }).plan(m);

describe('envelope', () => {
  it('MAIL FROM from Return-Path, recipients from X-Original-To (the RCPT TO before aliases), not Delivered-To', () => {
    const p = plan(mbox.get('plain')!);
    expect(p.accept).toMatchObject({ mailFrom: 'alice@sender.example', recipients: ['support@example.com'] });
    expect([p.mailFromSource, p.recipientsSource]).toEqual(['Return-Path', 'X-Original-To']);
  });

  it('Delivered-To when there is no X-Original-To; Return-Path <> is the null sender', () => {
    expect(plan(mbox.get('quoted')!).accept).toMatchObject({ mailFrom: 'bob@sender.example', recipients: ['sales@example.com'] });
    const e = recoverEnvelope(mbox.get('eightbit')!);
    expect(e.mailFrom).toBe('');
    expect(e.mailFromSource).toBe('Return-Path');
  });

  it('To and Cc when nothing recorded the envelope; IDN domains in A-label form; only routed recipients kept', () => {
    const e = recoverEnvelope(mbox.get('eightbit')!);
    expect(e.recipients).toEqual(['jörg@xn--bcher-kva.example', 'jane@example.com']);
    expect(plan(mbox.get('eightbit')!).accept.recipients).toEqual(['jane@example.com']);
    const multi = plan(mbox.get('multipart')!);
    expect(multi.accept.recipients).toEqual(['inbox@example.com', 'support@example.com']);
    expect(multi.recipientsSource).toBe('To and Cc');
  });

  it('the mbox From line sender when there is no Return-Path; the From header only as the last guess', () => {
    expect(plan(mbox.get('crlf')!)).toMatchObject({ accept: { mailFrom: 'someone@sender.example' }, mailFromSource: 'mbox From line' });
    expect(recoverEnvelope(eml.get('multipart')!)).toMatchObject({ mailFrom: 'carol@sender.example', mailFromSource: 'From header (no envelope sender recorded)' });
  });

  it('--from and --to win', () => {
    const p = plan(mbox.get('plain')!, { envelope: { from: '', to: ['sales@example.com'] } });
    expect(p.accept).toMatchObject({ mailFrom: '', recipients: ['sales@example.com'] });
    expect(p.accept.rules.map((r) => r.name)).toEqual(['sales', 'inbox']);
  });

  it('parses address lists as the notification does: quoted commas, comments, groups, no-address elements', () => {
    expect(addressesIn('"Doe, Jane" <jane@example.com>, bob@example.com (Bob), Team: a@example.com, b@example.com;, undisclosed-recipients:;')).toEqual([
      'jane@example.com',
      'bob@example.com',
      'a@example.com',
      'b@example.com',
    ]);
    expect(storedAddress('<info@пример.рф>')).toBe('info@xn--e1afmkfd.xn--p1ai');
    for (const bad of ['no-at-sign', '@example.com', 'a@', 'a b@example.com', 'a@example.com\r\nBcc: x@y']) expect(storedAddress(bad), bad).toBeUndefined();
  });
});

describe('a stored SES object', () => {
  it("takes MAIL FROM, the one recipient, the time and the original client from the stored block, and nothing from the DATA's own fields", () => {
    const stored: PreparedMessage = {
      ...mbox.get('plain')!,
      hints: {
        storedBlock: {
          length: 100,
          mailFrom: 'bounce@lists.example',
          messageId: 'q041v1u3p6g5bust1o2se9of7vf685mtivi7ci01',
          recipient: 'sales@example.com',
          receivedAt: new Date('2024-10-04T08:09:10Z'),
          byHost: 'inbound-smtp.us-east-1.amazonaws.com',
          client: { helo: 'mail.sender.example', hostname: 'mail.sender.example', ip: '192.0.2.10' },
          signedBySes: true,
        },
      },
      times: [{ at: new Date('2024-10-04T08:09:10Z'), from: 'Received (SES header block)' }],
    };
    const p = plan(stored);
    expect(p.accept).toMatchObject({
      mailFrom: 'bounce@lists.example',
      recipients: ['sales@example.com'],
      receivedAt: new Date('2024-10-04T08:09:10Z'),
      client: { ip: '192.0.2.10', hostname: 'mail.sender.example', helo: 'mail.sender.example', tls: false },
    });
    expect([p.mailFromSource, p.recipientsSource]).toEqual(['Return-Path of the stored header block', 'Received "for" of the stored header block (the only recipient it records)']);
    expect(plan(mbox.get('plain')!).accept.client).toBeUndefined();
  });
});

describe('receipt rules', () => {
  it('the rules SMTP would match, in rule-set order, disabled rules left out, TLS Require not applied to replay', () => {
    const p = plan(mbox.get('plain')!);
    expect(p.accept.rules.map((r) => [r.name, r.recipients])).toEqual([
      ['support', ['support@example.com']],
      ['inbox', ['support@example.com']],
    ]);
    expect(p.accept.rules[1]).toMatchObject({ scanEnabled: true, s3Action: { bucketName: 'other-mail' } });
  });

  it('--rule sends every message to that one rule, with all its recipients', () => {
    const p = plan(mbox.get('eightbit')!, { rule: 'sales' });
    expect(p.accept.rules).toEqual([{ name: 'sales', recipients: ['jörg@xn--bcher-kva.example', 'jane@example.com'], scanEnabled: false, s3Action: { bucketName: 'mail', objectKeyPrefix: 'sales/' } }]);
    expect(p.accept.recipients).toEqual(['jörg@xn--bcher-kva.example', 'jane@example.com']);
    expect(() => new Planner({ config, rule: 'nope', envelope: {}, timestamp: 'source' })).toThrow(/no receipt rule is named "nope"/);
  });

  it('a message no rule takes, or with no recipient at all, is unmatched, saying what to do', () => {
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as ReplayProblem;
      }
      throw new Error('no problem raised');
    };
    const none = err(() => plan(mbox.get('plain')!, { envelope: { to: ['x@elsewhere.example'] } }));
    expect(none).toMatchObject({ kind: 'unmatched', location: mbox.get('plain')!.location });
    expect(none.reason).toBe('matches no receipt rule: none takes any of its recipients (x@elsewhere.example, from --to); name the rule with --rule or the recipients with --to');
    const bare: PreparedMessage = { ...mbox.get('plain')!, headers: [] };
    expect(err(() => plan(bare)).reason).toMatch(/^has no recipient to route/);
  });
});

describe('message ids', () => {
  it('the same on every run, in SES shape, different for different source messages, even byte-identical ones', () => {
    const ids = [...mbox.values()].map((m) => plan(m, { rule: 'inbox', envelope: { to: ['a@example.com'] } }).accept.messageId);
    const again = [...mbox.values()].map((m) => new Planner({ config, rule: 'inbox', envelope: { to: ['a@example.com'] }, timestamp: 'now' }).plan(m).accept.messageId);
    expect(again).toEqual(ids);
    for (const id of ids) expect(isMessageId(id)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(mbox.get('twin1')!.contentTag).toBe(mbox.get('twin2')!.contentTag);
  });

  it('derived from the identity, the content and the account', () => {
    const key = replayIdKey('123456789012');
    const base = replayMessageId(key, 'mbox:/a:0', 'sha256:00');
    expect(replayMessageId(key, 'mbox:/a:0', 'sha256:00')).toBe(base);
    expect(replayMessageId(key, 'mbox:/a:1', 'sha256:00')).not.toBe(base);
    expect(replayMessageId(key, 'mbox:/a:0', 'sha256:01')).not.toBe(base);
    expect(replayMessageId(replayIdKey('210987654321'), 'mbox:/a:0', 'sha256:00')).not.toBe(base);
    // The separator keeps identity and content apart: no shifting of bytes between them gives the same id.
    expect(replayMessageId(key, 'mbox:/a:0s', 'ha256:00')).not.toBe(base);
  });
});

describe('receipt time', () => {
  it('--timestamp source takes the first plausible time; now leaves it to the accept path', () => {
    expect(plan(mbox.get('plain')!)).toMatchObject({ accept: { receivedAt: new Date('2004-01-03T01:05:34Z') }, timestampSource: 'mbox From line' });
    const now = plan(mbox.get('plain')!, { timestamp: 'now' });
    expect(now.accept.receivedAt).toBeUndefined();
    expect(now.timestampSource).toBe('now (--timestamp now)');
    const future: PreparedMessage = { ...eml.get('plain')!, times: [{ at: new Date('2099-01-01T00:00:00Z'), from: 'Date header' }, ...eml.get('plain')!.times.slice(1)] };
    expect(plan(future).timestampSource).toBe('file mtime');
    expect(plan({ ...future, times: [] }).timestampSource).toBe('now (the source gives no plausible time)');
  });
});
