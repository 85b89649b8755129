/** SES's verdict vocabulary, shared by the stored header block and the notification. */

/**
 * `PASS | FAIL | GRAY | PROCESSING_FAILED` are AWS's verdict set; `DISABLED` (spam/virus when the rule does not
 * scan) comes from the community type definitions only (UNCONFIRMED, docs/ses-format.md#verdicts) but consumers already expect it.
 */
export type VerdictStatus = 'PASS' | 'FAIL' | 'GRAY' | 'PROCESSING_FAILED' | 'DISABLED';

/** The sender domain's published DMARC policy; SES reports it only when DMARC fails. */
export type DmarcPolicy = 'none' | 'quarantine' | 'reject';
