import { stat } from 'node:fs/promises';
import { coalesced } from '../runtime/coalesce.js';
import type { Logger } from '../runtime/log.js';
import type { Enqueuer } from '../queue/enqueue.js';
import { SpoolFormatError } from '../spool/format.js';
import type { SpoolDirectory } from '../spool/directory.js';
import { SpoolMissingError, type SpoolReader } from '../spool/reader.js';
import { SpoolKeyError } from '../spool/seal.js';
import { within } from '../runtime/timeout.js';

/**
 * Re-enqueues spooled messages that have no jobs: a crash before the enqueue, or a Redis that lost its data
 * (restarted without persistence, failed over). Runs at start, after every Redis reconnection and periodically.
 *
 * Races, and why they are safe:
 * - The accept path from creating a batch file to its jobs: the writer owns the file until its round is done (which
 *   also covers the writer's empty spares), then the intake holds it in flight until its accept is settled
 *   (`isBusy`).
 * - A release job deleting a delivered file: it deletes the file before its job completes, so "no job" is only
 *   seen after the file is gone, and reading it then fails with SpoolMissingError — nothing is re-sent.
 * Re-enqueuing a message whose jobs were lost re-runs all its rules: the same keys are written again and
 * notifications are published again (at-least-once, as SES).
 */
export class SpoolRecovery {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly spool: { directory: SpoolDirectory; reader: SpoolReader },
    private readonly enqueuer: Enqueuer,
    /** The intake's own: files whose accept is not settled, or that its writer still writes. */
    private readonly isBusy: (fileId: string) => boolean,
    private readonly log: Logger,
    /** How long a re-enqueue may wait for Redis before the pass fails (and runs again later). */
    private readonly timeoutMs: number,
  ) {}

  /** One pass; concurrent calls coalesce into the running pass plus at most one more. */
  readonly run = coalesced(() => this.pass());

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.run().catch((err: Error) => this.log.warn({ err: err.message }, 'spool recovery pass failed; will try again')), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * A file with no jobs that cannot be read whole: a file the gateway was writing or flushing when it (or the
   * machine) stopped, before its jobs went in (torn: none of its messages was answered 250, their clients send them
   * again) — or, should Redis also have lost jobs, one the disk damaged. Either way it is not delivered, and not
   * deleted. (A torn file whose jobs did go in is refused by its delivery instead: see deliver.ts.)
   */
  private async setAside(id: string, err: Error): Promise<void> {
    try {
      const to = await this.spool.directory.setAside(id);
      this.log.error({ spoolFile: id, movedTo: to, err: err.message }, 'spool file is torn or damaged: set aside, not delivered (a file being written when the gateway stopped: its clients were not answered 250 and send again)');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.log.error({ spoolFile: id, err: err.message, moveErr: (e as Error).message }, 'spool file is torn or damaged and could not be set aside; left in place for an operator');
    }
  }

  private async pass(): Promise<{ checked: number; requeued: number }> {
    let checked = 0;
    let requeued = 0;
    // Sealed files whose key is not at hand (not configured, KMS refusing): kept as they are, tried again next pass.
    const unopened: Array<{ id: string; err: Error }> = [];
    for (const id of await this.spool.directory.list()) {
      if (this.isBusy(id)) continue;
      checked++;
      if (await this.enqueuer.hasJobs(id)) continue;
      let file;
      try {
        file = await this.spool.reader.entries(id);
      } catch (err) {
        if (err instanceof SpoolMissingError) continue;
        if (err instanceof SpoolKeyError) {
          unopened.push({ id, err });
          continue;
        }
        if (err instanceof SpoolFormatError) {
          // An empty file holds no message (a spare left by a crash, removed at the next start): nothing to set aside.
          if (await stat(this.spool.directory.path(id)).then((s) => s.size === 0, () => true)) continue;
          await this.setAside(id, err);
          continue;
        }
        throw err;
      }
      // The accept path may have taken this file up while we read it (an abandon in progress): leave it to it.
      if (this.isBusy(id)) continue;
      await within(this.enqueuer.add(file), this.timeoutMs, () => new Error(`Redis did not confirm the jobs of spool file ${id} within ${this.timeoutMs} ms`));
      requeued += file.entries.length;
      this.log.warn({ spoolFile: id, messageIds: file.entries.map((e) => e.record.envelope.messageId) }, 'spooled messages had no jobs; enqueued again');
    }
    if (unopened.length > 0) {
      this.log.error({ files: unopened.length, spoolFiles: unopened.slice(0, 10).map((u) => u.id), err: unopened[0]!.err.message }, 'sealed spool files without jobs cannot be opened: not enqueued, kept; they are enqueued by the first pass after the key is available');
    }
    if (requeued > 0) this.log.info({ checked, requeued }, 'spool recovery done');
    return { checked, requeued };
  }
}
