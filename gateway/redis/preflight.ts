import { Redis } from 'ioredis';
import { redactRedisUrl, roleConnection, type RedisTarget } from './connection.js';

/**
 * One plain connection to the URL's node before the gateway's own clients, to say what is wrong in words an operator
 * can act on. ioredis reports every failed connection to the caller as "Connection is closed."; the cause (a refused
 * password, a certificate nobody trusts, TLS against a plain port, a cluster node behind a single-Redis setting)
 * only travels in its error events.
 */

/** How the caller's user writes the cluster setting (config field, or command-line flag). */
export interface ClusterSettingWords {
  on: string;
  off: string;
}

/** How long the one question asked of Redis may take (connect + INFO). */
export const PREFLIGHT_TIMEOUT_MS = 5_000;

const CONFIG_WORDS: ClusterSettingWords = { on: 'set gateway.redis.cluster to true', off: 'set gateway.redis.cluster to false' };

export interface RedisProblem {
  /** What happened, e.g. "Redis refused the login (WRONGPASS …)". */
  reason: string;
  fix: string;
  /** Retrying cannot help (credentials, TLS trust, cluster setting): fail now instead of waiting out start-up. */
  definitive: boolean;
}

const TLS_TRUST = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID']);

/** Names the cause of a failed connection or command, with the fix; undefined when it says nothing specific. */
function classifyRedisError(err: Error & { code?: string }, target: RedisTarget): RedisProblem | undefined {
  const msg = err.message;
  const tls = new URL(target.url).protocol === 'rediss:';
  const login = 'put the user and password in the URL: redis://user:password@host:port (an ElastiCache AUTH token: rediss://:token@host:6379)';
  if (/^NOAUTH\b/.test(msg)) return { reason: 'Redis wants a login and the URL gives none (NOAUTH)', fix: login, definitive: true };
  if (/^WRONGPASS\b/.test(msg) || /^ERR (AUTH|invalid password)/i.test(msg)) {
    return { reason: `Redis refused the login (${msg.split('.')[0]})`, fix: login, definitive: true };
  }
  if (/^NOPERM\b/.test(msg)) {
    // Logged in, but the user's ACL lacks a command: BullMQ needs INFO (its version check), EVALSHA and the key commands.
    return { reason: `the Redis user may not run what the gateway needs (${msg})`, fix: 'grant it, e.g. ACL SETUSER <user> +@all -@dangerous +info (on ElastiCache an access string such as "on ~* +@all")', definitive: true };
  }
  if (err.code && TLS_TRUST.has(err.code)) {
    return {
      reason: `TLS: ${msg} (${err.code})`,
      fix: 'the URL\'s host must be a name the server certificate carries; for a private CA give its certificate in NODE_EXTRA_CA_CERTS=<ca.pem>',
      definitive: true,
    };
  }
  if (tls && /wrong version number|packet length too long|unknown protocol|before secure TLS connection was established/i.test(msg)) {
    return { reason: `TLS handshake failed (${msg})`, fix: 'this port does not seem to speak TLS: use redis:// instead of rediss://, or the TLS port', definitive: true };
  }
  if (!tls && err.code === 'ECONNRESET') {
    return { reason: `the server closed the connection (${msg})`, fix: 'if this Redis requires TLS (ElastiCache in-transit encryption), write the URL as rediss://', definitive: false };
  }
  if (err.code === 'ECONNREFUSED') return { reason: `nothing listens there (${msg})`, fix: 'start redis-server, or point --redis-url / REDIS_URL at one', definitive: false };
  if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') return { reason: `the host name does not resolve (${err.code})`, fix: 'check the host in the URL', definitive: false };
  if (err.code === 'ETIMEDOUT' || /timed? ?out/i.test(msg)) {
    const fix = 'check the address and port, and that a firewall or security group lets this host reach it';
    // TLS sent to a plain port waits for a handshake that never comes.
    return { reason: `no answer (${msg})`, fix: tls ? `${fix}; if this Redis does not use TLS, write the URL as redis://` : fix, definitive: false };
  }
  return undefined;
}

/**
 * Connects to the URL's node and asks INFO cluster. Returns what is wrong, or undefined when the node answers and
 * runs in the mode `target.cluster` says. A mismatch is definitive: a single-Redis client on a cluster node only
 * ever sees MOVED for keys other nodes hold, and a cluster client on a plain Redis never becomes ready.
 */
export async function redisProblem(target: RedisTarget, timeoutMs = PREFLIGHT_TIMEOUT_MS, words: ClusterSettingWords = CONFIG_WORDS): Promise<RedisProblem | undefined> {
  const r = new Redis({ ...roleConnection(target.url, 'admin'), lazyConnect: true, connectTimeout: timeoutMs, commandTimeout: timeoutMs });
  let cause: Error | undefined;
  r.on('error', (err: Error) => (cause ??= err));
  let info: string;
  try {
    await r.connect();
    info = await r.info('cluster');
  } catch (err) {
    const e = cause ?? (err as Error);
    return classifyRedisError(e, target) ?? { reason: e.message, fix: 'check --redis-url / REDIS_URL (gateway.redis.url)', definitive: false };
  } finally {
    r.disconnect();
  }
  const enabled = /cluster_enabled:(\d)/.exec(info)?.[1];
  if (enabled === '1' && !target.cluster) return { reason: 'this is a Redis Cluster node (cluster_enabled:1)', fix: `${words.on}, with a key prefix that has a hash tag, e.g. "{mailroom}"`, definitive: true };
  if (enabled === '0' && target.cluster) return { reason: 'this is not a Redis Cluster node (cluster_enabled:0)', fix: `${words.off}, or point the URL at a node of the cluster`, definitive: true };
  return undefined;
}

export function describeProblem(target: RedisTarget, p: RedisProblem): string {
  return `Redis at ${redactRedisUrl(target.url)}: ${p.reason}: ${p.fix}`;
}

/** ioredis's words for "no connection now", which say nothing to an operator. */
const CLIENT_INTERNALS = /Stream isn't writeable|enableOfflineQueue|Connection is closed|Reached the max retries/i;

/**
 * A status line for a client that cannot reach Redis now (/readyz): the cause the client's last error event carried
 * (`cause`), in the preflight's words, else the failed command's error unless it is one of ioredis's internals. The
 * URL is redacted: never a password.
 */
export function redisDownReason(target: RedisTarget, cause: (Error & { code?: string }) | undefined, failed?: Error): string {
  const because = (cause && classifyRedisError(cause, target)?.reason) ?? [cause, failed].map((e) => e?.message).find((m) => m && !CLIENT_INTERNALS.test(m));
  return `Redis at ${redactRedisUrl(target.url)} does not answer${because ? `: ${because}` : ''}`;
}

/** Throws (with the fix) when the URL's node is wrong in a way waiting cannot mend; otherwise lets start-up go on. */
export async function assertRedisUsable(target: RedisTarget, timeoutMs = PREFLIGHT_TIMEOUT_MS, words?: ClusterSettingWords): Promise<void> {
  const p = await redisProblem(target, timeoutMs, words);
  if (p?.definitive) throw new Error(describeProblem(target, p));
}

/** The message for a start-up that could not reach Redis: the cause as it stands now, else what the client said. */
export async function unreachableMessage(target: RedisTarget, last: string, timeoutMs = PREFLIGHT_TIMEOUT_MS): Promise<string> {
  const p = await redisProblem(target, timeoutMs);
  if (p) return `cannot reach ${describeProblem(target, p)}`;
  return `cannot reach Redis at ${redactRedisUrl(target.url)} (${last}): start redis-server, or point --redis-url / REDIS_URL at one`;
}
