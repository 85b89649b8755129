import { appendFileSync } from 'node:fs';
import type { Reporter, TestModule } from 'vitest/node';

/**
 * Ends the run with the plain "N passed, N failed, N skipped" line CI reads, whatever the runner prints.
 * scripts/test.mjs (npm test) runs vitest twice: it labels each run's line (MAILROOM_SUMMARY_LABEL), collects the
 * counts (MAILROOM_SUMMARY_FILE) and prints the plain line over both.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const m of modules) {
      // A file that failed with no failed test of its own: it did not load, or a hook failed and its tests skipped.
      if (m.state() === 'failed' && ![...m.children.allTests()].some((t) => t.result().state === 'failed')) failed++;
      for (const t of m.children.allTests()) {
        const s = t.result().state;
        if (s === 'passed') passed++;
        else if (s === 'failed') failed++;
        else skipped++;
      }
    }
    process.stdout.write(`\n${process.env.MAILROOM_SUMMARY_LABEL ?? ''}${passed} passed, ${failed} failed, ${skipped} skipped\n`);
    if (process.env.MAILROOM_SUMMARY_FILE) appendFileSync(process.env.MAILROOM_SUMMARY_FILE, JSON.stringify({ passed, failed, skipped }) + '\n');
  }
}
