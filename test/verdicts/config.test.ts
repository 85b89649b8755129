import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../shared/config/index.js';
import { parseDnsServer, parseEndpoint } from '../../shared/config/gateway.js';

const config = (gateway: unknown) => ({
  region: 'us-east-1',
  accountId: '123456789012',
  ruleSetName: 'inbound',
  rules: [{ name: 'deliver', recipients: ['example.com'], scanEnabled: true, s3Action: { bucketName: 'mail-bucket' } }],
  gateway,
});

function problems(gateway: unknown): Array<{ path: string; message: string; fix: string }> {
  try {
    parseConfig(config(gateway));
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('gateway.dns, gateway.authentication, gateway.scan', () => {
  it('defaults: the system resolver, 2 s × 2 tries, a 10,000-answer cache; authentication off; no scanner', () => {
    const g = parseConfig(config({})).config.gateway!;
    expect(g.dns).toEqual({ servers: [], timeoutMs: 2000, tries: 2, cacheSize: 10_000, cacheTtlMs: 300_000 });
    expect(g.authentication).toEqual({ enabled: false });
    expect(g.scan).toEqual({});
  });

  it('takes DNS servers with and without ports, and scanner endpoints as host:port or socket paths', () => {
    const g = parseConfig(
      config({
        dns: { servers: ['127.0.0.1:5353', '192.0.2.53', '2001:db8::53', '[::1]:5300'] },
        authentication: { enabled: true },
        scan: { spamd: { endpoint: '127.0.0.1:783' }, clamd: { endpoint: '/run/clamav/clamd.ctl', timeoutMs: 5000 } },
      }),
    ).config.gateway!;
    expect(g.scan.spamd).toEqual({ endpoint: '127.0.0.1:783', timeoutMs: 30_000, maxBytes: 1024 * 1024 });
    expect(g.scan.clamd).toEqual({ endpoint: '/run/clamav/clamd.ctl', timeoutMs: 5000 });
    expect(parseDnsServer('[::1]:5300')).toEqual({ address: '::1', port: 5300 });
    expect(parseDnsServer('2001:db8::53')).toEqual({ address: '2001:db8::53', port: 53 });
    expect(parseEndpoint('unix:/run/spamd.sock')).toEqual({ path: '/run/spamd.sock' });
    expect(parseEndpoint('[::1]:3310')).toEqual({ host: '::1', port: 3310 });
  });

  it('refuses bad values naming the field and the fix', () => {
    const p = problems({
      dns: { servers: ['dns.example', '192.0.2.1:99999'], timeoutMs: 0 },
      scan: { spamd: { endpoint: 'localhost' }, rspamd: { endpoint: '127.0.0.1:11333' }, clamd: { endpoint: 'unix:clamd.sock' } },
    });
    const at = (path: string) => p.find((x) => x.path === path);
    expect(at('gateway.dns.servers[0]')?.message).toContain('"dns.example" is not an IP address');
    expect(at('gateway.dns.servers[0]')?.fix).toContain('IP address of a DNS resolver');
    expect(at('gateway.dns.servers[1]')?.message).toContain('port outside 1-65535');
    expect(at('gateway.dns.timeoutMs')?.message).toContain('greater than 0');
    expect(at('gateway.scan.spamd.endpoint')?.message).toContain('"localhost" is neither host:port nor a unix socket path');
    expect(at('gateway.scan.spamd.endpoint')?.fix).toContain('e.g. "127.0.0.1:783"');
    expect(at('gateway.scan.clamd.endpoint')?.message).toContain('without an absolute path');
    expect(problems({ scan: { spamd: { endpoint: '127.0.0.1:783' }, rspamd: { endpoint: '127.0.0.1:11333' } } })).toEqual([
      { path: 'gateway.scan.rspamd', message: 'spamd and rspamd are both configured; a message gets one spam verdict', fix: 'keep one of gateway.scan.spamd and gateway.scan.rspamd' },
    ]);
  });
});
