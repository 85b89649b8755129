import { ConfigError, loadConfigFile } from '../../shared/config/index.js';
import { GatewaySettingsSchema } from '../../shared/config/gateway.js';
import { QueueAdmin, type FailedDelivery } from '../../gateway/queue/admin.js';
import { describeProblem, redisProblem } from '../../gateway/redis/preflight.js';
import { redactRedisUrl } from '../../gateway/redis/connection.js';
import { yesNo } from '../../gateway/runtime/settings.js';
import { parse } from '../command/args.js';
import { UsageError, type Command } from '../command/command.js';

export const queue: Command = {
  name: 'queue',
  summary: 'show delivery counts; list and retry failed deliveries',
  usage: `usage: mailroom queue [--config <file>] [--redis-url <url>] [--redis-cluster yes|no] [--prefix <p>] [--node <id>] [--json]
       mailroom queue failed [--limit N] [...]
       mailroom queue retry [<job-id> ...] [...]

(no subcommand)  counts of delivery jobs by state (waiting, active, delayed, failed, completed; one job per spool
                 file and rule — a spool file holds one message or a batch of small ones that arrived together) and
                 how many spool files await delivery: in total and per gateway node (with whether it is up, stopped,
                 or silent — a node that stopped beating; its messages wait in its spool until it comes back)
failed           the failed delivery jobs: job id (<spool file id> when the file's messages matched one rule,
                 <spool file id>.<rule> when they matched several), rule, node, attempts, the messages not yet
                 delivered, last error; and failed releases ("release <spool file id>"): mail delivered, but the
                 spool file could not be deleted
retry            moves failed delivery and release jobs (all, or the given job ids) back to waiting with a fresh
                 attempt budget; only undelivered messages are tried again, by the node whose spool holds them
--node <id>      only that node

Redis: --redis-url, else REDIS_URL, else the config's gateway.redis.url; the key prefix: --prefix, else the
config's gateway.redis.prefix, else "mailroom" — it must be the gateways' (without it no node is found);
a Redis Cluster: --redis-cluster yes, else MAILROOM_REDIS_CLUSTER, else the config's gateway.redis.cluster.`,
  async run(args) {
    const { values, positionals } = parse(args, {
      config: { type: 'string' },
      'redis-url': { type: 'string' },
      'redis-cluster': { type: 'string' },
      json: { type: 'boolean' },
      limit: { type: 'string' },
      node: { type: 'string' },
      prefix: { type: 'string' },
    });
    const [sub = 'counts', ...rest] = positionals;
    if (!['counts', 'failed', 'retry'].includes(sub)) throw new UsageError(`unknown subcommand "${sub}"; use failed or retry (or nothing for counts)`);
    if (sub !== 'retry' && rest.length > 0) throw new UsageError(`"${sub}" takes no arguments`);
    let redisUrl = values['redis-url'] ?? (process.env.REDIS_URL || undefined);
    let prefix = 'mailroom';
    let prefixFrom = 'the default';
    const clusterFlag = values['redis-cluster'] ?? (process.env.MAILROOM_REDIS_CLUSTER || undefined);
    const clusterFrom = values['redis-cluster'] !== undefined ? '--redis-cluster' : 'MAILROOM_REDIS_CLUSTER (--redis-cluster)';
    let cluster: boolean | undefined;
    if (clusterFlag !== undefined) {
      try {
        cluster = yesNo('redis-cluster', clusterFlag, clusterFrom);
      } catch (err) {
        if (err instanceof ConfigError) throw new UsageError(`${clusterFrom}: "${clusterFlag}" is neither yes nor no; write yes or no`);
        throw err;
      }
    }
    const configFile = values.config ?? (process.env.MAILROOM_CONFIG || undefined);
    if (configFile) {
      try {
        const gw = GatewaySettingsSchema.parse(loadConfigFile(configFile).config.gateway ?? {});
        redisUrl ??= gw.redis.url;
        cluster ??= gw.redis.cluster;
        prefix = gw.redis.prefix;
        prefixFrom = `gateway.redis.prefix in ${configFile}`;
      } catch (err) {
        if (err instanceof ConfigError) {
          console.error(`mailroom queue: ${err.message}`);
          return 2;
        }
        throw err;
      }
    }
    if (values.prefix !== undefined) {
      if (!values.prefix) throw new UsageError('--prefix is empty; give the gateways\' gateway.redis.prefix');
      [prefix, prefixFrom] = [values.prefix, '--prefix'];
    }
    redisUrl ??= 'redis://127.0.0.1:6379';
    const limit = values.limit === undefined ? 100 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit "${values.limit}" is not a positive whole number`);

    const target = { url: redisUrl, cluster: cluster ?? false };
    // An operator command: any problem is reported at once, with its cause and fix.
    const problem = await redisProblem(target, undefined, { on: 'add --redis-cluster yes (or set gateway.redis.cluster in the config)', off: 'add --redis-cluster no (or set gateway.redis.cluster in the config)' });
    if (problem) {
      console.error(`mailroom queue: ${describeProblem(target, problem)}`);
      return 1;
    }
    const admin = new QueueAdmin(target, prefix, values.node);
    // The output stays what it was (JSON consumers get valid JSON); the exit code says it counts nothing.
    let code = 0;
    try {
      try {
        await admin.ready();
        if (admin.nodeCount === 0) {
          const fix = prefixFrom === 'the default' ? 'pass --config <file> (the gateways\' config) or --prefix <the gateways\' gateway.redis.prefix>' : 'check that this is the gateways\' Redis and prefix, and that a gateway has started';
          console.error(`mailroom queue: no gateway node has registered under prefix "${prefix}" (${prefixFrom}) on Redis at ${redactRedisUrl(redisUrl)}: ${fix}`);
          code = 1;
        }
      } catch (err) {
        const msg = (err as Error).message;
        if (msg.startsWith('no node')) console.error(`mailroom queue: ${msg}`);
        else console.error(`mailroom queue: cannot reach Redis at ${redactRedisUrl(redisUrl)} (${msg}): check --redis-url / REDIS_URL`);
        return 1;
      }
      if (sub === 'counts') {
        const c = await admin.counts();
        if (values.json) console.log(JSON.stringify(c));
        else {
          const line = (d: Record<string, number>) => Object.entries(d).map(([k, v]) => `${k} ${v}`).join(', ');
          console.log(`delivery jobs: ${line(c.deliveries)}`);
          console.log(`spool files awaiting delivery: ${c.spoolFilesPending}`);
          if (c.nodes.length > 1 || values.node !== undefined) {
            for (const n of c.nodes) {
              console.log(`  node ${n.node} (${n.host}, ${n.status}, last seen ${n.lastSeen}): ${line(n.deliveries)}; spooled ${n.spoolFilesPending}`);
            }
          }
          if (c.nodes.some((n) => n.status === 'silent' && n.spoolFilesPending > 0)) {
            console.log('a silent node still holds messages: they are delivered when it comes back with its spool (see docs/gateway.md#scale-out)');
          }
          if (c.deliveries.failed > 0) console.log('failed deliveries keep their spool file; see `mailroom queue failed`, then `mailroom queue retry`');
          if (c.releasesFailed > 0) console.log(`${c.releasesFailed} spool file${c.releasesFailed === 1 ? '' : 's'} delivered but not deleted (release failed); see \`mailroom queue failed\`, fix the disk, then \`mailroom queue retry\``);
        }
      } else if (sub === 'failed') {
        const f = await admin.failed(limit);
        if (values.json) console.log(JSON.stringify(f));
        else if (f.length === 0) console.log('no failed deliveries');
        else for (const j of f) console.log(failedLine(j));
      } else {
        const r = await admin.retry(rest);
        if (values.json) console.log(JSON.stringify(r));
        else {
          console.log(`retried ${r.retried.length} failed job${r.retried.length === 1 ? '' : 's'}`);
          if (r.skipped.length > 0) console.log(`not failed or unknown, skipped: ${r.skipped.join(', ')}`);
        }
        if (r.skipped.length > 0 && r.retried.length === 0) return 1;
      }
      return code;
    } finally {
      await admin.close();
    }
  },
};

/** One failed job for people: what it is, the rule it delivers for, where, how often, why, and its messages. */
export function failedLine(j: FailedDelivery): string {
  const rule = j.rule ? `  rule ${j.rule}` : '';
  return `${j.kind === 'release' ? 'release ' : ''}${j.jobId}${rule}  node ${j.node}  attempts ${j.attemptsMade}  ${j.failedAt ?? ''}  ${j.reason}\n  messages: ${j.messageIds.join(' ')}`;
}

