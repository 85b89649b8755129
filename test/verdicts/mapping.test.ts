import { describe, expect, it } from 'vitest';
import { buildReceivedNotification } from '../../shared/notification/index.js';
import { dkimVerdict, dmarcVerdict, scanVerdict, spfVerdict } from '../../shared/ses/verdicts.js';

/** SES's verdicts from the results, as docs/ses-format.md#verdicts lists them. */
describe('SES verdicts from authentication and scan results', () => {
  it('SPF: pass PASS, fail FAIL, temperror PROCESSING_FAILED, no policy and the rest GRAY', () => {
    expect(spfVerdict('pass')).toBe('PASS');
    expect(spfVerdict('fail')).toBe('FAIL');
    expect(spfVerdict('temperror')).toBe('PROCESSING_FAILED');
    for (const r of ['none', 'neutral', 'softfail', 'permerror'] as const) expect(spfVerdict(r)).toBe('GRAY');
    expect(spfVerdict(undefined)).toBe('GRAY'); // no client to check (replay)
  });

  it('DKIM: one passing signature PASS, then a failing one FAIL, then temperror, else GRAY (unsigned included)', () => {
    expect(dkimVerdict(['fail', 'pass'])).toBe('PASS');
    expect(dkimVerdict(['permerror', 'fail'])).toBe('FAIL');
    expect(dkimVerdict(['permerror', 'temperror'])).toBe('PROCESSING_FAILED');
    expect(dkimVerdict(['permerror'])).toBe('GRAY');
    expect(dkimVerdict(['neutral', 'policy'])).toBe('GRAY');
    expect(dkimVerdict([])).toBe('GRAY');
  });

  it('DMARC: a failure is FAIL under quarantine and reject, GRAY under none, each with its policy; no record GRAY', () => {
    expect(dmarcVerdict('pass', 'reject')).toEqual({ status: 'PASS' });
    expect(dmarcVerdict('fail', 'reject')).toEqual({ status: 'FAIL', policy: 'reject' });
    expect(dmarcVerdict('fail', 'quarantine')).toEqual({ status: 'FAIL', policy: 'quarantine' });
    expect(dmarcVerdict('fail', 'none')).toEqual({ status: 'GRAY', policy: 'none' });
    expect(dmarcVerdict('none', undefined)).toEqual({ status: 'GRAY' });
    expect(dmarcVerdict('temperror', undefined)).toEqual({ status: 'PROCESSING_FAILED' });
    expect(dmarcVerdict(undefined, undefined)).toEqual({ status: 'PROCESSING_FAILED' });
  });

  it('scans: clean PASS, found FAIL, down or failing PROCESSING_FAILED, uncertain or not scanned GRAY', () => {
    expect(scanVerdict('clean')).toBe('PASS');
    expect(scanVerdict('found')).toBe('FAIL');
    expect(scanVerdict('failed')).toBe('PROCESSING_FAILED');
    expect(scanVerdict('uncertain')).toBe('GRAY');
    expect(scanVerdict('not-scanned')).toBe('GRAY');
  });

  it('the notification carries dmarcPolicy for a failure under p=none (GRAY), not for a pass or no record', () => {
    const input = {
      timestamp: new Date('2024-10-04T08:09:10.456Z'),
      processingTimeMillis: 5,
      source: 'a@sender.test',
      messageId: '4f2f8gu2t8fkov1aidn6vb92k10gsrp1doa8de01',
      recipients: ['b@example.com'],
      headerBlock: 'From: a@sender.test\r\n\r\n',
      action: { topicArn: 'arn:aws:sns:us-east-1:123456789012:t', bucketName: 'b' },
    };
    const v = { spam: 'DISABLED', virus: 'DISABLED', spf: 'PASS', dkim: 'GRAY' } as const;
    expect(buildReceivedNotification({ ...input, verdicts: { ...v, dmarc: 'GRAY' }, dmarcPolicy: 'none' }).receipt.dmarcPolicy).toBe('none');
    expect('dmarcPolicy' in buildReceivedNotification({ ...input, verdicts: { ...v, dmarc: 'GRAY' } }).receipt).toBe(false);
    expect('dmarcPolicy' in buildReceivedNotification({ ...input, verdicts: { ...v, dmarc: 'PASS' }, dmarcPolicy: 'reject' }).receipt).toBe(false);
  });
});

describe("scanners' answers", () => {
  it('spamd: Spam True/False; a non-zero status or a missing Spam line is a failure', async () => {
    const { parseSpamdReply } = await import('../../gateway/verdicts/spam.js');
    expect(parseSpamdReply('SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: True ; 1002.3 / 5.0\r\n\r\n')).toEqual({ outcome: 'found', detail: 'score 1002.3 / 5.0' });
    expect(parseSpamdReply('SPAMD/1.1 0 EX_OK\r\nSpam: False ; -1.0 / 5.0\r\n\r\n').outcome).toBe('clean');
    expect(parseSpamdReply('SPAMD/1.0 76 Bad header line: xyz\r\n\r\n')).toEqual({ outcome: 'failed', detail: 'spamd: 76 Bad header line: xyz' });
    expect(parseSpamdReply('SPAMD/1.1 0 EX_OK\r\n\r\n').outcome).toBe('failed');
    expect(parseSpamdReply('HTTP/1.1 400 Bad Request\r\n').outcome).toBe('failed');
  });

  it("clamd: OK clean, FOUND found, a heuristic match uncertain, ERROR (its size limit among them) a failure", async () => {
    const { parseClamdReply } = await import('../../gateway/verdicts/virus.js');
    expect(parseClamdReply('stream: OK\0')).toEqual({ outcome: 'clean' });
    expect(parseClamdReply('stream: Win.Test.EICAR_HDB-1 FOUND\0')).toEqual({ outcome: 'found', detail: 'Win.Test.EICAR_HDB-1' });
    expect(parseClamdReply('stream: Heuristics.Encrypted.Zip FOUND\0').outcome).toBe('uncertain');
    expect(parseClamdReply('INSTREAM size limit exceeded. ERROR\0')).toEqual({ outcome: 'failed', detail: 'clamd: INSTREAM size limit exceeded. ERROR' });
    expect(parseClamdReply('').outcome).toBe('failed');
  });
});
