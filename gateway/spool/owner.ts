import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

/**
 * One accepting process (SMTP front) per spool directory. It is the spool's only writer: at start it drops partial
 * files and empty ones (Spool.init), its recovery pass treats a file without jobs as a stopped writer's, and its
 * spares are written without a directory fsync (spares.ts). A second front on the same directory would remove or set
 * aside the first one's files while it writes them — mail answered 250 and then lost — so it is refused at start.
 *
 * The claim is a file `accepting` in the spool directory holding host and pid, made with link(2), which fails if the
 * name exists, and touched every HEARTBEAT_MS while held. A claim by a process that no longer runs on this host is
 * stale and taken over (a crash, or this same container restarted: its pid is reused, so a claim by another run of
 * our own pid is stale too). A claim from another host (a spool on shared storage, or another container on this
 * machine) cannot be checked by pid: it is live while it was touched within STALE_AFTER_MS, and taken over after
 * that — before anything in the spool is touched, where the node registry would only refuse later.
 */

const HEARTBEAT_MS = 10_000;
const STALE_AFTER_MS = 30_000;

/** Spool directories claimed by this process (a second front in one process is refused too). */
const held = new Set<string>();

export const OWNER_FILE = 'accepting';

export class SpoolInUseError extends Error {
  override name = 'SpoolInUseError';
}

interface Claim {
  host: string;
  pid: number;
  since: string;
}

export interface SpoolClaim {
  /** Gives the spool up (graceful stop); a claim left by a crash is taken over at the next start. */
  release(): Promise<void>;
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, as another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
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

export async function claimSpool(spoolDir: string): Promise<SpoolClaim> {
  const path = join(spoolDir, OWNER_FILE);
  if (held.has(path)) throw new SpoolInUseError(`the spool ${spoolDir} is in use by an SMTP front of this same process: give each front its own spool directory`);
  const me: Claim = { host: hostname(), pid: process.pid, since: new Date().toISOString() };
  const text = `${JSON.stringify(me)}\n`;
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await mkdir(spoolDir, { recursive: true });
  await writeFile(tmp, text);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(tmp, path);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 5) throw err;
      }
      const seen = await readQuietly(path);
      if (seen === undefined) continue;
      const other = parse(seen);
      if (other && other.host === me.host && other.pid !== me.pid && running(other.pid)) {
        throw new SpoolInUseError(
          `the spool ${spoolDir} is in use by process ${other.pid} on this host (an SMTP front since ${other.since}): run one \`mailroom smtp\` / \`mailroom gateway\` per spool directory — give this one its own --spool-dir (a \`mailroom worker\` may share it). If no mailroom process runs, delete ${path}`,
        );
      }
      if (other && other.host !== me.host) {
        const age = await stat(path).then((s) => Date.now() - s.mtimeMs, () => Infinity);
        if (age < STALE_AFTER_MS) {
          throw new SpoolInUseError(
            `the spool ${spoolDir} is in use by an SMTP front on host ${other.host} (pid ${other.pid}, seen ${Math.max(0, Math.round(age / 1000))} s ago): one front per spool directory — if that host is gone, start again after ${STALE_AFTER_MS / 1000} s (or delete ${path})`,
          );
        }
      }
      // Stale: moved aside under a name of our own, so that of two starts taking it over only one succeeds — and
      // put back if what was moved is not the claim we judged (another start replaced it meanwhile).
      const aside = `${path}.${process.pid}.stale`;
      try {
        await rename(path, aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      if ((await readQuietly(aside)) !== seen) await rename(aside, path);
      else await unlink(aside);
    }
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  held.add(path);
  const beat = setInterval(() => {
    const now = new Date();
    void utimes(path, now, now).catch(() => undefined);
  }, HEARTBEAT_MS).unref();
  return {
    release: async () => {
      clearInterval(beat);
      held.delete(path);
      if ((await readQuietly(path).catch(() => undefined)) === text) await unlink(path).catch(() => undefined);
    },
  };
}
