import { addrSpecs, splitAddressList } from '../../shared/notification/common-headers.js';
import type { MailHeader } from '../../shared/notification/types.js';
import { withAsciiDomain } from '../../shared/ses/address.js';
import { headerFieldProblem } from '../../shared/ses/header-block.js';
import type { PreparedMessage } from './source.js';

/**
 * The SMTP envelope of a message that arrives without one. `--from` / `--to` win; otherwise what the source
 * recorded at delivery, most specific first:
 *
 * - MAIL FROM: the stored block's Return-Path (an SES object), the message's `Return-Path` (written at final
 *   delivery), the mbox `From ` line's sender (`MAILER-DAEMON` = the null sender), and only then — a guess — the
 *   first `From:` address; with none of them, the null reverse-path.
 * - Recipients: the stored block's `for` (an SES object: the one recipient it records), `X-Original-To` (Postfix:
 *   the RCPT TO as the sending MTA gave it, before aliases — what SES would have been given), `Delivered-To` (the
 *   mailbox it was delivered to), each the topmost field only (lower ones are earlier hops); else every `To` and
 *   `Cc` address.
 *
 * Addresses are parsed with the notification's address-list parser (quoted strings, comments, groups), domains
 * converted to their A-label form as SMTP's are, duplicates dropped regardless of case.
 */

export interface EnvelopeFlags {
  /** Stored form; "" for the null sender. */
  from?: string;
  to?: string[];
}

export interface RecoveredEnvelope {
  mailFrom: string;
  /** Where it came from, for `--dry-run`. */
  mailFromSource: string;
  recipients: string[];
  recipientsSource: string;
}

const fieldsNamed = (headers: readonly MailHeader[], name: string) => headers.filter((h) => h.name.toLowerCase() === name);

/** The addr-specs of an address-list value, in the stored form; elements that are no address are dropped. */
export function addressesIn(value: string): string[] {
  return splitAddressList(value)
    .flatMap(addrSpecs)
    .map(storedAddress)
    .filter((a): a is string => a !== undefined);
}

/** An address as SMTP would carry it, or undefined when it cannot be one (no `@`, whitespace, control bytes). */
export function storedAddress(address: string): string | undefined {
  const a = address.trim().replace(/^<(.*)>$/, '$1');
  const at = a.lastIndexOf('@');
  if (at <= 0 || at === a.length - 1 || headerFieldProblem(a) || /\s/.test(a.replace(/"[^"]*"/g, ''))) return undefined;
  return withAsciiDomain(a);
}

/** A Return-Path value: `<>` is the null sender (""), `<a@b>` the address; undefined when it is neither. */
function returnPath(value: string): string | undefined {
  if (/^\s*<\s*>\s*$/.test(value)) return '';
  return addressesIn(value)[0];
}

function dedupe(addresses: string[]): string[] {
  const seen = new Set<string>();
  return addresses.filter((a) => {
    const k = a.toLowerCase();
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export function recoverEnvelope(m: PreparedMessage, flags: EnvelopeFlags = {}): RecoveredEnvelope {
  const h = m.headers;
  const block = m.hints.storedBlock;

  let mailFrom: { value: string; source: string } | undefined;
  if (flags.from !== undefined) mailFrom = { value: flags.from, source: '--from' };
  else if (block) {
    const stored = block.mailFrom === '' ? '' : storedAddress(block.mailFrom);
    if (stored !== undefined) mailFrom = { value: stored, source: 'Return-Path of the stored header block' };
  }
  if (!mailFrom) {
    const rp = fieldsNamed(h, 'return-path')[0];
    const value = rp ? returnPath(rp.value) : undefined;
    if (value !== undefined) mailFrom = { value, source: 'Return-Path' };
  }
  if (!mailFrom && m.hints.fromLineSender !== undefined) {
    const s = m.hints.fromLineSender;
    const value = /^mailer-daemon$/i.test(s) ? '' : storedAddress(s);
    if (value !== undefined) mailFrom = { value, source: 'mbox From line' };
  }
  if (!mailFrom) {
    const from = fieldsNamed(h, 'from')[0];
    const value = from ? addressesIn(from.value)[0] : undefined;
    if (value !== undefined) mailFrom = { value, source: 'From header (no envelope sender recorded)' };
  }
  mailFrom ??= { value: '', source: 'none recorded: the null reverse-path' };

  let recipients: { value: string[]; source: string } | undefined;
  if (flags.to?.length) recipients = { value: flags.to, source: '--to' };
  else if (block) {
    const stored = storedAddress(block.recipient);
    if (stored) recipients = { value: [stored], source: 'Received "for" of the stored header block (the only recipient it records)' };
  }
  for (const name of ['x-original-to', 'delivered-to']) {
    if (recipients) break;
    const top = fieldsNamed(h, name)[0];
    const value = top ? addressesIn(top.value) : [];
    if (value.length) recipients = { value, source: top!.name };
  }
  if (!recipients) {
    const value = [...fieldsNamed(h, 'to'), ...fieldsNamed(h, 'cc')].flatMap((f) => addressesIn(f.value));
    if (value.length) recipients = { value, source: 'To and Cc' };
  }

  return {
    mailFrom: mailFrom.value,
    mailFromSource: mailFrom.source,
    recipients: dedupe(recipients?.value ?? []),
    recipientsSource: recipients?.source ?? 'none recorded',
  };
}
