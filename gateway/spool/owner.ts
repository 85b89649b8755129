import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

/**
 * One accepting process (SMTP front) per spool directory. It is the spool's only writer: at start it drops partial
 * files and empty ones (Spool.init), its recovery pass treats a file without jobs as a stopped writer's, and its
 * spares are written without a directory fsync (spares.ts). A second front on the same directory would remove or set
 * aside the first one's files while it writes them — mail answered 250 and then lost — so it is refused at start.
 *
 * The claim is a file `accepting` in the spool directory holding host and pid, made with link(2), which fails if the
 * name exists. A claim by a process that no longer runs on this host is stale and taken over (a crash, or this same
 * container restarted: its pid is reused, so a claim by our own pid is stale too). A claim from another host cannot be
 * checked from here and is taken over as well: a spool on shared storage moved to a new host after its node died;
 * should the old host still run, the node registry refuses this start (same node id, another host).
 */

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
  return {
    release: async () => {
      if ((await readQuietly(path).catch(() => undefined)) === text) await unlink(path).catch(() => undefined);
    },
  };
}
