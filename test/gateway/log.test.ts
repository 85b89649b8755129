/** The logger's net for sensitive fields: top level and one level down, in a copy, on lines and child bindings. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { censorSensitive, childLogger, createLogger, logLevel } from '../../gateway/runtime/log.js';
import { capturedLog } from './helpers.js';

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
    const captured = capturedLog('info');
    const log = childLogger(captured.log, { credentials: 'AKIA', node: 'n1' });
    log.info({ messageId: 'm1', headers: { subject: 'private' }, session: { secret: 's3' } }, 'accepted');
    expect(captured.lines).toHaveLength(1);
    expect(captured.lines[0]).toMatchObject({ credentials: '[redacted]', node: 'n1', messageId: 'm1', headers: '[redacted]', session: { secret: '[redacted]' }, msg: 'accepted' });
    expect(captured.raw.join('\n')).not.toMatch(/AKIA|private|s3"/);
  });
});

describe('LOG_LEVEL', () => {
  it('names the variable and the levels there are, not pino\'s "must be included in custom levels"', () => {
    expect([logLevel(undefined), logLevel(''), logLevel('DEBUG'), logLevel(undefined, 'warn')]).toEqual(['info', 'info', 'debug', 'warn']);
    expect(() => logLevel('verbose')).toThrow('LOG_LEVEL: "verbose" is not a log level\n    fix: use one of fatal, error, warn, info, debug, trace, silent');
    const saved = process.env.LOG_LEVEL;
    process.env.LOG_LEVEL = 'verbose';
    try {
      expect(() => createLogger()).toThrow(/LOG_LEVEL: "verbose" is not a log level/);
    } finally {
      if (saved === undefined) delete process.env.LOG_LEVEL;
      else process.env.LOG_LEVEL = saved;
    }
  });

  it('`mailroom gateway` refuses it before starting, with the exit code of other config errors', async () => {
    const bin = fileURLToPath(new URL('../../bin/mailroom.js', import.meta.url));
    const config = fileURLToPath(new URL('../../examples/minimal.json', import.meta.url));
    const out = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
      execFile(process.execPath, [bin, 'gateway', '--config', config], { env: { ...process.env, LOG_LEVEL: 'verbose' } }, (err, _o, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? null : 0, stderr })),
    );
    expect(out.stderr).toContain('LOG_LEVEL: "verbose" is not a log level');
    expect(out.stderr).not.toContain('custom levels');
    expect(out.code).toBe(2);
  }, 30_000);
});
