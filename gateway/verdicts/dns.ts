import { promises as dns } from 'node:dns';
import type { GatewaySettings } from '../../shared/config/gateway.js';

/** The record types the checks ask for (SPF: TXT, A, AAAA, MX, PTR; DKIM, DMARC, ARC: TXT). */
export type RecordType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'PTR';

/** What mailauth's `resolver` hook is: dns.promises.resolve's shape, errors carrying Node's DNS codes. */
export type ResolveFunction = (name: string, type: RecordType) => Promise<unknown[]>;

/** Answers that say the record is not there: cached like answers, and never a DNS failure. */
const ABSENT = new Set(['ENOTFOUND', 'ENODATA']);
/** After this many timeouts in a row (no answer between them), queries fail at once for a while. */
const TIMEOUTS_BEFORE_FAIL_FAST = 5;

interface Cached {
  expires: number;
  answer?: unknown[];
  /** ENOTFOUND or ENODATA. */
  absent?: string;
}

function dnsError(code: string, type: RecordType, name: string): Error {
  return Object.assign(new Error(`query${type} ${code} ${name}`), { code, hostname: name });
}

/**
 * The resolver the verdicts use (gateway.dns): Node's c-ares resolver on the configured servers, with
 *
 * - a deadline per query (`timeoutMs` × `tries`) of its own, whatever c-ares does with its retries: a DNS failure
 *   becomes a temperror (the SES verdict PROCESSING_FAILED), never a delivery waiting for ever;
 * - a bounded cache (least recently used dropped first) of answers and of "no such name / no such record", each kept
 *   for `cacheTtlMs` — c-ares gives no TTL for TXT or MX, so one limit serves all; failures are not cached;
 * - one query in flight per name and type: the messages of a batch from one domain share it;
 * - while the servers do not answer at all (TIMEOUTS_BEFORE_FAIL_FAST timeouts in a row), queries fail at once for one
 *   deadline's time, then one goes out again — so an outage costs each message a verdict, not a wait per lookup.
 */
export class CachingResolver {
  private readonly resolver: dns.Resolver;
  private readonly cache = new Map<string, Cached>();
  private readonly inFlight = new Map<string, Promise<unknown[]>>();
  private readonly deadlineMs: number;
  private timeoutsInARow = 0;
  private failFastUntil = 0;
  /** Queries sent to the servers (not answered from the cache or joined to one in flight): for tests and the bench. */
  sent = 0;

  constructor(private readonly settings: GatewaySettings['dns']) {
    this.resolver = new dns.Resolver({ timeout: settings.timeoutMs, tries: settings.tries });
    if (settings.servers.length > 0) this.resolver.setServers(settings.servers);
    this.deadlineMs = settings.timeoutMs * settings.tries;
  }

  /** The hook for mailauth: `(name, type) => records`, rejecting with Node's DNS error codes. */
  readonly resolve: ResolveFunction = (name, type) => this.query(name, type);

  async query(name: string, type: RecordType): Promise<unknown[]> {
    const key = `${type} ${name.toLowerCase().replace(/\.$/, '')}`;
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.expires > now) {
      // Refreshed as most recently used.
      this.cache.delete(key);
      this.cache.set(key, hit);
      if (hit.absent) throw dnsError(hit.absent, type, name);
      return structuredClone(hit.answer!);
    }
    if (hit) this.cache.delete(key);
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.ask(name, type, key).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    // Callers get their own copy: a check may not change what the next one reads.
    return structuredClone(await pending);
  }

  private async ask(name: string, type: RecordType, key: string): Promise<unknown[]> {
    if (Date.now() < this.failFastUntil) throw dnsError('ETIMEOUT', type, name);
    this.sent++;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(dnsError('ETIMEOUT', type, name)), this.deadlineMs);
    });
    try {
      const answer = (await Promise.race([this.resolver.resolve(name, type), deadline])) as unknown[];
      this.timeoutsInARow = 0;
      this.remember(key, { expires: Date.now() + this.settings.cacheTtlMs, answer });
      return answer;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'ESERVFAIL';
      if (ABSENT.has(code)) {
        this.timeoutsInARow = 0;
        this.remember(key, { expires: Date.now() + this.settings.cacheTtlMs, absent: code });
      } else if (code === 'ETIMEOUT' && ++this.timeoutsInARow >= TIMEOUTS_BEFORE_FAIL_FAST) {
        this.failFastUntil = Date.now() + this.deadlineMs;
      }
      throw err instanceof Error ? err : dnsError(code, type, name);
    } finally {
      clearTimeout(timer);
    }
  }

  private remember(key: string, entry: Cached): void {
    if (this.settings.cacheSize === 0) return;
    this.cache.set(key, entry);
    while (this.cache.size > this.settings.cacheSize) this.cache.delete(this.cache.keys().next().value!);
  }

  get cached(): number {
    return this.cache.size;
  }

  /** Stops queries in flight (they reject with ECANCELLED) — at shutdown. */
  cancel(): void {
    this.resolver.cancel();
  }
}
