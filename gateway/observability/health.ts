import type { S3Client } from '@aws-sdk/client-s3';
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { s3Client } from '../aws/clients.js';
import { within } from '../runtime/timeout.js';
import { headBucket } from './rule-buckets.js';
import { redisDownReason } from '../redis/preflight.js';
import { redisClient, type RedisClient, type RedisTarget } from '../redis/connection.js';

export interface ReadinessOptions {
  redis: RedisTarget;
  spoolDir: string;
  /** Every bucket a rule stores into, with its region. */
  buckets: Array<{ bucket: string; region: string }>;
  timeoutMs: number;
  cacheMs: number;
  /** True once shutdown began: a draining node is not ready, so a load balancer stops sending it mail. */
  draining: () => boolean;
  /** "ok", or why deliveries are not running (a delivery thread being restarted); absent: no such check. */
  delivery?: () => string;
}

export interface Readiness {
  ready: boolean;
  /** Check name → "ok" or what is wrong (no secrets: URLs are not included). */
  checks: Record<string, string>;
}

/**
 * /readyz: Redis answers PING, the spool takes a write (a probe file written, fsync'd and removed — exactly what
 * accepting needs), S3 answers HeadBucket for every rule bucket, and a delivery thread, when there is one, runs. Each check is bounded by `timeoutMs`; the
 * answer is cached for `cacheMs` so a busy probe cannot turn into load on S3.
 */
export class ReadinessCheck {
  private readonly redis: RedisClient;
  /** The client's last connection error since it was last ready: the cause /readyz names (a ping only says "closed"). */
  private redisCause: Error | undefined;
  private readonly s3s = new Map<string, S3Client>();
  private cached: { at: number; result: Promise<Readiness> } | undefined;

  constructor(private readonly opts: ReadinessOptions) {
    this.redis = redisClient(opts.redis, 'producer', { lazyConnect: true, connectTimeout: opts.timeoutMs });
    this.redis.on('error', (err: Error) => (this.redisCause = err)); // reported through the check
    this.redis.on('ready', () => (this.redisCause = undefined));
  }

  check(): Promise<Readiness> {
    if (this.opts.draining()) return Promise.resolve({ ready: false, checks: { shutdown: 'shutting down' } });
    const now = Date.now();
    if (!this.cached || now - this.cached.at >= this.opts.cacheMs) this.cached = { at: now, result: this.run() };
    return this.cached.result;
  }

  private async run(): Promise<Readiness> {
    const checks: Record<string, string> = {};
    const named = async (name: string, f: () => Promise<void>, why: (err: Error) => string = (err) => err.message || err.name) => {
      try {
        await within(f(), this.opts.timeoutMs, () => new Error(`no answer within ${this.opts.timeoutMs} ms`));
        checks[name] = 'ok';
      } catch (err) {
        checks[name] = why(err as Error);
      }
    };
    await Promise.all([
      named('redis', () => this.pingRedis(), (err) => redisDownReason(this.opts.redis, this.redisCause, err)),
      named('spool', () => this.probeSpool()),
      ...this.opts.buckets.map((b) => named(`s3:${b.bucket}`, () => this.headBucket(b.bucket, b.region))),
    ]);
    if (this.opts.delivery) checks.delivery = this.opts.delivery();
    return { ready: Object.values(checks).every((v) => v === 'ok'), checks };
  }

  private async pingRedis(): Promise<void> {
    if (this.redis.status === 'wait' || this.redis.status === 'end') await this.redis.connect().catch(() => undefined);
    const answer = await this.redis.ping();
    if (answer !== 'PONG') throw new Error(`PING answered ${answer}`);
  }

  private async probeSpool(): Promise<void> {
    const path = join(this.opts.spoolDir, `.readyz-${process.pid}`);
    const fh = await open(path, 'w');
    try {
      await fh.write('readyz\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await unlink(path);
  }

  private async headBucket(bucket: string, region: string): Promise<void> {
    let s3 = this.s3s.get(region);
    if (!s3) this.s3s.set(region, (s3 = s3Client({ region, requestTimeoutMs: this.opts.timeoutMs, maxAttempts: 1 })));
    await headBucket(s3, bucket, this.opts.timeoutMs);
  }

  close(): void {
    this.redis.disconnect();
    for (const c of this.s3s.values()) c.destroy();
  }
}
