/**
 * Delivery for rules without a topic: the copy counts as delivered when HeadObject finds its object (key = the
 * rule's prefix + the message id from the server's `250 Ok <id>`). Checks start 100 ms after the hand-over and back
 * off to every 2 s, a few at a time, so the watching adds little to the bucket's load; the latency it reports is
 * as fine as that polling (docs/load.md#delivery).
 */
import { performance } from 'node:perf_hooks';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { s3Client } from '../gateway/aws/clients.js';
import { objectKey } from '../shared/ses/object-key.js';
import type { RuleCopy } from './deliveries.js';

interface Pending {
  token: string;
  rule: string;
  bucket: string;
  key: string;
  region: string | undefined;
  next: number;
  wait: number;
}

const IN_FLIGHT = 8;

export class ObjectWatcher {
  private readonly pending: Pending[] = [];
  private readonly clients = new Map<string, S3Client>();
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  /** Why watching stopped early (no permission to HeadObject), for the summary. */
  problem: string | undefined;

  constructor(private readonly onSeen: (token: string, rule: string, at: number) => void) {}

  watch(token: string, sesMessageId: string, copy: RuleCopy, handedOver: number): void {
    if (this.problem) return;
    const a = copy.s3Action;
    this.pending.push({ token, rule: copy.rule, bucket: a.bucketName, key: objectKey(a.objectKeyPrefix, sesMessageId), region: a.bucketRegion, next: handedOver + 100, wait: 200 });
    this.loop ??= this.run();
  }

  private client(region: string | undefined): S3Client {
    const r = region ?? '';
    let c = this.clients.get(r);
    if (!c) this.clients.set(r, (c = s3Client({ ...(region ? { region } : {}), requestTimeoutMs: 10_000, maxAttempts: 1 })));
    return c;
  }

  private async run(): Promise<void> {
    const signal = this.stopping.signal;
    let inFlight = 0;
    while (!signal.aborted && !this.problem) {
      const now = performance.now();
      this.pending.sort((a, b) => a.next - b.next);
      while (inFlight < IN_FLIGHT && this.pending.length > 0 && this.pending[0]!.next <= now) {
        const p = this.pending.shift()!;
        inFlight++;
        void this.check(p, signal).finally(() => inFlight--);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private async check(p: Pending, signal: AbortSignal): Promise<void> {
    try {
      await this.client(p.region).send(new HeadObjectCommand({ Bucket: p.bucket, Key: p.key }), { abortSignal: signal });
      this.onSeen(p.token, p.rule, performance.now());
    } catch (err) {
      if (signal.aborted) return;
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 403) {
        this.problem = `HeadObject on s3://${p.bucket}/${p.key} was denied (403): give the credentials s3:GetObject on the rule's prefix to measure delivery for rules without a topic`;
        return;
      }
      p.wait = Math.min(2_000, p.wait * 1.5);
      p.next = performance.now() + p.wait;
      this.pending.push(p);
    }
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
    for (const c of this.clients.values()) c.destroy();
  }
}
