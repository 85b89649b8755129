import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../runtime/log.js';
import type { ReadinessCheck } from './health.js';
import { CONTENT_TYPE, type Registry } from './registry.js';

/**
 * The operator's HTTP listener: GET /metrics (Prometheus text), /healthz (the process runs its event loop) and
 * /readyz (200 when it can accept and deliver mail, else 503 with what is wrong). Nothing else; nothing about
 * messages is served here.
 */
export class OpsHttpServer {
  private readonly server: Server;

  constructor(
    private readonly deps: { registry: Registry; readiness: ReadinessCheck; log: Logger },
  ) {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const send = (status: number, type: string, body: string) => {
        res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      };
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'GET only\n');
      if (path === '/healthz') return send(200, 'text/plain', 'ok\n');
      if (path === '/metrics') {
        deps.registry.render().then(
          (text) => send(200, CONTENT_TYPE, text),
          (err: Error) => send(500, 'text/plain', `${err.message}\n`),
        );
        return;
      }
      if (path === '/readyz') {
        deps.readiness.check().then(
          (r) => {
            if (!r.ready) deps.log.warn({ checks: r.checks }, 'not ready');
            send(r.ready ? 200 : 503, 'application/json', `${JSON.stringify(r)}\n`);
          },
          (err: Error) => send(503, 'application/json', `${JSON.stringify({ ready: false, checks: { error: err.message } })}\n`),
        );
        return;
      }
      send(404, 'text/plain', 'not found: /metrics, /healthz, /readyz\n');
    });
    // Scrapers and probes are quick; an idle or slow one must not hold a socket for long.
    this.server.requestTimeout = 10_000;
    this.server.headersTimeout = 5_000;
    this.server.keepAliveTimeout = 5_000;
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const addr = this.server.address() as AddressInfo;
    this.deps.log.info({ host: addr.address, port: addr.port }, 'metrics and health listening');
    return addr;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
