/** SES's verdict vocabulary, shared by the stored header block and the notification (docs/ses-format.md#verdicts). */

/**
 * `PASS | FAIL | GRAY | PROCESSING_FAILED` are AWS's verdict set; `DISABLED` (spam/virus when the rule does not
 * scan) comes from the community type definitions only (UNCONFIRMED, docs/ses-format.md#verdicts) but consumers already expect it.
 */
export type VerdictStatus = 'PASS' | 'FAIL' | 'GRAY' | 'PROCESSING_FAILED' | 'DISABLED';

/** The sender domain's published DMARC policy; SES reports it only when DMARC fails. */
export type DmarcPolicy = 'none' | 'quarantine' | 'reject';

/** RFC 8601 result vocabularies, as written in Received-SPF and Authentication-Results (docs/ses-format.md#authentication-results). */
export type SpfResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror';
export type DkimResult = 'pass' | 'fail' | 'neutral' | 'none' | 'policy' | 'temperror' | 'permerror';
export type DmarcResult = 'pass' | 'fail' | 'none' | 'temperror' | 'permerror';

/**
 * spfVerdict from the SPF result (docs/ses-format.md#verdicts): PASS and FAIL as documented; GRAY is documented for
 * "no SPF policy" (none) and chosen for neutral, softfail (the domain asked receivers not to act on it alone) and
 * permerror (a broken record, as the observed DKIM permerror → GRAY); PROCESSING_FAILED for temperror ("DNS queries
 * are failing"). No client to check (replay): GRAY.
 */
export function spfVerdict(result: SpfResult | undefined): VerdictStatus {
  switch (result) {
    case 'pass':
      return 'PASS';
    case 'fail':
      return 'FAIL';
    case 'temperror':
      return 'PROCESSING_FAILED';
    default:
      return 'GRAY';
  }
}

/**
 * dkimVerdict over every signature (docs/ses-format.md#verdicts): PASS when one passes, else FAIL when one failed
 * verification, else PROCESSING_FAILED when a key lookup failed for now (temperror), else GRAY — unsigned (documented)
 * or signatures that could not be checked (permerror, as observed; neutral, policy).
 */
export function dkimVerdict(results: readonly DkimResult[]): VerdictStatus {
  if (results.includes('pass')) return 'PASS';
  if (results.includes('fail')) return 'FAIL';
  if (results.includes('temperror')) return 'PROCESSING_FAILED';
  return 'GRAY';
}

/**
 * dmarcVerdict and dmarcPolicy (docs/ses-format.md#verdicts): PASS; a failure under `p=quarantine` or `p=reject` is
 * FAIL, under `p=none` GRAY (documented: "failed … and the sending domain … uses the p=none policy"); no DMARC record
 * is GRAY; temperror, or no single From domain to check, PROCESSING_FAILED. dmarcPolicy accompanies every failure.
 */
export function dmarcVerdict(result: DmarcResult | undefined, policy: DmarcPolicy | undefined): { status: VerdictStatus; policy?: DmarcPolicy } {
  switch (result) {
    case 'pass':
      return { status: 'PASS' };
    case 'fail': {
      const p = policy ?? 'none';
      return { status: p === 'none' ? 'GRAY' : 'FAIL', policy: p };
    }
    case 'none':
      return { status: 'GRAY' };
    default:
      return { status: 'PROCESSING_FAILED' };
  }
}

/** What a spam or virus scanner concluded, before SES's names. */
export type ScanOutcome = 'clean' | 'found' | 'uncertain' | 'not-scanned' | 'failed';

/**
 * spamVerdict / virusVerdict and the X-SES-*-Verdict values (docs/ses-format.md#verdicts): clean PASS, found FAIL,
 * uncertain (rspamd's greylist, a heuristic virus match) GRAY, no scanner configured or a message over the scanner's
 * size limit GRAY, a scanner that is down, times out or answers with an error PROCESSING_FAILED.
 */
export function scanVerdict(outcome: ScanOutcome): Exclude<VerdictStatus, 'DISABLED'> {
  switch (outcome) {
    case 'clean':
      return 'PASS';
    case 'found':
      return 'FAIL';
    case 'failed':
      return 'PROCESSING_FAILED';
    default:
      return 'GRAY';
  }
}
