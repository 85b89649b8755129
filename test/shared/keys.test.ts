import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { isMessageId, messageIdFromBytes, newMessageId, SETUP_NOTIFICATION_MESSAGE_ID } from '../../shared/ses/message-id.js';
import { objectKey, setupNotificationKey } from '../../shared/ses/object-key.js';
import { parseRecipientCondition, ruleMatchesRecipient, type RecipientCondition } from '../../shared/ses/recipients.js';

describe('object keys (docs/ses-format.md#object-key)', () => {
  it('reproduces every observed SES key', () => {
    // [prefix, messageId, objectKey] from real SES notifications.
    const observed: Array<[string, string, string]> = [
      ['', 'bs82kksd5uhl2b598fhhro1scu3d05a39id0gdg1', 'bs82kksd5uhl2b598fhhro1scu3d05a39id0gdg1'],
      ['emails/', 'dse8s7jhc9eg90tmimg1q2scsc14gvjvbbom6n81', 'emails/dse8s7jhc9eg90tmimg1q2scsc14gvjvbbom6n81'],
      ['mail', '0vfh5uual2mmckaeivd120n0eiatleuo9k79p8g1', 'mail/0vfh5uual2mmckaeivd120n0eiatleuo9k79p8g1'],
      ['email/produccion/inbox', 'bmql2tc8b4h90qte7gat7fdsq0opui6spk9o3fo1', 'email/produccion/inbox/bmql2tc8b4h90qte7gat7fdsq0opui6spk9o3fo1'],
    ];
    for (const [prefix, id, key] of observed) expect(objectKey(prefix, id)).toBe(key);
    expect(objectKey(undefined, 'x')).toBe('x');
  });
  it('keeps unconfirmed odd prefixes verbatim (documented choice)', () => {
    expect(objectKey('/', 'id')).toBe('/id');
    expect(objectKey('/in', 'id')).toBe('/in/id');
    expect(objectKey('a//b', 'id')).toBe('a//b/id');
  });
  it('names the setup notification object like a message (docs/ses-format.md#setup-notification-object)', () => {
    expect(SETUP_NOTIFICATION_MESSAGE_ID).toBe('AMAZON_SES_SETUP_NOTIFICATION');
    expect(setupNotificationKey('emails')).toBe('emails/AMAZON_SES_SETUP_NOTIFICATION');
    expect(setupNotificationKey('RootMail/')).toBe('RootMail/AMAZON_SES_SETUP_NOTIFICATION');
    expect(setupNotificationKey('')).toBe('AMAZON_SES_SETUP_NOTIFICATION');
  });
});

describe('message ids (docs/ses-format.md#message-id)', () => {
  const real = [
    'q041v1u3p6g5bust1o2se9of7vf685mtivi7ci01',
    'bmql2tc8b4h90qte7gat7fdsq0opui6spk9o3fo1',
    'lhne4tbq09c867b1ko1f3ho4fqfidcatruo26781',
    'bs82kksd5uhl2b598fhhro1scu3d05a39id0gdg1',
    'u9a6c5jkdgcoedc32ads509o2nqap9g0qiq2c601',
    '6bdll8sgc6tor30admesbtb077cb1e3fijp62no1',
  ];
  it('recognises real SES ids and refuses others', () => {
    for (const id of real) expect(isMessageId(id)).toBe(true);
    expect(isMessageId('bs82kksd5uhl2b598fhhro1scu3d05a39id0gdg2')).toBe(false); // last must be 1
    expect(isMessageId('bs82kksd5uhl2b598fhhro1scu3d05a39id0gdh1')).toBe(false); // 39th in 0 8 g o
    expect(isMessageId('BS82KKSD5UHL2B598FHHRO1SCU3D05A39ID0GDG1')).toBe(false);
    expect(isMessageId('AMAZON_SES_SETUP_NOTIFICATION')).toBe(false);
  });
  it('mints ids in the same format, every position random where SES varies', () => {
    const ids = Array.from({ length: 5000 }, newMessageId);
    for (const id of ids) {
      expect(id).toHaveLength(40);
      expect(isMessageId(id)).toBe(true);
    }
    expect(new Set(ids).size).toBe(ids.length);
    // Each of the first 38 positions takes (nearly) all 32 symbols; the 39th all four of 0/8/g/o.
    for (let pos = 0; pos < 38; pos++) expect(new Set(ids.map((id) => id[pos])).size).toBeGreaterThanOrEqual(30);
    expect(new Set(ids.map((id) => id[38]))).toEqual(new Set(['0', '8', 'g', 'o']));
  });
  it('derives ids in the same format from given bytes: the same bytes give the same id, the bytes are left as they were', () => {
    const digest = (i: number) => createHash('sha512').update(`message ${i}`).digest();
    const ids = Array.from({ length: 5000 }, (_, i) => messageIdFromBytes(digest(i)));
    for (const id of ids) expect(isMessageId(id)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (let pos = 0; pos < 38; pos++) expect(new Set(ids.map((id) => id[pos])).size).toBeGreaterThanOrEqual(30);
    expect(new Set(ids.map((id) => id[38]))).toEqual(new Set(['0', '8', 'g', 'o']));
    const bytes = digest(7);
    const copy = Buffer.from(bytes);
    expect(messageIdFromBytes(bytes)).toBe(ids[7]);
    expect(bytes.equals(copy)).toBe(true);
    expect(() => messageIdFromBytes(Buffer.alloc(38))).toThrow(/needs 39 bytes/);
  });
});

describe('recipient conditions (docs/ses-format.md#recipient-conditions)', () => {
  const cond = (s: string) => parseRecipientCondition(s) as RecipientCondition;
  it('an address matches itself and its +label variants, case-insensitively', () => {
    const c = [cond('user@example.com')];
    expect(ruleMatchesRecipient(c, 'user@example.com')).toBe(true);
    expect(ruleMatchesRecipient(c, 'User+news@Example.COM')).toBe(true);
    expect(ruleMatchesRecipient(c, 'user2@example.com')).toBe(false);
    expect(ruleMatchesRecipient(c, 'user@sub.example.com')).toBe(false);
  });
  it('a domain matches its mailboxes but not its subdomains (documented choice)', () => {
    const c = [cond('example.com')];
    expect(ruleMatchesRecipient(c, 'anyone@example.com')).toBe(true);
    expect(ruleMatchesRecipient(c, 'anyone@sub.example.com')).toBe(false);
    expect(ruleMatchesRecipient(c, 'anyone@badexample.com')).toBe(false);
  });
  it('.domain matches every subdomain, not the domain itself', () => {
    const c = [cond('.example.com')];
    expect(ruleMatchesRecipient(c, 'a@sub.example.com')).toBe(true);
    expect(ruleMatchesRecipient(c, 'a@deep.sub.example.com')).toBe(true);
    expect(ruleMatchesRecipient(c, 'a@example.com')).toBe(false);
    expect(ruleMatchesRecipient(c, 'a@notexample.com')).toBe(false);
  });
  it('no conditions match every recipient', () => {
    expect(ruleMatchesRecipient([], 'x@anything.example')).toBe(true);
  });
});
