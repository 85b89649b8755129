/** AUTH limits: failures per client address in a sliding window, and a bounded queue of password checks. */
import { describe, expect, it } from 'vitest';
import { AuthFailures, CheckQueue, ChecksBusyError } from '../../gateway/smtp/auth-limits.js';

describe('AUTH limits', () => {
  it('failures per address in a sliding window: locked at the limit until the oldest leaves the window; IPv4-mapped is the same address', () => {
    let t = 1_000_000;
    const f = new AuthFailures(3, 60_000, () => t);
    expect(f.fail('192.0.2.1')).toBe(false);
    t += 10_000;
    expect(f.fail('::ffff:192.0.2.1')).toBe(false);
    t += 10_000;
    expect(f.lockedFor('192.0.2.1')).toBe(0);
    expect(f.fail('192.0.2.1')).toBe(true);
    expect(f.lockedFor('192.0.2.1')).toBe(40_000);
    expect(f.lockedFor('192.0.2.2')).toBe(0);
    t += 40_000; // the first failure leaves the window
    expect(f.lockedFor('192.0.2.1')).toBe(0);
    expect(f.fail('192.0.2.1')).toBe(true);
    expect(f.lockedFor('192.0.2.1')).toBe(10_000);
  });

  it('password checks: at most `concurrency` at once, at most `maxQueued` waiting, the rest refused at once', async () => {
    const q = new CheckQueue(2, 1);
    let running = 0;
    let most = 0;
    const releases: Array<() => void> = [];
    const check = () =>
      q.run(async () => {
        most = Math.max(most, ++running);
        await new Promise<void>((r) => releases.push(r));
        running--;
        return true;
      });
    const settle = () => new Promise((r) => setImmediate(r));
    const accepted = [check(), check(), check()];
    await expect(check()).rejects.toBeInstanceOf(ChecksBusyError);
    await settle();
    expect([running, releases.length]).toEqual([2, 2]);
    releases.shift()!(); // the first ends: the waiting one takes its slot
    await settle();
    expect([running, releases.length]).toEqual([2, 2]);
    for (const r of releases.splice(0)) r();
    expect(await Promise.all(accepted)).toEqual([true, true, true]);
    expect(most).toBe(2);
  });
});
