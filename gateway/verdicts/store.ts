import type { RedisClient } from '../redis/connection.js';
import type { MessageVerdicts } from './verdicts.js';

/**
 * A spool file's verdicts in Redis, one hash per file (`<node prefix>:verdicts:<fileId>`, a field per message id), next
 * to the file's jobs and their record of progress:
 *
 * - the first result written for a message is the one every delivery uses (HSETNX): two rules' jobs that computed at
 *   once both go on with the same verdicts, and a retry reads them instead of asking DNS or a scanner again — so an
 *   object stored by one attempt and a notification published by the next never disagree;
 * - the hash is deleted when the file is released; a file that never is (torn and set aside, or its jobs removed by
 *   hand) has its hash expire after TTL_SECONDS, refreshed at each write;
 * - a Redis that loses its data loses these with the jobs' progress: recovery then redelivers the file's messages
 *   whole, object and notification alike, with verdicts computed again.
 *
 * The key is under the node's hash-tagged prefix, so on a Redis Cluster it shares the slot of the node's queues.
 * Nothing else reads it: `mailroom queue` and recovery look only at the queues.
 */
export class VerdictStore {
  /** Longer than any retry window a delivery has (4 hours) and than a failed delivery usually waits for an operator. */
  static readonly TTL_SECONDS = 30 * 24 * 3600;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  key(fileId: string): string {
    return `${this.prefix}:verdicts:${fileId}`;
  }

  async get(fileId: string, messageId: string): Promise<MessageVerdicts | undefined> {
    const raw = await this.redis.hget(this.key(fileId), messageId);
    return raw === null ? undefined : (JSON.parse(raw) as MessageVerdicts);
  }

  /** Keeps `verdicts` unless the message has some already; resolves with the ones kept. */
  async keepFirst(fileId: string, messageId: string, verdicts: MessageVerdicts): Promise<MessageVerdicts> {
    const key = this.key(fileId);
    const replies = await this.redis.multi().hsetnx(key, messageId, JSON.stringify(verdicts)).expire(key, VerdictStore.TTL_SECONDS).exec();
    if (!replies || replies.length !== 2) throw new Error(`Redis did not run the transaction keeping the verdicts of message ${messageId}`);
    const [[setErr, set], [expireErr]] = replies as [[Error | null, unknown], [Error | null, unknown]];
    if (setErr) throw setErr;
    if (expireErr) throw expireErr;
    if (set === 1) return verdicts;
    const kept = await this.get(fileId, messageId);
    if (!kept) throw new Error(`verdicts of message ${messageId} vanished from ${key} while being kept`);
    return kept;
  }

  /** The file is released: its verdicts go with it. */
  async drop(fileId: string): Promise<void> {
    await this.redis.del(this.key(fileId));
  }
}
