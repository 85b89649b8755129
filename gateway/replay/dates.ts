/**
 * The dates a mail archive carries: the `Date:` header (RFC 5322, obsolete forms included) and the mbox `From `
 * line's asctime stamp. Both are parsed strictly enough that a misread never passes for a date.
 */

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** RFC 5322 obs-zone names, in minutes east of UTC. Military letters are unreliable (RFC 5322 says so): taken as UTC. */
const ZONES: Record<string, number> = { ut: 0, utc: 0, gmt: 0, z: 0, edt: -240, est: -300, cdt: -300, cst: -360, mdt: -360, mst: -420, pdt: -420, pst: -480 };

function zoneMinutes(zone: string | undefined): number | undefined {
  if (zone === undefined) return 0;
  const numeric = /^([+-])(\d\d)(\d\d)$/.exec(zone);
  if (numeric) {
    const [, sign, hh, mm] = numeric;
    if (Number(mm) > 59) return undefined;
    return (sign === '-' ? -1 : 1) * (Number(hh) * 60 + Number(mm));
  }
  const named = ZONES[zone.toLowerCase()];
  if (named !== undefined) return named;
  return /^[a-z]$/i.test(zone) ? 0 : undefined;
}

function build(year: number, month: string, day: string, hh: string, mm: string, ss: string | undefined, offsetMinutes: number): Date | undefined {
  const m = MONTHS.indexOf(month.toLowerCase());
  const d = Number(day);
  const h = Number(hh);
  const min = Number(mm);
  const s = Number(ss ?? '0');
  if (m < 0 || d < 1 || d > 31 || h > 23 || min > 59 || s > 60) return undefined;
  // 31 Feb and the like: Date.UTC would roll over into the next month.
  const day0 = new Date(Date.UTC(year, m, d));
  if (day0.getUTCMonth() !== m || day0.getUTCDate() !== d) return undefined;
  // A leap second (:60) is read as :59.
  return new Date(Date.UTC(year, m, d, h, min, Math.min(s, 59)) - offsetMinutes * 60_000);
}

/** Removes RFC 5322 comments (nested, with quoted-pairs), which dates carry as `(PDT)` and the like. */
function withoutComments(value: string): string {
  let out = '';
  let depth = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (depth > 0 && ch === '\\') i++;
    else if (ch === '(') depth++;
    else if (ch === ')' && depth > 0) depth--;
    else if (depth === 0) out += ch;
  }
  return out;
}

/**
 * A `Date:` header value → the instant, or undefined. `[Day,] DD Mon YYYY HH:MM[:SS] zone` with CFWS, obsolete
 * two- and three-digit years (RFC 5322 4.3: 00–49 → 20xx, 50–99 and three digits → 19xx) and obsolete zone names;
 * a missing zone is read as UTC.
 */
export function parseDateHeader(value: string): Date | undefined {
  const v = withoutComments(value).replace(/\s+/g, ' ').trim();
  const m = /^(?:[a-z]{3},? ?)?(\d{1,2}) ([a-z]{3})[a-z]* (\d{2,4}) (\d{1,2}):(\d{2})(?::(\d{2}))?(?: ([+-]\d{4}|[a-z]{1,5}))?$/i.exec(v);
  if (!m) return undefined;
  const [, day, month, yearText, hh, mm, ss, zone] = m;
  let year = Number(yearText);
  if (yearText!.length === 2) year += year < 50 ? 2000 : 1900;
  else if (yearText!.length === 3) year += 1900;
  const offset = zoneMinutes(zone);
  return offset === undefined ? undefined : build(year, month!, day!, hh!, mm!, ss, offset);
}

/**
 * The date of an mbox `From ` line (the text after the sender): asctime's `Www Mmm dd hh:mm:ss yyyy`, with the
 * variants mbox(5) lists — a numeric or named zone before the year, a numeric zone after it, two-digit years
 * (70–99 → 19xx, else 20xx), seconds left out — and whatever a writer appends after it. A stamp without a zone is
 * UTC: what RFC 4155 asks writers for, and what Python's mailbox and most delivery agents write.
 */
export function parseFromLineDate(text: string): Date | undefined {
  const m =
    /^(?:mon|tue|wed|thu|fri|sat|sun)\s+([a-z]{3})\s+(\d{1,2})\s+(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?\s+(?:([+-]\d{4})\s+|([a-z]{1,5})(?:\s+dst)?\s+)?(\d{4}|\d{2})(?:\s+([+-]\d{4}))?(?:\s|$)/i.exec(
      text.trim(),
    );
  if (!m) return undefined;
  const [, month, day, hh, mm, ss, zoneBefore, namedZone, yearText, zoneAfter] = m;
  let year = Number(yearText);
  if (yearText!.length === 2) year += year >= 70 ? 1900 : 2000;
  const offset = zoneMinutes(zoneBefore ?? zoneAfter ?? namedZone);
  return build(year, month!, day!, hh!, mm!.padStart(2, '0'), ss, offset ?? 0);
}

/** Receipt times outside this range are a writer's mistake, not a time: the next candidate is used. */
export function isPlausibleReceiptTime(at: Date, now = Date.now()): boolean {
  const t = at.getTime();
  return Number.isFinite(t) && t >= Date.UTC(1971, 0, 1) && t <= now + 24 * 3_600_000;
}
