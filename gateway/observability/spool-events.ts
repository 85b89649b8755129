import type { Logger } from '../runtime/log.js';
import type { SpoolEvents } from '../spool/writer.js';
import type { GatewayMetrics } from './metrics.js';

/** A disk that keeps failing would otherwise say the same thing every second (spares retry after 1 s). */
const REPEAT_LOG_MS = 60_000;

/**
 * The spool's events as metrics and log lines. Spares failing to be made is no refusal of mail by itself (rounds then
 * create their own files, at a second disk flush each), so it is a warning; the first one is logged at once, repeats
 * at most once a minute with how many were not logged. `metrics` is absent until the node's metrics exist (the first
 * spares are made at start, before them).
 */
export function spoolEventsFor(log: Logger, metrics: GatewayMetrics | undefined, now: () => number = Date.now): SpoolEvents {
  let lastLogged = -Infinity;
  let unlogged = 0;
  return {
    batchFile: (file) => metrics?.spoolBatchFiles.inc({ file }),
    failed: (during, err) => {
      if (now() - lastLogged < REPEAT_LOG_MS) {
        unlogged++;
        return;
      }
      lastLogged = now();
      log.warn(
        { during, err: err.message, ...(unlogged ? { notLogged: unlogged } : {}) },
        'spool: could not make spare batch files (rounds create their own files meanwhile, one more disk flush each); check the spool directory\'s space, inodes and permissions',
      );
      unlogged = 0;
    },
    lost: (path) =>
      log.error({ spoolFile: path }, 'spool: a spare batch file was removed, moved or written by another process — is a second gateway or a cleanup job using this spool directory?'),
  };
}
