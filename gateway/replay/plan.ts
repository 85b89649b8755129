import { createHmac } from 'node:crypto';
import type { ReceiptRule, ReceivingConfig } from '../../shared/config/index.js';
import { messageIdFromBytes } from '../../shared/ses/message-id.js';
import { RecipientRouter } from '../smtp/routing.js';
import type { SpooledRule } from '../spool/format.js';
import { isPlausibleReceiptTime } from './dates.js';
import { recoverEnvelope, type EnvelopeFlags } from './envelope.js';
import { ReplayProblem, type PreparedMessage } from './source.js';
import type { ReplayAcceptMessage, StoredBy } from './target.js';

/**
 * What replay decides for one prepared message before it is handed on: its envelope, its receipt rules, its
 * message id and its receipt time.
 */

export interface ReplayPlan {
  message: PreparedMessage;
  accept: ReplayAcceptMessage;
  mailFromSource: string;
  recipientsSource: string;
  /** Where `receivedAt` came from; `now` when the accept path's clock decides. */
  timestampSource: string;
  /** Rules left out of `accept` because their object is there already, and how that is known. */
  alreadyThere?: ReadonlyMap<string, StoredBy>;
}

export interface PlanOptions {
  config: ReceivingConfig;
  /** `--rule`: every message goes to this rule. */
  rule?: string;
  envelope: EnvelopeFlags;
  timestamp: 'source' | 'now';
}

/**
 * Message ids are an HMAC-SHA-512 of the message's source identity and its content (the DATA's SHA-256, or an
 * object's ETag), keyed with the rule set owner's account id, cut to SES's id shape: the same source message replayed
 * again — a second run, a run after a crash — gets the same id, so the same key; two source messages never share one
 * (their identities differ); and the same archive replayed into two accounts gives unrelated ids. The key is no
 * secret: guessing an id needs the message's exact bytes and its place, which give the message itself.
 */
export function replayIdKey(accountId: string): Buffer {
  return Buffer.from(`mailroom replay v1\0${accountId}`, 'utf8');
}

export function replayMessageId(key: Buffer, identity: string, contentTag: string): string {
  return messageIdFromBytes(createHmac('sha512', key).update(identity, 'utf8').update('\0').update(contentTag, 'utf8').digest());
}

/** The rule `--rule` names, or why there is none; a disabled rule is allowed (the operator named it). */
export function findRule(config: ReceivingConfig, name: string): ReceiptRule | undefined {
  return config.rules.find((r) => r.name === name);
}

export class Planner {
  private readonly router: RecipientRouter;
  private readonly forced: ReceiptRule | undefined;
  private readonly idKey: Buffer;

  constructor(private readonly o: PlanOptions) {
    this.router = new RecipientRouter(o.config);
    this.idKey = replayIdKey(o.config.accountId);
    if (o.rule !== undefined) {
      this.forced = findRule(o.config, o.rule);
      if (!this.forced) throw new Error(`no receipt rule is named "${o.rule}"`);
    }
  }

  /** Throws ReplayProblem ('unmatched') when no rule takes the message. */
  plan(m: PreparedMessage): ReplayPlan {
    const env = recoverEnvelope(m, this.o.envelope);
    if (env.recipients.length === 0) {
      throw new ReplayProblem('unmatched', m.location, 'has no recipient to route: no X-Original-To, Delivered-To, To or Cc address; name one with --to');
    }
    let rules: SpooledRule[];
    if (this.forced) {
      const r = this.forced;
      rules = [{ name: r.name, recipients: env.recipients, scanEnabled: r.scanEnabled, s3Action: r.s3Action }];
    } else {
      // Replay is the operator's, not a client's: TLS was whatever it was, so tlsPolicy does not refuse it.
      rules = this.router.rulesFor(env.recipients, true);
      if (rules.length === 0) {
        const listed = env.recipients.slice(0, 5).join(', ') + (env.recipients.length > 5 ? `, … (${env.recipients.length} in all)` : '');
        throw new ReplayProblem('unmatched', m.location, `matches no receipt rule: none takes any of its recipients (${listed}, from ${env.recipientsSource}); name the rule with --rule or the recipients with --to`);
      }
    }
    const taken = new Set(rules.flatMap((r) => r.recipients));
    const recipients = env.recipients.filter((a) => taken.has(a));

    const time = this.o.timestamp === 'source' ? m.times.find((t) => isPlausibleReceiptTime(t.at)) : undefined;
    const client = m.hints.storedBlock?.client;
    const accept: ReplayAcceptMessage = {
      mailFrom: env.mailFrom,
      recipients,
      rules,
      messageId: replayMessageId(this.idKey, m.identity, m.contentTag),
      ...(time ? { receivedAt: time.at } : {}),
      ...(client ? { client: { ip: client.ip, ...(client.hostname ? { hostname: client.hostname } : {}), helo: client.helo, tls: false } } : {}),
      source: m.location,
    };
    return {
      message: m,
      accept,
      mailFromSource: env.mailFromSource,
      recipientsSource: env.recipientsSource,
      timestampSource: time ? time.from : this.o.timestamp === 'now' ? 'now (--timestamp now)' : 'now (the source gives no plausible time)',
    };
  }
}
