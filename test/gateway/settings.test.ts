/** The gateway's settings: defaults, the file, the environment and flags in that order, and errors that name the setting and the fix. */
import { hostname as osHostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../shared/config/index.js';
import { overridesFrom, resolveRuntime } from '../../gateway/runtime/settings.js';
import { base } from './rule-set.js';

describe('settings', () => {
  it('defaults fill in; env overrides the file; flags override env', () => {
    const loaded = parseConfig(base);
    const fromFile = resolveRuntime(loaded, {}, 'f');
    expect(fromFile.settings.smtp.port).toBe(2600);
    expect(fromFile.settings.smtp.host).toBe('127.0.0.1');
    expect(fromFile.settings.worker.concurrency).toBe(8);
    expect(fromFile.settings.upload.checksums).toBe('WHEN_REQUIRED');
    // The greeting's and Received's own name: this machine's unless the file, MAILROOM_HOSTNAME or --hostname says.
    expect(fromFile.settings.hostname).toBe(osHostname());
    expect(resolveRuntime(parseConfig({ ...base, gateway: { ...base.gateway, hostname: 'mx.file.test' } }), {}, 'f').settings.hostname).toBe('mx.file.test');
    expect(resolveRuntime(loaded, overridesFrom({}, { MAILROOM_HOSTNAME: 'mx.env.test' }), 'f').settings.hostname).toBe('mx.env.test');
    expect(resolveRuntime(loaded, overridesFrom({ hostname: 'mx.flag.test' }, { MAILROOM_HOSTNAME: 'mx.env.test' }), 'f').settings.hostname).toBe('mx.flag.test');

    const env = { REDIS_URL: 'redis://env:6379', MAILROOM_SMTP_PORT: '2700', MAILROOM_CONCURRENCY: '3' };
    const viaEnv = resolveRuntime(loaded, overridesFrom({}, env), 'f');
    expect([viaEnv.settings.redis.url, viaEnv.settings.smtp.port, viaEnv.settings.worker.concurrency]).toEqual(['redis://env:6379', 2700, 3]);
    const viaFlag = resolveRuntime(loaded, overridesFrom({ 'smtp-port': '2800', 'redis-url': 'redis://flag:1' }, env), 'f');
    expect([viaFlag.settings.redis.url, viaFlag.settings.smtp.port]).toEqual(['redis://flag:1', 2800]);
    // MAILROOM_HTTP_HOST (a container's image sets it) turns the HTTP listener on, as MAILROOM_HTTP_PORT does.
    expect(fromFile.settings.http).toBeUndefined();
    expect(resolveRuntime(loaded, overridesFrom({}, { MAILROOM_HTTP_HOST: '0.0.0.0' }), 'f').settings.http).toMatchObject({ host: '0.0.0.0', port: 9464 });
    expect(resolveRuntime(loaded, overridesFrom({ 'http-host': '::1' }, { MAILROOM_HTTP_HOST: '0.0.0.0', MAILROOM_HTTP_PORT: '9500' }), 'f').settings.http).toMatchObject({ host: '::1', port: 9500 });
  });

  it('bad values name the flag or field and the fix', () => {
    const loaded = parseConfig(base);
    const problem = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).problems[0]!;
      }
      throw new Error('no error');
    };
    expect(problem(() => resolveRuntime(loaded, { smtpPort: 'abc' }, 'f'))).toMatchObject({ path: '--smtp-port', fix: expect.stringContaining('port number') });
    expect(problem(() => resolveRuntime(loaded, { redisUrl: 'localhost:6379' }, 'f'))).toMatchObject({ path: '--redis-url / REDIS_URL', fix: expect.stringContaining('redis://') });
    expect(problem(() => resolveRuntime(loaded, { concurrency: '0' }, 'f')).path).toBe('--concurrency');
    // A value from the environment is named by its variable (the flag that would override it in brackets).
    const fromEnv = (env: NodeJS.ProcessEnv, flags: Record<string, string> = {}) => problem(() => resolveRuntime(loaded, overridesFrom(flags, env), 'f'));
    expect(fromEnv({ MAILROOM_CONCURRENCY: '0' })).toMatchObject({ path: 'MAILROOM_CONCURRENCY (--concurrency)', message: '"0" is not a whole number from 1 to 10000' });
    expect(fromEnv({ MAILROOM_CONCURRENCY: '8' }, { concurrency: 'x' }).path).toBe('--concurrency');
    expect(fromEnv({ MAILROOM_SMTP_PORT: '70000' }).path).toBe('MAILROOM_SMTP_PORT (--smtp-port)');
    expect(fromEnv({ MAILROOM_HTTP_PORT: 'on' }).path).toBe('MAILROOM_HTTP_PORT (--http-port)');
    expect(fromEnv({ MAILROOM_REDIS_CLUSTER: 'maybe' }).path).toBe('MAILROOM_REDIS_CLUSTER (--redis-cluster)');
    expect(fromEnv({ REDIS_URL: 'localhost:6379' }).path).toBe('REDIS_URL (--redis-url)');
    expect(fromEnv({ MAILROOM_NODE_ID: '-bad id' })).toMatchObject({ path: 'MAILROOM_NODE_ID (--node-id)', message: expect.stringContaining('must be 1-63 letters') });
    expect(() => resolveRuntime(loaded, overridesFrom({}, { MAILROOM_CONCURRENCY: '0' }), 'f')).toThrow(/^MAILROOM_CONCURRENCY \(--concurrency\): 1 problem/);
    expect(problem(() => parseConfig({ ...base, gateway: { worker: { concurrency: 0 } } })).path).toBe('gateway.worker.concurrency');
    expect(() => parseConfig({ ...base, gateway: { smtp: { prot: 25 } } })).toThrow(/gateway\.smtp\.prot: unknown field/);
  });

  it('Redis Cluster: the prefix must carry a hash tag and the URL no database; --redis-cluster / MAILROOM_REDIS_CLUSTER override the file', () => {
    const problems = (gateway: unknown) => {
      try {
        parseConfig({ ...base, gateway });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).problems;
      }
      throw new Error('no error');
    };
    expect(problems({ redis: { cluster: true, prefix: 'mail' } })).toEqual([
      { path: 'gateway.redis.prefix', message: expect.stringContaining('has no hash tag'), fix: 'write it with braces, e.g. "{mail}"' },
    ]);
    // "{}" is no hash tag (Redis hashes the whole key then).
    expect(problems({ redis: { cluster: true, prefix: '{}mail' } })[0]!.path).toBe('gateway.redis.prefix');
    expect(problems({ redis: { cluster: true, url: 'redis://10.0.0.1:6379/2', prefix: '{mail}' } })).toEqual([
      { path: 'gateway.redis.url', message: expect.stringContaining('a Redis Cluster has only database 0'), fix: 'drop the /<db> part of the URL' },
    ]);
    // The same prefix and URL are fine on a single Redis, and a tag anywhere in the prefix counts.
    expect(parseConfig({ ...base, gateway: { redis: { url: 'redis://10.0.0.1:6379/2', prefix: 'mail' } } }).config.gateway?.redis).toMatchObject({ url: 'redis://10.0.0.1:6379/2', prefix: 'mail', cluster: false });
    const loaded = parseConfig({ ...base, gateway: { redis: { prefix: 'mx:{eu}' } } });
    expect(resolveRuntime(loaded, {}, 'f').settings.redis.cluster).toBe(false);
    expect(resolveRuntime(loaded, overridesFrom({}, { MAILROOM_REDIS_CLUSTER: 'yes' }), 'f').settings.redis.cluster).toBe(true);
    expect(resolveRuntime(loaded, overridesFrom({ 'redis-cluster': 'no' }, { MAILROOM_REDIS_CLUSTER: 'yes' }), 'f').settings.redis.cluster).toBe(false);
    expect(() => resolveRuntime(loaded, { redisCluster: 'maybe' }, 'f')).toThrow(ConfigError);
    // The flag turns cluster on for a file whose prefix has no tag: the schema still refuses it, naming the field.
    expect(() => resolveRuntime(parseConfig(base), { redisCluster: 'yes' }, 'f')).toThrow(/gateway\.redis\.prefix: "mailroom" has no hash tag/);
  });

  it('warns when a rule requires TLS but no certificate is configured', () => {
    expect(resolveRuntime(parseConfig(base), {}, 'f').warnings.join('\n')).toMatch(/tlsPolicy "Require" but gateway\.smtp\.tls is not set/);
  });
});

describe('a config whose rules await a key the infra creates', () => {
  it('is refused: the gateway would store plaintext where SES stores ciphertext', async () => {
    const { rulesAwaitingCreatedKey } = await import('../../gateway/runtime/settings.js');
    const cfg = parseConfig({ ...base, infra: { createKmsKeys: { mail: { rules: ['exact'] } } } }).config;
    expect(rulesAwaitingCreatedKey(cfg)).toEqual([
      {
        path: 'rules[0].s3Action.kmsKeyArn',
        message: 'rule "exact" is encrypted with infra.createKmsKeys.mail, a key the infra stack creates, and this file does not name its ARN',
        fix: 'run the gateway with the deployed config: terraform -chdir=cdktf.out/stacks/mailroom output -json gateway_config > mailroom.deployed.json',
      },
    ]);
    const deployed = structuredClone(cfg);
    deployed.rules[0]!.s3Action.kmsKeyArn = 'arn:aws:kms:us-east-1:123456789012:key/0f0e0d0c-0b0a-4909-8807-060504030201';
    expect(rulesAwaitingCreatedKey(deployed)).toEqual([]);
  });
});

describe('gateway.worker.thread', () => {
  it('"auto" uses a delivery thread only with a second CPU for it; "yes" and "no" say so', async () => {
    const { useDeliveryThread } = await import('../../cli/commands/gateway.js');
    expect([useDeliveryThread('auto', 1), useDeliveryThread('auto', 2), useDeliveryThread('yes', 1), useDeliveryThread('no', 8)]).toEqual([false, true, true, false]);
  });
});
