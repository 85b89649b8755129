import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { connect, createServer } from 'node:net';
import { delimiter, join } from 'node:path';

/** Helper processes `mailroom local` starts when the user has none running: redis-server and moto_server. */

export const INSTALL_HINTS = {
  'redis-server': 'redis-server is not installed: install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) or set REDIS_URL to a running Redis',
  moto_server: "moto_server is not installed: install it (pip install 'moto[server]==5.2.1') or set AWS_ENDPOINT_URL to a running AWS emulator",
} as const;

export function onPath(cmd: string, env: NodeJS.ProcessEnv = process.env): boolean {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no free port'))));
    });
  });
}

/** Resolves once 127.0.0.1:port accepts connections; fails early if `child` exits, or after timeoutMs. */
export async function waitForPort(port: number, timeoutMs: number, child?: ChildProcess, output?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null) {
      const tail = output?.().trim().split('\n').slice(-3).join(' / ');
      throw new Error(`exited with code ${child.exitCode}${tail ? `: ${tail}` : ''} before listening on ${port}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface Service {
  name: string;
  url: string;
  port: number;
  stop(): Promise<void>;
}

async function startService(name: string, cmd: string, args: (port: number) => string[], scheme: string): Promise<Service> {
  const port = await freeLoopbackPort();
  const child = spawn(cmd, args(port), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (b: Buffer) => (out = (out + b.toString()).slice(-4000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('error', (e) => (out += `\n${e.message}`));
  try {
    await waitForPort(port, 30_000, child, () => out);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`could not start ${name}: ${(err as Error).message}`);
  }
  return {
    name,
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
        child.once('exit', () => (clearTimeout(kill), resolve()));
        child.kill('SIGTERM');
      }),
  };
}

/** A throwaway Redis: loopback only, no persistence (local mode keeps nothing between runs). */
export function startRedisServer(): Promise<Service> {
  return startService('redis-server', 'redis-server', (p) => ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], 'redis');
}

export function startMotoServer(): Promise<Service> {
  return startService('moto_server', 'moto_server', (p) => ['-H', '127.0.0.1', '-p', String(p)], 'http');
}
