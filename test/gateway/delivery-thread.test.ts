/**
 * `mailroom gateway` runs its workers in a thread of their own (worker/thread.ts). When that thread dies, the SMTP
 * thread keeps accepting, the thread is started again, and nothing accepted meanwhile is lost.
 */
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../../gateway/gateway.js';
import { ACCOUNT, capturedLog, createBuckets, listKeys, rawMessage, REGION, runtimeFor, sendRaw, startBackends, waitFor, type Backends } from './helpers.js';

let backends: Backends;
let gw: RunningGateway | undefined;

beforeAll(async () => {
  backends = await startBackends('mailroom-thread-', { motoEnv: true });
  await createBuckets(backends.aws, 'thread');
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  await backends?.stop();
});

describe('delivery thread', () => {
  it('is started again after it dies; mail accepted meanwhile is delivered', async () => {
    const { log, lines } = capturedLog();
    const runtime = runtimeFor({
      region: REGION,
      accountId: ACCOUNT,
      ruleSetName: 'thread',
      rules: [{ name: 'all', recipients: ['example.com'], s3Action: { bucketName: 'thread', objectKeyPrefix: 'in/' } }],
      gateway: {
        hostname: 'mx.thread.test',
        spoolDir: join(backends.dir.path, 'spool'),
        smtp: { port: 0, reverseDns: false },
        redis: { url: backends.redis.url, prefix: 'thread' },
        // A job the dead thread held is taken over after its lock expires.
        worker: { lockDurationMs: 2_000, stalledIntervalMs: 1_000, shutdownTimeoutMs: 2_000 },
        http: { port: 0, readyCacheMs: 1, checkTimeoutMs: 2_000 },
      },
    });
    gw = await startGateway(runtime, { smtp: true, workers: true, deliveryThread: true }, log);
    const port = gw.smtpAddress!.port;
    const send = (subject: string) => sendRaw(port, { from: 'a@origin.example', to: ['user@example.com'] }, rawMessage([['Subject', subject]], 'hello\r\n'));
    const delivered = (id: string) => waitFor(`${id} delivered`, async () => (await listKeys(backends.aws, 'thread', 'in/')).includes(`in/${id}`), 30_000, 200);

    const first = await send('before');
    await delivered(first.messageId);
    expect(lines.find((l) => l.msg === 'delivered' && l.messageId === first.messageId)).toMatchObject({ thread: 'delivery', node: gw.nodeId });

    const readyz = async () => JSON.parse(await (await fetch(`http://127.0.0.1:${gw!.httpAddress!.port}/readyz`, { signal: AbortSignal.timeout(10_000) })).text()) as { ready: boolean; checks: Record<string, string> };
    expect(await readyz()).toMatchObject({ ready: true, checks: { delivery: 'ok' } });

    // Kill the thread as a crash would (the test reaches into the private field: nothing outside may).
    await (gw.deliveryThread as unknown as { worker: Worker }).worker.terminate();
    // Not ready while deliveries are down: a load balancer should send new mail elsewhere.
    const down = await readyz();
    expect(down.ready).toBe(false);
    expect(down.checks.delivery).toMatch(/^delivery thread down since .*; restarting$/);
    const during = await send('while the thread is down');
    expect(during.messageId).not.toBe('');
    await waitFor('restart logged', async () => lines.some((l) => l.msg === 'delivery thread restarted'), 15_000, 100);
    expect(lines.some((l) => l.msg === 'delivery thread stopped unexpectedly; mail stays spooled, restarting it')).toBe(true);
    expect(await readyz()).toMatchObject({ ready: true, checks: { delivery: 'ok' } });
    const after = await send('after');
    await delivered(during.messageId);
    await delivered(after.messageId);
    // Each delivered once, and the spool released. (An object is in S3 a moment before its "delivered" line, logged
    // when the job's deliveries are done and posted from the thread, reaches this one: wait for the lines, then count.)
    const ids = [first.messageId, during.messageId, after.messageId];
    await waitFor('delivered lines', async () => ids.every((id) => lines.some((l) => l.msg === 'delivered' && l.messageId === id)), 10_000, 50);
    expect(lines.filter((l) => l.msg === 'delivered').map((l) => l.messageId).sort()).toEqual(ids.sort());
    await waitFor('spool empty', async () => (await gw!.spool.list()).length === 0, 15_000, 200);

    await gw.stop();
    gw = undefined;
  }, 90_000);
});
