/**
 * Container tooling for the tests that build and run docker/Dockerfile: podman and buildah as root with Debian's
 * runc (crun, podman's default, fails on this host's cgroups; runc needs explicit limits), stand-ins for the
 * official base images (no image registry is reachable here), and the image build itself.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLED_NPM, NODE_LTS, nodeRelease, packTarball } from '../../scripts/node-lts.mjs';

export const ROOT = join(import.meta.dirname, '..', '..');
const HERE = import.meta.dirname;

/** podman's global flags and `podman run`'s limits on this host (see the module comment). */
export const RUNTIME = ['--runtime', 'runc'];
export const LIMITS = ['--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=4096:4096'];

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; never throws for a non-zero exit (callers assert on `code` with the output shown). */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr: err && code === 1 && !stderr ? String(err.message) : stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** As run(), but throws with the command's output when it fails. */
export async function must(cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.code}:\n${r.stderr.slice(-4000)}\n${r.stdout.slice(-4000)}`);
  return r.stdout;
}

export const podman = (args: string[], opts?: Parameters<typeof run>[2]) => run('podman', [...RUNTIME, ...args], opts);
export const mustPodman = (args: string[], opts?: Parameters<typeof run>[2]) => must('podman', [...RUNTIME, ...args], opts);

/** Why the container tests cannot run on this machine, or undefined when they can. */
export function containerToolsMissing(): string | undefined {
  if (process.platform !== 'linux') return 'container tests run on Linux only';
  if (process.getuid?.() !== 0) return 'container tests need root (podman, buildah and debootstrap as root): run them as root after `npm run setup`';
  const missing = ['podman', 'buildah', 'debootstrap', 'runc', 'podman-compose', 'swaks'].filter(
    (tool) => !['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin'].some((dir) => existsSync(join(dir, tool))),
  );
  return missing.length > 0 ? `missing ${missing.join(', ')}: run \`npm run setup\` as root` : undefined;
}

/** The base image docker/Dockerfile builds FROM by default (its NODE_IMAGE build argument), as Docker names it. */
export function dockerfileBase(): { image: string; nodeLine: string } {
  const dockerfile = readFileSync(join(ROOT, 'docker', 'Dockerfile'), 'utf8');
  const name = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
  const line = name && /^node:(\d+)-bookworm(-slim)?$/.exec(name)?.[1];
  if (!name || !line) throw new Error(`docker/Dockerfile: expected ARG NODE_IMAGE=node:<line>-bookworm-slim, found ${name ?? 'none'}`);
  return { image: `docker.io/library/${name}`, nodeLine: line };
}

/** npm's `cafile` (the CA bundle of a TLS-intercepting network), or undefined when npm trusts the public CAs. */
export async function npmCafile(): Promise<string | undefined> {
  const out = (await must('npm', ['config', 'get', 'cafile'])).trim();
  return out && out !== 'null' && out !== 'undefined' && existsSync(out) ? out : undefined;
}

async function imageLabel(image: string, label: string): Promise<string | undefined> {
  const r = await podman(['image', 'inspect', '--format', `{{ index .Labels "${label}" }}`, image]);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

export interface StandIns {
  node: string;
  debian: string;
  /** Wall time of the build, or undefined when the cached images were used. */
  builtMs?: number;
}

/**
 * The stand-in base images (debian:bookworm-slim and the Dockerfile's Node image), built by stand-in-base.sh unless
 * both are already tagged with this recipe: same script, Node and npm release, CA bundle. debootstrap takes minutes;
 * a machine builds them once.
 */
export async function standInBases(): Promise<StandIns> {
  const { image: node, nodeLine } = dockerfileBase();
  const debian = 'docker.io/library/debian:bookworm-slim';
  const version = (NODE_LTS as Record<string, string>)[nodeLine];
  const npm = version && (BUNDLED_NPM as Record<string, string>)[version];
  if (!version || !npm) throw new Error(`docker/Dockerfile's base is Node ${nodeLine}, which scripts/node-lts.mjs does not pin (with its npm)`);
  const ca = await npmCafile();
  const script = join(HERE, 'stand-in-base.sh');
  const recipe = createHash('sha256')
    .update(readFileSync(script))
    .update(`${version} ${npm} ${process.arch}\n`)
    .update(ca ? readFileSync(ca) : '')
    .digest('hex')
    .slice(0, 16);
  if ((await imageLabel(node, 'org.mailroom.stand-in')) === recipe && (await imageLabel(debian, 'org.mailroom.stand-in')) === recipe) return { node, debian };
  const started = Date.now();
  const release = nodeRelease(version);
  const npmTarball = packTarball(`npm@${npm}`);
  await must('bash', [script, recipe, debian, node, release, npmTarball, ...(ca ? [ca] : [])], { timeoutMs: 20 * 60_000 });
  return { node, debian, builtMs: Date.now() - started };
}

/** `buildah bud` as `docker build` would run it: Docker image format (HEALTHCHECK kept), layer cache, no pull. */
export function buildahBuild(args: string[], timeoutMs = 20 * 60_000): Promise<Run> {
  return run('buildah', ['bud', ...RUNTIME, '--network', 'host', ...LIMITS, '--format', 'docker', '--layers', '--pull=false', ...args], { timeoutMs });
}

/** The Redis stand-in docker/compose.yml's `redis:7` resolves to, on the debian:bookworm-slim stand-in. */
export async function redisStandIn(debian: string): Promise<string> {
  const tag = 'docker.io/library/redis:7';
  const file = join(HERE, 'redis-stand-in.Containerfile');
  const recipe = createHash('sha256').update(readFileSync(file)).update((await podman(['image', 'inspect', '--format', '{{.Id}}', debian])).stdout).digest('hex').slice(0, 16);
  if ((await imageLabel(tag, 'org.mailroom.stand-in')) === recipe) return tag;
  const r = await buildahBuild(['--build-arg', `DEBIAN_IMAGE=${debian}`, '--label', `org.mailroom.stand-in=${recipe}`, '-f', file, '-t', tag, HERE]);
  if (r.code !== 0) throw new Error(`building the redis stand-in failed:\n${r.stderr.slice(-4000)}\n${r.stdout.slice(-2000)}`);
  return tag;
}

/** Streams a command's output lines to a callback while it runs (for `podman logs -f`). */
export function follow(cmd: string, args: string[], onLine: (line: string) => void): { stop: () => void } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let rest = '';
  const take = (b: Buffer) => {
    const lines = (rest + b.toString('utf8')).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) onLine(l);
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  return { stop: () => void child.kill('SIGTERM') };
}
