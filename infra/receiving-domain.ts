import type { InfraSettings } from '../shared/config/infra.js';
import { inboundSmtpHost } from '../shared/ses/regions.js';
import { idOf } from './arns.js';
import { Route53Record, SesDomainDkim, SesDomainIdentity } from './aws.js';
import { Fn, type Construct } from './framework.js';

export interface DnsRecord {
  domain: string;
  name: string;
  type: string;
  value: string;
}

/**
 * A domain that receives through SES: its identity, the verification TXT, the MX to the region's inbound endpoint
 * and three DKIM CNAMEs — in Route 53 when a zone id is given, else listed for the user (output `dns_records`).
 * Its resources live directly in `scope` (`domain-<domain>`, `dkim-<domain>`, `dns-<domain>-<record>`).
 */
export class ReceivingDomain {
  readonly identity: SesDomainIdentity;
  readonly dkim?: SesDomainDkim;
  /** Records for the user's DNS provider (none when Route 53 holds them). */
  readonly unmanagedRecords: DnsRecord[] = [];

  constructor(scope: Construct, d: InfraSettings['domains'][number], region: string) {
    const id = idOf(d.domain);
    this.identity = new SesDomainIdentity(scope, `domain-${id}`, { domain: d.domain });
    const records: Array<{ key: string; name: string; type: string; value: string }> = [
      { key: 'verification', name: `_amazonses.${d.domain}`, type: 'TXT', value: this.identity.verificationToken },
    ];
    if (d.mx) records.push({ key: 'mx', name: d.domain, type: 'MX', value: `10 ${inboundSmtpHost(region)}` });
    if (d.dkim) {
      this.dkim = new SesDomainDkim(scope, `dkim-${id}`, { domain: this.identity.domain });
      for (let i = 0; i < 3; i++) {
        const token = Fn.element(this.dkim.dkimTokens, i) as string;
        records.push({ key: `dkim-${i}`, name: `${token}._domainkey.${d.domain}`, type: 'CNAME', value: `${token}.dkim.amazonses.com` });
      }
    }
    for (const rec of records) {
      if (d.route53ZoneId) {
        new Route53Record(scope, `dns-${id}-${rec.key}`, { zoneId: d.route53ZoneId, name: rec.name, type: rec.type, ttl: 600, records: [rec.value] });
      } else this.unmanagedRecords.push({ domain: d.domain, name: rec.name, type: rec.type, value: rec.value });
    }
  }
}
