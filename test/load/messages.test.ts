/** The load generator's messages: MailComposer's MIME, the exact size asked for, a unique token each, big ones streamed. */
import { describe, expect, it } from 'vitest';
import { MessageFactory, REALISTIC_MIX, STREAM_ABOVE_BYTES, tokenOfMessageId, type LoadMessage } from '../../load/messages.js';

async function bytesOf(m: LoadMessage): Promise<Buffer> {
  if (m.data) return m.data;
  const chunks: Buffer[] = [];
  for await (const c of m.stream!()) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const header = (msg: Buffer, name: string) => new RegExp(`^${name}: (.*)$`, 'mi').exec(msg.subarray(0, msg.indexOf('\r\n\r\n')).toString('latin1'))?.[1];

describe('fixed size', () => {
  it('is exactly --size bytes of CRLF MIME, with the token in Message-ID, Subject and X-Mailroom-Load', async () => {
    for (const bytes of [1024, 1025, 10 * 1024, 10 * 1024 + 79, 512 * 1024]) {
      const f = new MessageFactory({ size: { kind: 'fixed', bytes }, runId: 'abcd1234', from: 'load@origin.example', to: ['a@example.com', 'b@example.com'], maxBytes: 40 * 1024 * 1024 });
      await f.prepare();
      const m = f.message(7);
      const msg = await bytesOf(m);
      expect(msg.length, `${bytes}`).toBe(bytes);
      expect(m.bytes).toBe(bytes);
      expect(/(^|[^\r])\n/.test(msg.toString('latin1'))).toBe(false); // no bare LF
      expect(msg.subarray(-2).toString()).toBe('\r\n');
      expect(tokenOfMessageId(header(msg, 'Message-ID'))).toBe(m.token);
      expect(header(msg, 'X-Mailroom-Load')).toBe(m.token);
      expect(header(msg, 'Subject')).toBe(`mailroom load ${m.token}`);
      expect(header(msg, 'To')).toBe('a@example.com, b@example.com');
      expect(header(msg, 'Content-Type')).toMatch(/^multipart\/alternative/);
      for (const line of msg.toString('latin1').split('\r\n')) expect(line.length).toBeLessThanOrEqual(998);
    }
  });

  it('gives every message its own token, and reuses a buffer without leaking the previous token', async () => {
    const f = new MessageFactory({ size: { kind: 'fixed', bytes: 4096 }, runId: 'run00001', from: 'l@o.example', to: ['a@example.com'], maxBytes: 40 * 1024 * 1024 });
    await f.prepare();
    const a = f.message(1);
    const first = Buffer.from(a.data!);
    const b = f.message(2, a.data);
    expect(b.token).not.toBe(a.token);
    expect(b.data!.buffer).toBe(a.data!.buffer);
    expect(b.data!.toString('latin1')).toBe(first.toString('latin1').replaceAll(a.token, b.token));
  });
});

describe('the realistic mix', () => {
  it('draws its classes in their shares and sizes, attachments base64 as MailComposer writes them, the big ones streamed', async () => {
    const f = new MessageFactory({ size: { kind: 'mix', name: 'realistic' }, runId: 'mix00001', from: 'l@o.example', to: ['a@example.com'], maxBytes: 40 * 1024 * 1024 });
    await f.prepare();
    const n = 2000;
    const counts = { text: 0, attachments: 0, large: 0 };
    const firstOf = new Map<string, number>();
    for (let seq = 0; seq < n; seq++) {
      const m = f.message(seq);
      counts[m.shape]++;
      if (!firstOf.has(m.shape)) firstOf.set(m.shape, seq);
      const cls = REALISTIC_MIX.find((c) => c.shape === m.shape)!;
      expect(m.bytes).toBeGreaterThanOrEqual(cls.lo * 0.98);
      expect(m.bytes).toBeLessThanOrEqual(cls.hi);
      expect(!!m.stream).toBe(m.bytes > STREAM_ABOVE_BYTES);
    }
    expect(counts.text / n).toBeGreaterThan(0.85);
    expect(counts.attachments / n).toBeGreaterThan(0.06);
    expect(counts.attachments / n).toBeLessThan(0.12);
    expect(counts.large).toBeGreaterThan(5);
    // One of each, read whole: its length is what it said, and each attachment is valid base64 of whole lines.
    for (const shape of ['text', 'attachments', 'large']) {
      const m = f.message(firstOf.get(shape)!);
      const msg = await bytesOf(m);
      expect(msg.length).toBe(m.bytes);
      expect(header(msg, 'Content-Type')).toMatch(/^multipart\/(alternative|mixed)/);
      if (shape === 'large') continue; // its lines are the attachment generator's, checked on the smaller ones
      const parts = msg.toString('latin1').split(/\r\n----_NmP-[^\r\n]*\r\n/);
      for (const p of parts.filter((x) => /Content-Transfer-Encoding: base64/.test(x))) {
        const body = p.slice(p.indexOf('\r\n\r\n') + 4).replace(/\r\n$/, '');
        for (const line of body.split('\r\n')) expect(line).toMatch(/^[A-Za-z0-9+/]{76}$/);
      }
    }
  });
});
