const WORDS = /^[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*$/;
const ESCAPES: Record<string, string> = { Z: 'ZZ', '-': 'Zh', '.': 'Zd', _: 'Zu' };

/**
 * The Sid of the bucket policy statement that lets SES put for one rule: alphanumeric (what every AWS policy
 * accepts) and distinct for every pair of names SES accepts. Lowercase words joined by "-" read as CamelCase
 * (`catch-all` → `CatchAll`; the capitals mark where a word began, so the name can be read back). Any other name is
 * written as "x" + the name with Z, "-", "." and "_" as ZZ, Zh, Zd and Zu (`support.v2` → `xsupportZdv2`): it starts
 * lowercase, so it can be neither a CamelCase form nor another escaped name.
 */
export function sesPutSid(ruleName: string): string {
  const part = WORDS.test(ruleName)
    ? ruleName
        .split('-')
        .map((w) => w[0]!.toUpperCase() + w.slice(1))
        .join('')
    : 'x' + [...ruleName].map((c) => ESCAPES[c] ?? c).join('');
  return `AllowSESPutsForRule${part}`;
}
