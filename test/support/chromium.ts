/**
 * Headless Chromium (Debian's `chromium`) driven over the Chrome DevTools Protocol on a pipe
 * (--remote-debugging-pipe: commands on fd 3, events and answers on fd 4, NUL-separated JSON) — no WebSocket, no
 * extra package. For tests that open a page as a browser would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { onPath } from '../../gateway/local/services.js';
import { tempDir } from './files.js';

export const CHROMIUM = ['chromium', 'chromium-browser'].find((c) => onPath(c));

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars', '--remote-debugging-pipe'];

interface CdpMessage {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

export interface Browser {
  /** A command to the browser, or with `sessionId` to a page. */
  send<T = Record<string, unknown>>(method: string, params?: Record<string, unknown>, sessionId?: string): Promise<T>;
  /** Resolves with the params of the next `method` event (of `sessionId`). */
  once(method: string, sessionId?: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Every event seen so far. */
  events: CdpMessage[];
  close(): Promise<void>;
}

export async function launchChromium(): Promise<Browser> {
  if (!CHROMIUM) throw new Error('chromium is not installed (npm run setup installs it: apt-get install chromium)');
  const profile = await tempDir('mailroom-chromium-');
  const child: ChildProcess = spawn(CHROMIUM, [...FLAGS, `--user-data-dir=${profile.path}`, 'about:blank'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const toBrowser = child.stdio[3] as Writable;
  const fromBrowser = child.stdio[4] as Readable;
  const pending = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  const waiters: Array<{ method: string; sessionId: string | undefined; resolve: (p: Record<string, unknown>) => void }> = [];
  const events: CdpMessage[] = [];
  let buf = Buffer.alloc(0);
  let exited = false;
  child.on('exit', () => {
    exited = true;
    for (const p of pending.values()) p.reject(new Error(`chromium exited: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
  });
  fromBrowser.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    for (let i = buf.indexOf(0); i >= 0; i = buf.indexOf(0)) {
      const msg = JSON.parse(buf.subarray(0, i).toString('utf8')) as CdpMessage;
      buf = buf.subarray(i + 1);
      if (msg.id !== undefined) {
        const p = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(msg.error.message));
        else p?.resolve(msg.result ?? {});
      } else if (msg.method) {
        events.push(msg);
        const w = waiters.findIndex((x) => x.method === msg.method && x.sessionId === msg.sessionId);
        if (w >= 0) waiters.splice(w, 1)[0]!.resolve(msg.params ?? {});
      }
    }
  });
  let nextId = 1;
  const send = <T>(method: string, params: Record<string, unknown> = {}, sessionId?: string) =>
    new Promise<T>((resolve, reject) => {
      if (exited) return reject(new Error('chromium is not running'));
      const id = nextId++;
      pending.set(id, { resolve: resolve as (r: Record<string, unknown>) => void, reject });
      toBrowser.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });
  const once = (method: string, sessionId?: string, timeoutMs = 30_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${method} within ${timeoutMs} ms`)), timeoutMs);
      waiters.push({ method, sessionId, resolve: (p) => (clearTimeout(t), resolve(p)) });
    });
  return {
    send,
    once,
    events,
    async close() {
      if (!exited) {
        await send('Browser.close').catch(() => undefined);
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => (child.kill('SIGKILL'), resolve()), 5_000);
          child.once('exit', () => (clearTimeout(t), resolve()));
          if (exited) resolve();
        });
      }
      await profile.remove();
    },
  };
}
