import type { Readable } from 'node:stream';
import { domainToASCII } from 'node:url';
import { arc, dkimVerify, dmarc, spf, type DKIMResult, type ARCData, type DKIMVerifyResult, type DNSResolver } from 'mailauth';
import type { DkimResult, DmarcPolicy, DmarcResult, SpfResult } from '../../shared/ses/verdicts.js';
import type { RecordType, ResolveFunction } from './dns.js';

/**
 * SPF, DKIM and DMARC (and ARC, which DMARC may take into account) for one message, with mailauth's checks and the
 * gateway's resolver (docs/ses-format.md#authentication-results). The results are RFC 8601's, ready for the header
 * block; shared/ses/verdicts.ts maps them to SES's verdicts.
 */

/** A message's authentication results, as kept with it (verdicts.ts) and written into every copy's header block. */
export interface AuthResults {
  /** Absent when there was no SMTP client to check (a replayed message). */
  spf?: { result: SpfResult; domain: string; envelopeFrom: string };
  /** One per signature, in the message's order; `domain` absent when the signature names none usable. `[]`: unsigned. */
  dkim: Array<{ result: DkimResult; domain?: string }>;
  /** Absent when the message has no single From domain to check. */
  dmarc?: { result: DmarcResult; headerFrom: string; policy?: DmarcPolicy };
  /** ARC chain validation (none, pass, fail): DMARC's input, not written in SES's block. */
  arc?: string;
}

export interface AuthEnvelope {
  /** "" for the null reverse-path: SPF then checks postmaster@<HELO> (RFC 7208 §2.4). */
  mailFrom: string;
  helo?: string;
  clientIp?: string;
}

/**
 * A sender chooses how many DKIM signatures (and ARC sets) a message carries, each a key lookup — on its own name
 * servers, as slow as it likes. Past this many key lookups a message's further signatures are not looked up (they
 * get permerror: no key).
 */
export const MAX_KEY_LOOKUPS = 10;

/** A domain as it may stand in a header value: LDH labels (and `_`), ASCII; anything else is not written. */
function headerDomain(domain: string | undefined): string | undefined {
  if (!domain) return undefined;
  const ascii = domainToASCII(domain.trim().replace(/\.$/, ''));
  return /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_][a-z0-9_-]{0,62})*$/i.test(ascii) ? ascii.toLowerCase() : undefined;
}

/**
 * mailauth's DKIM result in RFC 8601 terms. A body hash that does not match is `fail`: the signature did not verify
 * (RFC 6376 §6.3, PERMFAIL "body hash did not verify"), where mailauth, like Gmail, says `neutral`. A missing or
 * unusable key is `permerror` (RFC 6376 PERMFAIL "no key for signature"), which SES has been seen writing.
 */
function dkimResult(r: DKIMResult): DkimResult {
  const { result, comment } = r.status;
  switch (result) {
    case 'pass':
    case 'fail':
    case 'policy':
    case 'temperror':
    case 'permerror':
      return result;
    case 'temperr':
      return 'temperror';
    case 'neutral':
      if (comment === 'body hash did not verify') return 'fail';
      if (comment === 'expired' || comment === 'invalid expiration') return 'neutral';
      return 'permerror';
    default:
      return 'permerror';
  }
}

const SPF_RESULTS = new Set<SpfResult>(['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror']);
const DMARC_POLICIES = new Set<DmarcPolicy>(['none', 'quarantine', 'reject']);

/**
 * Authenticates `message` (the DATA as received). `resolve` is the gateway's resolver; lookups beyond the key-lookup
 * bound are refused per message. Throws only when the message itself could not be read (a spool error: the delivery
 * fails and is retried); a check that fails in any other way gives temperror, the SES verdict PROCESSING_FAILED.
 */
export async function authenticateMessage(message: Buffer | Readable, envelope: AuthEnvelope, resolve: ResolveFunction): Promise<AuthResults> {
  let keyLookups = 0;
  const resolver = (name: string, type: string) => {
    if (/\._domainkey\./i.test(name) && ++keyLookups > MAX_KEY_LOOKUPS) {
      return Promise.reject(Object.assign(new Error(`more than ${MAX_KEY_LOOKUPS} key lookups for one message`), { code: 'ENOTFOUND' }));
    }
    return resolve(name, type as RecordType);
  };
  // mailauth's hook is typed for TXT answers only; it hands every answer to the checks unchanged.
  const hook = resolver as unknown as DNSResolver;

  let readError: Error | undefined;
  if (!Buffer.isBuffer(message)) message.once('error', (err) => (readError = err));
  let dkim: DKIMVerifyResult | undefined;
  try {
    dkim = await dkimVerify(message, { resolver: hook });
  } catch {
    // mailauth could not take the message apart (not a spool error, checked below): its DKIM and DMARC are unknown.
  }
  if (readError) throw readError;

  const results: AuthResults = {
    dkim: dkim
      ? dkim.results.filter((r) => r.status.result !== 'none').map((r) => ({ result: dkimResult(r), ...(headerDomain(r.signingDomain) ? { domain: headerDomain(r.signingDomain)! } : {}) }))
      : [{ result: 'temperror' }],
  };

  let spfPassDomain: string | undefined;
  if (envelope.clientIp && envelope.helo !== undefined) {
    const identity = spfIdentity(envelope);
    try {
      const r = await spf({ sender: envelope.mailFrom || identity.envelopeFrom, ip: envelope.clientIp, helo: envelope.helo, resolver: hook });
      const result = SPF_RESULTS.has(r.status.result as SpfResult) ? (r.status.result as SpfResult) : 'temperror';
      results.spf = { result, ...identity };
      if (result === 'pass') spfPassDomain = r.domain;
    } catch {
      results.spf = { result: 'temperror', ...identity };
    }
  }
  if (!dkim) return results;

  let arcResult;
  try {
    if (dkim.arc?.chain) {
      arcResult = await arc(dkim.arc as ARCData, { resolver: hook });
      results.arc = arcResult.status.result;
    }
  } catch {
    results.arc = 'temperror';
  }

  const from = dkim.headerFrom.length === 1 ? headerDomain(dkim.headerFrom[0]!.slice(dkim.headerFrom[0]!.lastIndexOf('@') + 1)) : undefined;
  if (from) {
    try {
      const r = await dmarc({
        headerFrom: dkim.headerFrom[0]!,
        spfDomains: spfPassDomain ? [spfPassDomain] : [],
        dkimDomains: dkim.results.filter((d) => d.status.result === 'pass').map((d) => ({ id: d.id, domain: d.signingDomain, aligned: d.status.aligned, underSized: d.status.underSized })),
        ...(arcResult ? { arcResult } : {}),
        resolver: hook,
      });
      if (r) {
        const result = (['pass', 'fail', 'none', 'temperror', 'permerror'] as const).find((x) => x === r.status.result) ?? 'temperror';
        const policy = DMARC_POLICIES.has(r.policy as DmarcPolicy) ? (r.policy as DmarcPolicy) : result === 'fail' ? 'none' : undefined;
        results.dmarc = { result, headerFrom: from, ...(policy ? { policy } : {}) };
      }
    } catch {
      results.dmarc = { result: 'temperror', headerFrom: from };
    }
  }
  return results;
}

/** The SPF identity: MAIL FROM's domain, or for the null reverse-path postmaster@<HELO> (RFC 7208 §2.4). */
function spfIdentity(envelope: AuthEnvelope): { domain: string; envelopeFrom: string } {
  if (envelope.mailFrom) return { domain: envelope.mailFrom.slice(envelope.mailFrom.lastIndexOf('@') + 1).toLowerCase(), envelopeFrom: envelope.mailFrom };
  const helo = (envelope.helo ?? '').toLowerCase();
  return { domain: helo, envelopeFrom: `postmaster@${helo}` };
}
