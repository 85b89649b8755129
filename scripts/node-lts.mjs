#!/usr/bin/env node
/**
 * Node.js binaries of the supported LTS lines, from the npm registry's `node-linux-<arch>` package (the one source
 * of Node releases reachable wherever npm is), unpacked once into a cache outside the checkout.
 *
 *   node scripts/node-lts.mjs 24        prints the path of that line's `node`, downloading it the first time
 *
 * Used by `npm test` (the Node 24 run), the cdktn synth test and the container test's stand-in base image.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The release tested per supported line; the container's default base (docker/Dockerfile) is the newer line. */
export const NODE_LTS = { 22: '22.23.5', 24: '24.22.3' };
/** The npm each pinned release bundles (its CHANGELOG): the container test's stand-in for the official image has it. */
export const BUNDLED_NPM = { '22.23.5': '10.9.9', '24.22.3': '11.19.1' };

/** ~/.cache/mailroom (or $XDG_CACHE_HOME/mailroom, or $MAILROOM_CACHE_DIR): survives `npm ci`, unlike node_modules. */
export function cacheDir() {
  const dir = process.env.MAILROOM_CACHE_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'mailroom');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** `npm pack <spec>` into the cache (npm's own registry, proxy and CA settings apply); returns the tarball's path. */
export function packTarball(spec, into = join(cacheDir(), 'tarballs')) {
  mkdirSync(into, { recursive: true });
  const out = execFileSync('npm', ['pack', spec, '--pack-destination', into, '--json', '--loglevel=error'], { encoding: 'utf8', timeout: 600_000 });
  const [{ filename }] = JSON.parse(out);
  return join(into, filename);
}

/** The unpacked `node-linux-<arch>` package of a release (bin/node, include/, share/), downloaded when missing. */
export function nodeRelease(version) {
  const arch = process.arch;
  const dir = join(cacheDir(), `node-v${version}-linux-${arch}`);
  if (existsSync(join(dir, 'bin', 'node'))) return dir;
  const tmp = mkdtempSync(join(cacheDir(), '.node-'));
  try {
    const tgz = packTarball(`node-linux-${arch}@${version}`, tmp);
    execFileSync('tar', ['-xzf', tgz, '-C', tmp]);
    const got = execFileSync(join(tmp, 'package', 'bin', 'node'), ['-p', 'process.version'], { encoding: 'utf8' }).trim();
    if (got !== `v${version}`) throw new Error(`node-linux-${arch}@${version} runs as ${got}`);
    try {
      renameSync(join(tmp, 'package'), dir);
    } catch (err) {
      // Another run unpacked it meanwhile: theirs is as good.
      if (!existsSync(join(dir, 'bin', 'node'))) throw err;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}

/** Path of the `node` binary of a supported line (22 or 24). */
export function nodeBinary(line) {
  const version = NODE_LTS[line];
  if (!version) throw new Error(`no Node ${line} release pinned; supported lines: ${Object.keys(NODE_LTS).join(', ')}`);
  return join(nodeRelease(version), 'bin', 'node');
}


if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const line = process.argv[2];
  if (!line) {
    process.stderr.write(`usage: node scripts/node-lts.mjs <${Object.keys(NODE_LTS).join('|')}>\n`);
    process.exit(2);
  }
  try {
    process.stdout.write(nodeBinary(line) + '\n');
  } catch (err) {
    process.stderr.write(`node-lts: ${err.message}\n`);
    process.exit(1);
  }
}
