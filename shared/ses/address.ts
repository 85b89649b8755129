import { domainToASCII } from 'node:url';

/**
 * An envelope address with its domain in ASCII (A-label) form: `info@пример.рф` → `info@xn--e1afmkfd.xn--p1ai`.
 *
 * smtp-server hands every address over with its domain decoded to Unicode, whatever the client sent; MTAs send
 * A-labels (Postfix, Exchange, Gmail), and receipt rules name domains as DNS does, in ASCII. So routing, the stored
 * envelope (`Return-Path`, `for`, the notification's `source` and `recipients`) and replies use the A-label form:
 * exactly what a non-SMTPUTF8 client sent, and the DNS form of what an SMTPUTF8 one sent. Local parts are left as
 * they are. A domain that does not convert (never the case for one smtp-server accepted) is kept.
 */
export function withAsciiDomain(address: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(address)) return address;
  const at = address.lastIndexOf('@');
  if (at < 0) return address;
  const ascii = domainToASCII(address.slice(at + 1));
  return ascii ? `${address.slice(0, at + 1)}${ascii}` : address;
}

/**
 * What makes two envelope recipients one mailbox: the A-label form, compared without case (as smtp-server compares a
 * repeated RCPT). `x@example。com`, `x@ｅxample.com` and `x@exa<U+00AD>mple.com` all map to `x@example.com`.
 */
export function recipientKey(address: string): string {
  return withAsciiDomain(address).toLowerCase();
}

/** Envelope recipients in A-label form, each mailbox once (its first spelling, in SMTP order). */
export function uniqueRecipients(addresses: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const a of addresses) {
    const key = recipientKey(a);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(withAsciiDomain(a));
  }
  return out;
}

/** The ASCII form of a domain written in Unicode, or undefined when it is not a domain (or is ASCII already). */
export function asciiDomainFor(domain: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(domain)) return undefined;
  return domainToASCII(domain) || undefined;
}
