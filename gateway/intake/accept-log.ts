import type { Logger } from '../runtime/log.js';
import type { SpooledRule } from '../spool/format.js';

/** How often the info-level summary of accepted mail is written while mail arrives. */
const SUMMARY_MS = 1_000;

/**
 * Accepted messages in the log: one line per message at debug, and at info a summary per second while mail arrives
 * (count, bytes, rules). A line per message at info cost a noticeable share of the accept path's CPU at full rate
 * (docs/performance.md) and said nothing an operator reads message by message; refusals stay one line each.
 */
export class AcceptLog {
  private count = 0;
  private bytes = 0;
  private readonly rules = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private since = 0;

  constructor(private readonly log: Logger) {}

  add(fields: Record<string, unknown>, spoolFile: string, bytes: number, rules: readonly SpooledRule[]): void {
    if (this.log.isLevelEnabled('debug')) {
      this.log.debug({ ...fields, spoolFile, bytes, rules: rules.map((r) => r.name), rcpts: rules.reduce((n, r) => n + r.recipients.length, 0) }, 'accepted');
    }
    if (this.count === 0) {
      this.since = Date.now();
      this.timer ??= setTimeout(() => this.flush(), SUMMARY_MS).unref();
    }
    this.count++;
    this.bytes += bytes;
    for (const r of rules) this.rules.set(r.name, (this.rules.get(r.name) ?? 0) + 1);
  }

  private flush(): void {
    this.timer = undefined;
    if (this.count === 0) return;
    this.log.info({ messages: this.count, bytes: this.bytes, seconds: Math.round((Date.now() - this.since) / 100) / 10, rules: Object.fromEntries(this.rules) }, 'messages accepted');
    this.count = 0;
    this.bytes = 0;
    this.rules.clear();
  }

  close(): void {
    clearTimeout(this.timer);
    this.flush();
  }
}
