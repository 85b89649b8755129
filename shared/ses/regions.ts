/**
 * Regions with an SES receiving endpoint (inbound-smtp.<region>.amazonaws.com).
 *
 * The 2022 Developer Guide lists us-east-1, us-west-2 and eu-west-1; AWS has added receiving regions since and the
 * current list lives only in the General Reference (UNCONFIRMED, docs/ses-format.md#receiving-regions). The default below is the documented three
 * plus the regions AWS announced later that we could corroborate; configs override it with `receivingRegions`
 * rather than waiting for a release.
 */
export const DEFAULT_RECEIVING_REGIONS: readonly string[] = [
  'us-east-1',
  'us-east-2',
  'us-west-1',
  'us-west-2',
  'ca-central-1',
  'eu-west-1',
  'eu-west-2',
  'eu-central-1',
  'ap-northeast-1',
  'ap-southeast-1',
  'ap-southeast-2',
];

/** The MX target for a receiving region. */
export function inboundSmtpHost(region: string): string {
  return `inbound-smtp.${region}.amazonaws.com`;
}
