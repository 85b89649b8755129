import type { GatewaySettings } from '../../shared/config/gateway.js';
import { AddressSet, plainAddress } from '../net/cidr.js';
import { replies, type SmtpReply } from './replies.js';

type SmtpSettings = GatewaySettings['smtp'];

/** Buckets idle long enough to be full again carry no information; dropping them bounds memory under address churn. */
const RATE_SWEEP_AT = 10_000;

/**
 * Connection-level policy, decided per client address (the real one when a trusted load balancer sent a PROXY
 * header): SES-style receipt filters (block wins over allow; a non-empty allow list refuses everyone else), the
 * overall and per-client connection limits, the per-client message rate, and who skips the greeting delay.
 */
export class EdgePolicy {
  private readonly allow: AddressSet;
  private readonly block: AddressSet;
  private readonly trusted: AddressSet;
  readonly proxies: AddressSet;
  readonly authPlaintext: AddressSet;
  private readonly perClient = new Map<string, number>();
  private total = 0;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly ratePerMs: number;
  private readonly burst: number;

  constructor(
    private readonly s: SmtpSettings,
    private readonly hostname: string,
    private readonly now: () => number = Date.now,
  ) {
    this.allow = new AddressSet(s.receiptFilters.allow);
    this.block = new AddressSet(s.receiptFilters.block);
    this.trusted = new AddressSet(s.trustedNetworks);
    this.proxies = new AddressSet(s.proxyProtocol.trustedProxies);
    this.authPlaintext = new AddressSet(s.auth.plaintextFrom);
    this.ratePerMs = s.rateLimit.messagesPerMinute / 60_000;
    this.burst = s.rateLimit.burst ?? s.rateLimit.messagesPerMinute;
  }

  isTrusted(address: string): boolean {
    return this.trusted.has(address);
  }

  /** The receipt filters alone (what SES evaluates before anything else). */
  filter(address: string): SmtpReply | undefined {
    if (this.block.has(address)) return replies.blockedClient(address, 'a receipt filter blocks this address');
    if (this.allow.size > 0 && !this.allow.has(address)) return replies.blockedClient(address, 'no receipt filter allows this address');
    return undefined;
  }

  /**
   * Admits a connection or says why not. An admitted connection holds a slot until `release` is called (once,
   * when its session ends, whichever socket ends it; a second call does nothing). Refused ones hold nothing.
   */
  admit(address: string): { ok: true; release: () => void } | { ok: false; reply: SmtpReply } {
    const filtered = this.filter(address);
    if (filtered) return { ok: false, reply: filtered };
    if (this.total >= this.s.maxConnections) return { ok: false, reply: replies.tooManyConnections(this.hostname, this.s.maxConnections) };
    const key = plainAddress(address);
    const mine = this.perClient.get(key) ?? 0;
    if (!this.isTrusted(address) && mine >= this.s.maxConnectionsPerClient) {
      return { ok: false, reply: replies.tooManyClientConnections(this.hostname, key, this.s.maxConnectionsPerClient) };
    }
    this.total++;
    this.perClient.set(key, mine + 1);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const left = (this.perClient.get(key) ?? 1) - 1;
        if (left > 0) this.perClient.set(key, left);
        else this.perClient.delete(key);
      },
    };
  }

  get openConnections(): number {
    return this.total;
  }

  /** Client addresses holding at least one slot. */
  get connectedClients(): number {
    return this.perClient.size;
  }

  /** Takes one message from the client's token bucket; a refusal says when the next token is there. */
  takeMessage(address: string): SmtpReply | undefined {
    if (this.ratePerMs === 0 || this.isTrusted(address)) return undefined;
    const key = plainAddress(address);
    const t = this.now();
    if (this.buckets.size >= RATE_SWEEP_AT) this.sweep(t);
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: t };
    b.tokens = Math.min(this.burst, b.tokens + (t - b.at) * this.ratePerMs);
    b.at = t;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return undefined;
    }
    const waitS = Math.max(1, Math.ceil((1 - b.tokens) / this.ratePerMs / 1000));
    return replies.rateLimited(key, this.s.rateLimit.messagesPerMinute, waitS);
  }

  private sweep(t: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + (t - b.at) * this.ratePerMs >= this.burst) this.buckets.delete(k);
  }

  greetingDelayMs(address: string): number {
    return this.isTrusted(address) ? 0 : this.s.greetingDelayMs;
  }
}
