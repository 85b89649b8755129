import { isIPv4, isIPv6 } from 'node:net';
import type { DkimResult, DmarcResult, SpfResult, VerdictStatus } from './verdicts.js';

export type { DkimResult, DmarcResult, SpfResult };

/**
 * The trace/authentication block SES prepends to the stored message (docs/ses-format.md#header-block): Return-Path, Received, the scan
 * verdicts (scan-enabled rules only), Received-SPF and Authentication-Results, CRLF throughout. The original DATA
 * follows it directly.
 *
 * Never produced: `X-SES-RECEIPT` and `X-SES-DKIM-SIGNATURE` are minted and signed with Amazon-held keys; a look-alike
 * would be a forgery nobody could verify, so a gateway's stored object simply lacks them.
 *
 * Authentication headers report only what the caller actually computed: an omitted `spf`/`dkim`/`dmarc` input
 * drops that method's line (and Received-SPF with `spf`); with none of them, Authentication-Results is omitted. A
 * gateway that has not checked must not claim `pass` — downstream filters trust this header. Its authserv-id names
 * the host that checked (the gateway's own name, `by`), never `amazonses.com`: a consumer that trusts SES's results
 * must not be led to trust a gateway's as SES's (docs/ses-format.md#authentication-results).
 */

export type ScanVerdict = Exclude<VerdictStatus, 'DISABLED'>;
/** At most this many `dkim=` lines: a sender controls how many signatures a message carries, the block stays bounded. */
export const MAX_DKIM_LINES = 10;

export interface HeaderBlockInput {
  /** Envelope MAIL FROM, bare; `""` for the null reverse-path (bounces), written `Return-Path: <>`. */
  mailFrom: string;
  /** The HELO/EHLO argument as the client sent it; with `clientIp`, absent for mail that did not come over SMTP. */
  helo?: string;
  clientIp?: string;
  /** Verified reverse-DNS name of the client; omit when unknown. */
  clientHostname?: string;
  /** The receiving host named in `by`: SES writes inbound-smtp.<region>.amazonaws.com, a gateway its own name. */
  byHost: string;
  messageId: string;
  /** RCPT TO addresses the rule matched, in SMTP order; the first is written in `for`. */
  recipients: readonly string[];
  receivedAt: Date;
  /** Present only when the rule is scan-enabled. */
  scan?: { spam: ScanVerdict; virus: ScanVerdict };
  /**
   * `domain` is the one whose record decided (SES names e.g. `_spf.google.com`, the include that matched).
   * `envelopeFrom`: the identity checked when it is not MAIL FROM — `postmaster@<HELO>` for the null reverse-path
   * (RFC 7208 §2.4).
   */
  spf?: { result: SpfResult; domain: string; envelopeFrom?: string };
  /** One entry per DKIM signature checked (the first MAX_DKIM_LINES written); `[]` (checked, unsigned) is written `dkim=none;`. */
  dkim?: readonly { result: DkimResult; domain: string }[];
  dmarc?: { result: DmarcResult; headerFrom: string };
  /** Authentication-Results' authserv-id; default `byHost`. Only a rebuild of SES's own block passes `amazonses.com`. */
  authservId?: string;
}

export class HeaderInjectionError extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field} ${problem}; refusing to write it into a header`);
    this.name = 'HeaderInjectionError';
  }
}

/**
 * Why `value` cannot go into a header field, or undefined when it can. Refuse rather than sanitize: rewriting a
 * HELO or MAIL FROM would make the trace lie, and the SMTP layer should answer 501 to such a command anyway. All
 * C0 controls and DEL are refused (a CR or LF would start a forged header; NUL and the rest break consumers);
 * non-ASCII UTF-8 is allowed (SMTPUTF8, RFC 6532).
 */
export function headerFieldProblem(value: string): string | undefined {
  if (/[\r\n]/.test(value)) return 'contains a line break (CR or LF)';
  if (/[\x00-\x1f\x7f]/.test(value)) return 'contains a control character';
  return undefined;
}

export function isHeaderFieldSafe(value: string): boolean {
  return headerFieldProblem(value) === undefined;
}

/**
 * True when DATA starting with these bytes would continue the block's last field: a first line that starts with a
 * space or tab is, to every header parser, a folded continuation of the field before it — here a verdict or the
 * Received trace. No RFC 5322 message starts so (it starts with a field, or an empty line when it has no header),
 * and SES stores DATA verbatim behind its block, so such DATA is refused rather than rewritten.
 */
export function continuesHeaderBlock(data: Uint8Array): boolean {
  return data.length > 0 && (data[0] === 0x20 || data[0] === 0x09);
}

/** Why DATA starting with these bytes cannot be stored behind a header block, with the fix; undefined when it can. */
export function dataStartProblem(head: Uint8Array): string | undefined {
  return continuesHeaderBlock(head) ? 'its first line starts with a space or tab, a header continuation with no header field before it; start the message with a header field or an empty line' : undefined;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad2 = (n: number) => String(n).padStart(2, '0');

/** `Tue, 23 Apr 2019 14:32:52 +0000 (UTC)`: always UTC, day zero-padded as SES does (`Fri, 04 Oct 2024`). */
export function formatReceivedDate(date: Date): string {
  if (Number.isNaN(date.getTime())) throw new RangeError('invalid date');
  const time = `${pad2(date.getUTCHours())}:${pad2(date.getUTCMinutes())}:${pad2(date.getUTCSeconds())}`;
  return `${DAYS[date.getUTCDay()]}, ${pad2(date.getUTCDate())} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()} ${time} +0000 (UTC)`;
}

/** Dual-stack sockets report IPv4 clients as `::ffff:a.b.c.d`; SES's trace shows them as plain IPv4. */
function normalizeIp(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  if (isIPv4(ip) || isIPv6(ip)) return ip;
  throw new RangeError(`clientIp "${ip}" is not an IP address`);
}

/**
 * Choices for the UNCONFIRMED Received variants (docs/ses-format.md#received-variants), following Postfix, which writes the same shape:
 * unknown rDNS ⇒ `from helo (unknown [ip])`; IPv6 ⇒ the RFC 5321 address literal `[IPv6:addr]` (Received-SPF's
 * `client-ip=` stays the bare address, as RFC 7208 writes it).
 */
function receivedValue(i: HeaderBlockInput, ip: string | undefined): string {
  // Mail that did not come over SMTP (replay) has no client to name: Received then starts at `by`, as a local
  // submission's does (RFC 5322 lets every clause of the trace field be absent).
  if (ip === undefined || i.helo === undefined) return [`by ${i.byHost} with local id ${i.messageId}`, ` for ${i.recipients[0]};`, ` ${formatReceivedDate(i.receivedAt)}`].join('\r\n');
  const literal = isIPv6(ip) ? `[IPv6:${ip}]` : `[${ip}]`;
  return [
    `from ${i.helo} (${i.clientHostname ?? 'unknown'} ${literal})`,
    ` by ${i.byHost} with SMTP id ${i.messageId}`,
    ` for ${i.recipients[0]};`,
    ` ${formatReceivedDate(i.receivedAt)}`,
  ].join('\r\n');
}

/**
 * Only the `pass` wording is observed; the others (UNCONFIRMED, docs/ses-format.md#authentication-results) borrow the phrasing common receivers
 * use, inside SES's `spfCheck:` comment.
 */
function spfExplanation(result: SpfResult, domain: string, ip: string): string {
  switch (result) {
    case 'pass':
      return `domain of ${domain} designates ${ip} as permitted sender`;
    case 'fail':
      return `domain of ${domain} does not designate ${ip} as permitted sender`;
    case 'softfail':
      return `domain of transitioning ${domain} does not designate ${ip} as permitted sender`;
    case 'neutral':
      return `${ip} is neither permitted nor denied by domain of ${domain}`;
    case 'none':
      return `domain of ${domain} does not designate permitted sender hosts`;
    case 'temperror':
      return `temporary error in processing during lookup of ${domain}`;
    case 'permerror':
      return `permanent error in processing during lookup of ${domain}`;
  }
}

function checkFields(i: HeaderBlockInput): void {
  const fields: Array<[string, string | undefined]> = [
    ['MAIL FROM', i.mailFrom],
    ['HELO', i.helo],
    ['client hostname', i.clientHostname],
    ['by host', i.byHost],
    ['message id', i.messageId],
    ['recipient', i.recipients[0]],
    ['SPF domain', i.spf?.domain],
    ['SPF envelope-from', i.spf?.envelopeFrom],
    ['authserv-id', i.authservId],
    ['DMARC header.from', i.dmarc?.headerFrom],
    ...(i.dkim ?? []).slice(0, MAX_DKIM_LINES).map((d): [string, string] => ['DKIM domain', d.domain]),
  ];
  for (const [field, value] of fields) {
    const problem = value === undefined ? undefined : headerFieldProblem(value);
    if (problem) throw new HeaderInjectionError(field, problem);
  }
}

/** The block as a string of CRLF-terminated fields, ready to prepend to the DATA bytes (encode as UTF-8). */
export function buildHeaderBlock(input: HeaderBlockInput): string {
  if (input.recipients.length === 0) throw new RangeError('no recipient: SES stores only mail a rule matched');
  checkFields(input);
  const ip = input.clientIp === undefined ? undefined : normalizeIp(input.clientIp);
  const fields = [`Return-Path: <${input.mailFrom}>`, `Received: ${receivedValue(input, ip)}`];
  if (input.scan) fields.push(`X-SES-Spam-Verdict: ${input.scan.spam}`, `X-SES-Virus-Verdict: ${input.scan.virus}`);

  const methods: string[] = [];
  if (input.spf) {
    if (ip === undefined || input.helo === undefined) throw new RangeError('an SPF result needs the SMTP client it was checked for');
    const { result, domain } = input.spf;
    const spf = `${result} (spfCheck: ${spfExplanation(result, domain, ip)}) client-ip=${ip}; envelope-from=${input.spf.envelopeFrom ?? input.mailFrom}; helo=${input.helo};`;
    fields.push(`Received-SPF: ${spf}`);
    methods.push(`spf=${spf}`);
  }
  if (input.dkim) {
    if (input.dkim.length === 0) methods.push('dkim=none;');
    for (const d of input.dkim.slice(0, MAX_DKIM_LINES)) methods.push(`dkim=${d.result} header.i=@${d.domain};`);
  }
  if (input.dmarc) methods.push(`dmarc=${input.dmarc.result} header.from=${input.dmarc.headerFrom};`);
  if (methods.length > 0) fields.push([`Authentication-Results: ${input.authservId ?? input.byHost};`, ...methods].join('\r\n '));

  return fields.map((f) => `${f}\r\n`).join('');
}
