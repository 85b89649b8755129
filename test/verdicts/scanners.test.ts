/**
 * The scanner clients against real spamd and clamd (started by the test) where the end-to-end test does not reach:
 * clamd refusing a message over its StreamMaxLength part-way through (its reply arrives before the request is
 * written whole), a unix socket and host:port, a scanner that accepts and never answers, nothing listening.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanVerdict } from '../../shared/ses/verdicts.js';
import { Spamd } from '../../gateway/verdicts/spam.js';
import { Clamd } from '../../gateway/verdicts/virus.js';
import { tempDir } from '../support/files.js';
import { EICAR, EICAR_SIGNATURE, startClamd, startSpamd, type Scanner } from './support.js';

let dir: Awaited<ReturnType<typeof tempDir>>;
let clamd: Scanner;
let spamd: Scanner;
let silent: Server;
const held: Socket[] = [];

beforeAll(async () => {
  dir = await tempDir('mailroom-scanners-');
  [clamd, spamd] = await Promise.all([startClamd(`${dir.path}/clamd`, { streamMaxLength: '1M' }), startSpamd(`${dir.path}/spamd`)]);
  silent = createServer((s) => void held.push(s));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
}, 120_000);

afterAll(async () => {
  for (const s of held) s.destroy();
  silent?.close();
  await Promise.all([clamd?.stop(), spamd?.stop()]);
  await dir?.remove();
});

const input = (m: Buffer) => ({ size: m.length, open: () => Readable.from([m]) });
const context = { messageId: 'test', mailFrom: 'a@sender.test', recipients: ['support@example.com'], byHost: 'mx.gateway.test' };

describe('clamd', () => {
  it('finds the signature, on its unix socket', async () => {
    const r = await new Clamd({ endpoint: clamd.endpoint, timeoutMs: 20_000 }).scan(input(Buffer.from(`Subject: x\r\n\r\n${EICAR}\r\n`)));
    expect(r).toEqual({ outcome: 'found', detail: `${EICAR_SIGNATURE}.UNOFFICIAL` });
  });

  it('a message over StreamMaxLength: clamd stops it, PROCESSING_FAILED, without waiting for the timeout', async () => {
    const t = Date.now();
    const r = await new Clamd({ endpoint: `unix:${clamd.endpoint}`, timeoutMs: 20_000 }).scan(input(Buffer.alloc(8 * 1024 * 1024, 'a')));
    expect(r.outcome).toBe('failed');
    // clamd's "INSTREAM size limit exceeded. ERROR", or — when its close beats that answer to us — the broken write.
    expect(r.detail).toMatch(/size limit exceeded|StreamMaxLength smaller/);
    expect(scanVerdict(r.outcome)).toBe('PROCESSING_FAILED');
    expect(Date.now() - t).toBeLessThan(10_000);
  });
});

describe('a scanner that does not answer, or is not there', () => {
  it('accepts and stays silent: PROCESSING_FAILED after timeoutMs', async () => {
    const port = (silent.address() as { port: number }).port;
    for (const scanner of [new Clamd({ endpoint: `127.0.0.1:${port}`, timeoutMs: 500 }), new Spamd({ endpoint: `127.0.0.1:${port}`, timeoutMs: 500, maxBytes: 1024 * 1024 })]) {
      const t = Date.now();
      const r = await scanner.scan(input(Buffer.from('Subject: x\r\n\r\nhello\r\n')), context);
      expect(r.outcome).toBe('failed');
      expect(r.detail).toContain('within 500 ms');
      expect(Date.now() - t).toBeLessThan(3_000);
    }
  });

  it('spamd stopped: PROCESSING_FAILED at once', async () => {
    const scanner = new Spamd({ endpoint: spamd.endpoint, timeoutMs: 20_000, maxBytes: 1024 * 1024 });
    const mail = Buffer.from('From: <a@sender.test>\r\nTo: <support@example.com>\r\nSubject: lunch\r\nDate: Fri, 02 Jan 2026 03:04:05 +0000\r\nMessage-ID: <1@sender.test>\r\n\r\nSee you at lunch tomorrow.\r\n');
    expect((await scanner.scan(input(mail), context)).outcome).toBe('clean');
    await spamd.stop();
    const r = await scanner.scan(input(mail), context);
    expect(r.outcome).toBe('failed');
    expect(r.detail).toContain('ECONNREFUSED');
  });
});
