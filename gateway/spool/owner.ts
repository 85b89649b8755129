import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { link, mkdir, readFile, realpath, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

/**
 * One accepting process (SMTP front) per spool directory. It is the spool's only writer: at start it drops partial
 * files and empty ones (Spool.init), its recovery pass treats a file without jobs as a stopped writer's, and its
 * spares are written without a directory fsync (spares.ts). A second front on the same directory would remove or set
 * aside the first one's files while it writes them — mail answered 250 and then lost — so it is refused at start,
 * before it touches anything there.
 *
 * The claim is a file `accepting` in the spool directory, made with link(2) (which fails if the name exists) and
 * touched every HEARTBEAT_MS while held. It names the process as the kernel knows it: host, boot id, pid namespace,
 * pid and the process's start time. A claim made in this same view of the machine (same boot, same pid namespace) is
 * live exactly while that pid runs with that start time — a crash is taken over at once, and a reused pid is not
 * mistaken for the holder. A claim from anywhere else (another host on shared storage, another container, a
 * restarted container with a new pid namespace) cannot be checked that way: it is live while touched within
 * STALE_AFTER_MS, and taken over after that (clocks are assumed to agree within a few seconds, as NTP keeps them).
 */

const HEARTBEAT_MS = 10_000;
const STALE_AFTER_MS = 30_000;

/** Real paths of the spool directories claimed by this process (a second front in one process is refused too). */
const held = new Set<string>();

export const OWNER_FILE = 'accepting';

export class SpoolInUseError extends Error {
  override name = 'SpoolInUseError';
}

export interface Claim {
  host: string;
  pid: number;
  since: string;
  /** The kernel's boot id, pid namespace and the process's start time in clock ticks: '' / 0 where unknown. */
  bootId?: string;
  pidNs?: string;
  startTicks?: number;
  token?: string;
}

export interface SpoolClaim {
  /** Gives the spool up (graceful stop); a claim left by a crash is taken over at the next start. */
  release(): Promise<void>;
}

const quiet = <T>(f: () => T, orElse: T): T => {
  try {
    return f();
  } catch {
    return orElse;
  }
};

/** Start time of a process in clock ticks since boot (/proc/<pid>/stat field 22), or 0 when it does not run. */
function startTicks(pid: number): number {
  const stat = quiet(() => readFileSync(`/proc/${pid}/stat`, 'utf8'), '');
  // The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[19]) || 0;
}

/** How a claim names process `pid` of this pid namespace (exported for tests that make claims of other processes). */
export function claimOf(pid: number): Claim {
  return {
    host: hostname(),
    pid,
    since: new Date().toISOString(),
    bootId: quiet(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(), ''),
    pidNs: quiet(() => readlinkSync('/proc/self/ns/pid'), ''),
    startTicks: startTicks(pid),
    token: randomBytes(8).toString('hex'),
  };
}

function parse(text: string): Claim | undefined {
  try {
    const c = JSON.parse(text) as Partial<Claim>;
    return typeof c.host === 'string' && Number.isSafeInteger(c.pid) ? (c as Claim) : undefined;
  } catch {
    return undefined;
  }
}

const readQuietly = (path: string) => readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));

/** Why `other` still holds the spool, or undefined when its claim is stale. */
async function liveHolder(other: Claim, me: Claim, path: string): Promise<string | undefined> {
  const sameView = other.host === me.host && !!other.bootId && other.bootId === me.bootId && !!other.pidNs && other.pidNs === me.pidNs;
  if (sameView) {
    const ticks = startTicks(other.pid);
    const runs = ticks !== 0 && (!other.startTicks || ticks === other.startTicks);
    return runs ? `process ${other.pid} on this host (an SMTP front since ${other.since ?? 'an unknown time'})` : undefined;
  }
  const age = await stat(path).then((s) => Date.now() - s.mtimeMs, () => Infinity);
  if (age >= STALE_AFTER_MS) return undefined;
  const where = other.host === me.host ? `in another container or pid namespace on this host (pid ${other.pid} there)` : `on host ${other.host} (pid ${other.pid})`;
  return `an SMTP front ${where}, seen ${Math.max(0, Math.round(age / 1000))} s ago`;
}

const NO_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

/**
 * Claims `spoolDir` for this process's SMTP front, or throws SpoolInUseError naming the holder and the fix.
 * `onLost` is told (every heartbeat while it lasts) when the claim file no longer is ours: removed (then it is put
 * back) or replaced by another start — two fronts may then share the spool, and an operator must stop one.
 */
export async function claimSpool(spoolDir: string, onLost?: (why: string) => void): Promise<SpoolClaim> {
  await mkdir(spoolDir, { recursive: true });
  const real = await realpath(spoolDir);
  const path = join(real, OWNER_FILE);
  if (held.has(real)) throw new SpoolInUseError(`the spool ${spoolDir} is in use by an SMTP front of this same process: give each front its own spool directory`);
  const me = claimOf(process.pid);
  const text = `${JSON.stringify(me)}\n`;
  const tmp = `${path}.${process.pid}.${me.token}.tmp`;
  await writeFile(tmp, text);
  try {
    for (let attempt = 0; ; attempt++) {
      if (attempt > 5) throw new SpoolInUseError(`could not claim the spool ${spoolDir}: its claim file ${path} kept changing (another front starting at the same time?); try again`);
      try {
        await link(tmp, path);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (NO_LINKS.has(code)) {
          throw new Error(`cannot claim the spool ${spoolDir}: its filesystem refuses hard links (${code}), which the one-SMTP-front claim (${path}) needs — put the spool on a local filesystem or NFS`);
        }
        if (code !== 'EEXIST') throw err;
      }
      const seen = await readQuietly(path);
      if (seen === undefined) continue;
      const other = parse(seen);
      const holder = other ? await liveHolder(other, me, path) : undefined;
      if (holder) {
        throw new SpoolInUseError(
          `the spool ${spoolDir} is in use by ${holder}: run one \`mailroom smtp\` / \`mailroom gateway\` per spool directory — give this one its own --spool-dir (a \`mailroom worker\` may share it). If no such front runs any more, delete ${path}${other && other.host !== me.host ? ` or start again after ${STALE_AFTER_MS / 1000} s` : ''}`,
        );
      }
      // Stale: moved aside under a name of our own, so that of two starts taking it over only one succeeds — and
      // linked back if what was moved is not the claim we judged (another start replaced it meanwhile; link, not
      // rename, so that a claim made in the gap is never overwritten).
      const aside = `${path}.${process.pid}.${me.token}.stale`;
      try {
        await rename(path, aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      if ((await readQuietly(aside)) !== seen) await link(aside, path).catch(() => undefined);
      await unlink(aside).catch(() => undefined);
    }
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  held.add(real);
  const beat = setInterval(() => {
    void (async () => {
      const now = readQuietly(path).catch(() => undefined);
      const current = await now;
      if (current === text) {
        const t = new Date();
        await utimes(path, t, t).catch(() => undefined);
        return;
      }
      if (current === undefined) {
        // Removed (an operator cleaning up): put it back, and say so.
        await writeFile(path, text, { flag: 'wx' }).catch(() => undefined);
        onLost?.(`the claim file ${path} was removed; put back`);
        return;
      }
      onLost?.(`the claim file ${path} now names another SMTP front: two fronts may be writing to ${spoolDir} — stop one of them`);
    })();
  }, HEARTBEAT_MS).unref();
  return {
    release: async () => {
      clearInterval(beat);
      held.delete(real);
      if ((await readQuietly(path).catch(() => undefined)) === text) await unlink(path).catch(() => undefined);
    },
  };
}
