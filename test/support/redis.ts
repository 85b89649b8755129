import { freePort } from './ports.js';
import { startProcess, waitForPort, type Started } from './process.js';

export interface RedisServer {
  port: number;
  url: string;
  stop: () => Promise<void>;
  /** Starts it again on the same port (after stop), e.g. for outage tests. */
  restart: () => Promise<void>;
}

/**
 * Starts redis-server on a free loopback port. No persistence unless asked: tests get a clean Redis, and a stopped
 * one comes back empty — which is exactly the "Redis lost its data" case the gateway must survive.
 */
export async function startRedis(opts: { persistDir?: string } = {}): Promise<RedisServer> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'yes', '--save', ''];
  if (opts.persistDir) args.push('--dir', opts.persistDir, '--appendonly', 'yes', '--appendfsync', 'always');
  else args.push('--appendonly', 'no');
  let proc: Started;
  const start = async () => {
    try {
      proc = startProcess('redis-server', args);
      await waitForPort(port, 15_000, proc.child);
    } catch (err) {
      throw new Error(`could not start redis-server (apt-get install redis-server): ${(err as Error).message}`);
    }
  };
  await start();
  return { port, url: `redis://127.0.0.1:${port}`, stop: () => proc.stop(), restart: start };
}
