import { defineConfig } from 'vitest/config';

/**
 * The AWS SDK warns on stderr, once per process, that its releases after January 2027 need Node 22. Supported Node
 * (22, 24) never triggers it; CI's machine still runs Node 20, where the notice would lead the stderr of every CLI
 * the tests spawn and break assertions on it. So it is turned off there, for the tests only.
 */
const olderThan22 = Number(process.versions.node.split('.')[0]) < 22;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real servers (moto, Redis, terraform); give them room but never hang forever.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two files at a time: most of a file's time is spent waiting on the servers and processes it starts, and vitest's
    // default on two cores (one file at a time) left a core idle for most of the suite.
    maxWorkers: 2,
    reporters: ['default', './test/support/summary-reporter.ts'],
    env: olderThan22 ? { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } : {},
  },
});
