import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * The part of the suite `npm test` runs a second time on Node 24 (scripts/test.mjs), in about two minutes: the unit
 * tests of the shared contract and the gateway, a gateway end-to-end run against Redis and moto, and the infra synth.
 * The whole suite runs on the machine's Node first; the container test runs the gateway on Node 24 in its image.
 */
export default defineConfig({
  test: {
    ...base.test,
    include: [
      'test/*.test.ts',
      'test/shared/*.test.ts',
      'test/gateway/settings.test.ts',
      'test/gateway/recipient-routing.test.ts',
      'test/gateway/spool-job-contract.test.ts',
      'test/gateway/spool-free-space.test.ts',
      'test/gateway/auth-limits.test.ts',
      'test/gateway/intake.test.ts',
      'test/gateway/library-internals.test.ts',
      'test/gateway/e2e.test.ts',
      'test/infra/snapshot.test.ts',
      'test/infra/constructs.test.ts',
      'test/infra/validation.test.ts',
    ],
    // The Ruby S3 Encryption Client interop is the slowest unit-level file (~90 s) and independent of Node's version:
    // it checks bytes written by the shared envelope code, which test/shared/envelope.test.ts covers on Node 24.
    exclude: ['test/shared/envelope-interop.test.ts'],
  },
});
