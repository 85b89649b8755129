import { Readable } from 'node:stream';
import type { GatewaySettings } from '../../shared/config/gateway.js';
import type { HeaderBlockInput } from '../../shared/ses/header-block.js';
import { dkimVerdict, dmarcVerdict, scanVerdict, spfVerdict, type DmarcPolicy, type ScanOutcome, type VerdictStatus } from '../../shared/ses/verdicts.js';
import type { Logger } from '../runtime/log.js';
import type { MessageEnvelope, SpooledRule } from '../spool/format.js';
import { authenticateMessage, type AuthResults } from './auth.js';
import { CachingResolver } from './dns.js';
import type { ScanInput, ScanResult } from './scanner-connection.js';
import { Rspamd, Spamd, type SpamScanner } from './spam.js';
import type { VerdictStore } from './store.js';
import { Clamd } from './virus.js';

/**
 * A message's verdicts (docs/ses-format.md#verdicts), computed once — after its 250, by the first delivery that needs
 * them, before anything is stored — and kept with its spool file's jobs (store.ts), so every rule and every retry
 * writes the same ones.
 */
export interface MessageVerdicts {
  v: 1;
  /** When they were computed (ISO 8601). */
  at: string;
  /** SPF, DKIM, DMARC: absent when gateway.authentication was off. */
  auth?: AuthResults;
  /** Spam and virus: present when a rule of the message scans; `not-scanned` where no scanner is configured. */
  scan?: { spam: ScanOutcome; virus: ScanOutcome };
}

/** What a delivery knows of one spooled message. */
export interface VerdictSubject {
  /** The spool file holding it: its verdicts live and go with the file. */
  fileId: string;
  envelope: MessageEnvelope;
  /** Every rule the message matched (the spool record's), not only the delivering job's. */
  rules: readonly SpooledRule[];
  /** Its DATA: in memory (a batch entry), or a fresh stream from the spool for each reader. */
  data: Buffer | { size: number; open(): Readable };
}

const WARN_EVERY_MS = 60_000;

/**
 * Computes and keeps verdicts (gateway.authentication, gateway.dns, gateway.scan). One per delivery process; absent
 * (`fromSettings` gives undefined) when nothing is configured, and the worker then writes GRAY as before, at no cost.
 */
export class Verdicts {
  /** Computations in flight in this process, by file and message: concurrent jobs of one message share one. */
  private readonly computing = new Map<string, Promise<MessageVerdicts>>();
  private lastWarned = 0;
  private unwarned = 0;

  constructor(
    private readonly store: VerdictStore,
    private readonly log: Logger,
    private readonly checks: { resolver?: CachingResolver; spam?: SpamScanner; virus?: Clamd },
  ) {}

  static fromSettings(settings: Pick<GatewaySettings, 'dns' | 'authentication' | 'scan'>, store: () => VerdictStore, log: Logger): Verdicts | undefined {
    const { spamd, rspamd, clamd } = settings.scan;
    if (!settings.authentication.enabled && !spamd && !rspamd && !clamd) return undefined;
    return new Verdicts(store(), log, {
      ...(settings.authentication.enabled ? { resolver: new CachingResolver(settings.dns) } : {}),
      ...(spamd ? { spam: new Spamd(spamd) } : rspamd ? { spam: new Rspamd(rspamd) } : {}),
      ...(clamd ? { virus: new Clamd(clamd) } : {}),
    });
  }

  get resolver(): CachingResolver | undefined {
    return this.checks.resolver;
  }

  /** The message's verdicts: those kept for it, else computed now and kept (the first kept wins); undefined when none apply. */
  async of(subject: VerdictSubject): Promise<MessageVerdicts | undefined> {
    const scans = subject.rules.some((r) => r.scanEnabled);
    if (!this.checks.resolver && !scans) return undefined;
    const id = subject.envelope.messageId;
    const key = `${subject.fileId}/${id}`;
    let pending = this.computing.get(key);
    if (!pending) {
      pending = (async () => (await this.store.get(subject.fileId, id)) ?? this.store.keepFirst(subject.fileId, id, await this.compute(subject, scans)))().finally(() => this.computing.delete(key));
      this.computing.set(key, pending);
    }
    return pending;
  }

  /** The spool file is released: its verdicts are no longer needed. Never fails the release (they expire anyway). */
  async release(fileId: string): Promise<void> {
    await this.store.drop(fileId).catch((err: Error) => this.log.warn({ spoolFile: fileId, err: err.message }, 'could not delete the verdicts of a released spool file; they expire by themselves'));
  }

  stop(): void {
    this.checks.resolver?.cancel();
  }

  private async compute(subject: VerdictSubject, scans: boolean): Promise<MessageVerdicts> {
    const { envelope, data } = subject;
    const input: ScanInput = Buffer.isBuffer(data) ? { size: data.length, open: () => bufferStream(data) } : data;
    const started = Date.now();
    const authenticate = async (resolver: CachingResolver) => {
      // A spool stream that a check stops reading early is closed here, never left holding its descriptor.
      const message = Buffer.isBuffer(data) ? data : data.open();
      try {
        return await authenticateMessage(message, { mailFrom: envelope.mailFrom, ...(envelope.helo !== undefined ? { helo: envelope.helo } : {}), ...(envelope.clientIp ? { clientIp: envelope.clientIp } : {}) }, resolver.resolve);
      } finally {
        if (!Buffer.isBuffer(message)) message.destroy();
      }
    };
    const [auth, spam, virus] = await Promise.all([
      this.checks.resolver ? authenticate(this.checks.resolver) : undefined,
      scans && this.checks.spam
        ? this.checks.spam.scan(input, { messageId: envelope.messageId, mailFrom: envelope.mailFrom, ...(envelope.helo !== undefined ? { helo: envelope.helo } : {}), ...(envelope.clientIp ? { clientIp: envelope.clientIp } : {}), recipients: recipientsOf(subject.rules), byHost: envelope.byHost })
        : undefined,
      scans && this.checks.virus ? this.checks.virus.scan(input) : undefined,
    ]);
    for (const [scanner, r] of [['spam', spam], ['virus', virus]] as const) if (r?.outcome === 'failed') this.warnScanner(scanner, envelope.messageId, r);
    const verdicts: MessageVerdicts = {
      v: 1,
      at: new Date().toISOString(),
      ...(auth ? { auth } : {}),
      ...(scans ? { scan: { spam: spam?.outcome ?? 'not-scanned', virus: virus?.outcome ?? 'not-scanned' } } : {}),
    };
    this.log.debug({ messageId: envelope.messageId, ms: Date.now() - started, ...statuses(verdicts), ...(spam?.detail ? { spam: spam.detail } : {}), ...(virus?.detail ? { virus: virus.detail } : {}) }, 'verdicts computed');
    return verdicts;
  }

  /** A scanner that is down fails every message: one line, then at most one a minute with the count since. */
  private warnScanner(scanner: 'spam' | 'virus', messageId: string, r: ScanResult): void {
    if (Date.now() - this.lastWarned < WARN_EVERY_MS) return void this.unwarned++;
    this.log.warn({ messageId, scanner, err: r.detail, ...(this.unwarned > 0 ? { sinceLastLine: this.unwarned } : {}) }, 'scanner could not scan the message: its verdict is PROCESSING_FAILED and the message is delivered (repeats are counted, at most one line a minute)');
    this.lastWarned = Date.now();
    this.unwarned = 0;
  }
}

/** A fresh one-chunk stream of a message in memory, for each reader. */
function bufferStream(data: Buffer): Readable {
  return Readable.from([data], { objectMode: false });
}

function recipientsOf(rules: readonly SpooledRule[]): string[] {
  return [...new Set(rules.flatMap((r) => r.recipients))];
}

/** The five statuses, for logs. */
function statuses(v: MessageVerdicts): Record<string, VerdictStatus> {
  const n = notificationVerdicts(v, { scanEnabled: v.scan !== undefined });
  return { spfVerdict: n.verdicts.spf, dkimVerdict: n.verdicts.dkim, dmarcVerdict: n.verdicts.dmarc, spamVerdict: n.verdicts.spam, virusVerdict: n.verdicts.virus };
}

/**
 * The verdict fields of one rule's header block (docs/ses-format.md#header-block): the scan verdicts for a rule that
 * scans (GRAY when nothing was scanned), and the authentication results that were computed — Received-SPF and spf=
 * only with a client to check, dkim= per signature that names a domain (dkim=none when unsigned), dmarc= when there
 * was a From domain.
 */
export function headerBlockVerdicts(v: MessageVerdicts | undefined, rule: Pick<SpooledRule, 'scanEnabled'>): Pick<HeaderBlockInput, 'scan' | 'spf' | 'dkim' | 'dmarc'> {
  const out: Pick<HeaderBlockInput, 'scan' | 'spf' | 'dkim' | 'dmarc'> = {};
  if (rule.scanEnabled) out.scan = { spam: scanVerdict(v?.scan?.spam ?? 'not-scanned'), virus: scanVerdict(v?.scan?.virus ?? 'not-scanned') };
  const auth = v?.auth;
  if (!auth) return out;
  if (auth.spf) out.spf = { result: auth.spf.result, domain: auth.spf.domain, ...(auth.spf.envelopeFrom !== undefined ? { envelopeFrom: auth.spf.envelopeFrom } : {}) };
  const named = auth.dkim.filter((d): d is { result: (typeof d)['result']; domain: string } => d.domain !== undefined);
  if (auth.dkim.length === 0 || named.length > 0) out.dkim = named;
  if (auth.dmarc) out.dmarc = { result: auth.dmarc.result, headerFrom: auth.dmarc.headerFrom };
  return out;
}

/**
 * The notification's verdicts for one rule (docs/ses-format.md#verdicts): spam and virus DISABLED for a rule that
 * does not scan, GRAY where nothing was scanned; SPF, DKIM and DMARC GRAY when authentication was off; dmarcPolicy
 * with a DMARC failure.
 */
export function notificationVerdicts(
  v: MessageVerdicts | undefined,
  rule: Pick<SpooledRule, 'scanEnabled'>,
): { verdicts: { spam: VerdictStatus; virus: VerdictStatus; spf: VerdictStatus; dkim: VerdictStatus; dmarc: VerdictStatus }; dmarcPolicy?: DmarcPolicy } {
  const spam = rule.scanEnabled ? scanVerdict(v?.scan?.spam ?? 'not-scanned') : 'DISABLED';
  const virus = rule.scanEnabled ? scanVerdict(v?.scan?.virus ?? 'not-scanned') : 'DISABLED';
  const auth = v?.auth;
  if (!auth) return { verdicts: { spam, virus, spf: 'GRAY', dkim: 'GRAY', dmarc: 'GRAY' } };
  const dmarc = dmarcVerdict(auth.dmarc?.result, auth.dmarc?.policy);
  return {
    verdicts: { spam, virus, spf: spfVerdict(auth.spf?.result), dkim: dkimVerdict(auth.dkim.map((d) => d.result)), dmarc: dmarc.status },
    ...(dmarc.policy ? { dmarcPolicy: dmarc.policy } : {}),
  };
}
