import type { Cluster } from 'ioredis';
import { coalesced } from '../runtime/coalesce.js';

type ScriptHolder = { scriptsSet?: Record<string, { lua: string; sha: string }> };

/**
 * Keeps every BullMQ script in the script cache of every primary of a Redis Cluster.
 *
 * Why: ioredis sends a script as EVAL the first time on a connection and as EVALSHA from then on, remembering per
 * connection, not per server. When the hash tag's slot moves to a primary (online resharding, a node added) that
 * never ran those scripts, or a primary restarts with an empty cache, the EVALSHAs inside BullMQ's MULTIs (a flow's
 * add) fail with NOSCRIPT — and inside a transaction ioredis never learns, so every later add fails too (seen in
 * test/gateway/redis-cluster.test.ts: every message refused after the slot moved). Loading the scripts on every
 * primary makes those EVALSHAs good again, for every connection of every client.
 *
 * When: once the client is ready, whenever ioredis refreshes its slot map or connects a node, and when an add
 * reports NOSCRIPT. Each pass asks SCRIPT EXISTS per primary and loads only what is missing.
 */
export class ClusterScripts {
  constructor(private readonly cluster: Cluster) {
    cluster.on('ready', () => void this.ensure());
    cluster.on('refresh', () => void this.ensure());
    cluster.on('+node', () => void this.ensure());
  }

  /**
   * One pass at a time; calls during a pass are served by one more pass after it. Never rejects: a node that does not
   * answer now is loaded on the next refresh.
   */
  readonly ensure = coalesced(() => this.pass().catch(() => undefined));

  private async pass(): Promise<void> {
    const scripts = Object.values((this.cluster as unknown as ScriptHolder).scriptsSet ?? {});
    if (scripts.length === 0 || this.cluster.status !== 'ready') return;
    await Promise.all(
      this.cluster.nodes('master').map(async (node) => {
        const exists = (await node.script('EXISTS', ...scripts.map((s) => s.sha))) as number[];
        for (const [i, s] of scripts.entries()) if (!exists[i]) await node.script('LOAD', s.lua);
      }),
    );
  }
}

/** True for the error a missing script gives. */
export function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT');
}
