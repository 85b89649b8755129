/** The container's files, read here (no Docker), and the image's health check run as the image would run it. */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

describe('container files, read (the image is built and run in test/container/image.test.ts)', () => {
  const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));

  it('the image serves HTTP and its HEALTHCHECK passes while /healthz answers, fails when nothing does', async () => {
    const dockerfile = readFileSync(root('docker/Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^\s+MAILROOM_HTTP_PORT=9464$/m);
    const [, flags, exec] = /^HEALTHCHECK ([^\n]*?)\\\n\s+CMD (\[.*\])$/m.exec(dockerfile) ?? [];
    expect(flags).toMatch(/--start-period=\d+s/);
    const [cmd, ...args] = JSON.parse(exec!) as string[];
    expect(cmd).toBe('node');
    const server = createServer((req, res) => res.writeHead(req.url === '/healthz' ? 200 : 404).end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const env = { ...process.env, MAILROOM_HTTP_PORT: String((server.address() as { port: number }).port) };
    const run = () => new Promise<number>((resolve) => execFile(process.execPath, args, { env, timeout: 10_000 }, (err) => resolve(err ? ((err as { code?: number }).code ?? 1) : 0)));
    expect(await run()).toBe(0);
    await new Promise((resolve) => server.close(resolve));
    expect(await run()).toBe(1);
  });
});
