/** The logger's net for sensitive fields: top level and one level down, in a copy, on lines and child bindings. */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { censorSensitive, childLogger, streamLogger } from '../../gateway/log.js';

describe('censorSensitive', () => {
  it('replaces sensitive keys at the top and one level down, leaving the caller\'s object as it was', () => {
    const session = { user: 'relay', auth: { username: 'relay', password: 'hunter2' } };
    const obj = { messageId: 'm1', password: 'p', session, nested: { token: 't', keep: 1 } };
    const out = censorSensitive(obj);
    expect(out).toEqual({ messageId: 'm1', password: '[redacted]', session: { user: 'relay', auth: '[redacted]' }, nested: { token: '[redacted]', keep: 1 } });
    expect(obj.password).toBe('p');
    expect(session.auth.password).toBe('hunter2');
    expect(obj.nested.token).toBe('t');
  });

  it('returns the same object when nothing is sensitive; arrays, errors and buffers are not walked', () => {
    const obj = { messageId: 'm1', rules: [{ data: 'x' }], err: Object.assign(new Error('boom'), { body: 'b' }), buf: Buffer.from('data') };
    expect(censorSensitive(obj)).toBe(obj);
  });
});

describe('logger', () => {
  it('censors lines and the bindings of children made by childLogger', () => {
    const out: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        out.push(chunk.toString('utf8'));
        cb();
      },
    });
    const log = childLogger(streamLogger(sink, 'info'), { credentials: 'AKIA', node: 'n1' });
    log.info({ messageId: 'm1', headers: { subject: 'private' }, session: { secret: 's3' } }, 'accepted');
    const line = JSON.parse(out.join('')) as Record<string, unknown>;
    expect(line).toMatchObject({ credentials: '[redacted]', node: 'n1', messageId: 'm1', headers: '[redacted]', session: { secret: '[redacted]' }, msg: 'accepted' });
    expect(out.join('')).not.toMatch(/AKIA|private|s3"/);
  });
});
