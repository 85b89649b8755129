import { BlockList, isIP } from 'node:net';
import { parseCidr } from '../../shared/config/gateway.js';

/**
 * A set of IPv4/IPv6 networks written as CIDRs ("192.0.2.0/24", "2001:db8::/32") or single addresses. Backed by
 * node:net's BlockList, so matching is done by the runtime, not by string compares. An IPv4 client seen through a
 * dual-stack listener (`::ffff:192.0.2.1`) matches its IPv4 entry.
 */
export class AddressSet {
  private readonly list = new BlockList();
  readonly size: number;

  constructor(entries: readonly string[]) {
    for (const e of entries) {
      const parsed = parseCidr(e);
      // The config schema refused bad entries already; this guards settings built in code.
      if ('error' in parsed) throw new Error(`"${e}" ${parsed.error}`);
      this.list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    }
    this.size = entries.length;
  }

  has(address: string): boolean {
    if (this.size === 0) return false;
    const a = plainAddress(address);
    const family = isIP(a);
    return family !== 0 && this.list.check(a, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/** `::ffff:a.b.c.d` → `a.b.c.d`; everything else unchanged. */
export function plainAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}
