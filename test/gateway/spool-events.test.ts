/** The spool's events as metrics and log lines (gateway/observability/spool-events.ts). */
import { describe, expect, it } from 'vitest';
import { GatewayMetrics } from '../../gateway/observability/metrics.js';
import { spoolEventsFor } from '../../gateway/observability/spool-events.js';
import { capturedLog } from './helpers.js';

describe('spool events', () => {
  it('counts batch files by kind, and logs failed spares at once, then at most once a minute with the count not logged', async () => {
    const { log, lines } = capturedLog('info');
    const metrics = new GatewayMetrics('n1');
    let t = 1_000_000;
    const ev = spoolEventsFor(log, metrics, () => t);
    const exposition = async () => metrics.registry.render();
    expect(await exposition()).toMatch(/mailroom_spool_batch_files_total\{file="created"\} 0/);
    ev.batchFile!('spare');
    ev.batchFile!('spare');
    ev.batchFile!('created');
    expect(await exposition()).toMatch(/mailroom_spool_batch_files_total\{file="spare"\} 2/);
    expect(await exposition()).toMatch(/mailroom_spool_batch_files_total\{file="created"\} 1/);

    const full = Object.assign(new Error('ENOSPC: no space left on device, open'), { code: 'ENOSPC' });
    ev.failed!('create', full);
    for (let i = 0; i < 5; i++) {
      t += 1_000;
      ev.failed!('create', full);
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, during: 'create', err: full.message });
    expect(String(lines[0]!.msg)).toMatch(/space, inodes and permissions/);
    t += 60_000;
    ev.failed!('directory fsync', new Error('EIO: i/o error, fsync'));
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ during: 'directory fsync', notLogged: 5 });

    ev.lost!('/spool/messages/x.msg');
    expect(lines[2]).toMatchObject({ level: 50, spoolFile: '/spool/messages/x.msg' });
    expect(String(lines[2]!.msg)).toMatch(/another process/);
  });
});
