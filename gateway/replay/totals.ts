import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { opendir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isMaildir } from './maildir.js';
import { parseS3Source } from './sources.js';
import type { Totals } from './progress.js';

/**
 * How much there is to replay, for the progress bar's percentage and ETA: file sizes and object sizes, found by a
 * walk or listing of its own that runs beside the replay (stat and list calls only, no message is read). Best
 * effort: a part that cannot be sized leaves the total unknown, never the replay failed.
 */
export async function estimateTotals(args: string[], s3: () => S3Client, signal?: AbortSignal): Promise<Totals> {
  let bytes = 0;
  let messages = 0;
  let countable = true;
  for (const arg of args) {
    if (signal?.aborted) return {};
    if (arg === '-') continue; // one message: negligible
    try {
      countable = (await sizeOf(arg, s3, signal, (b, m) => ((bytes += b), (messages += m)))) && countable;
    } catch {
      // A source that cannot be sized (missing, unreadable): the replay reports it; the total just leaves it out.
    }
  }
  return { bytes, ...(countable ? { messages } : {}) };
}

/** Adds up one source's bytes and messages; false when its message count cannot be known without reading it. */
async function sizeOf(arg: string, s3: () => S3Client, signal: AbortSignal | undefined, add: (bytes: number, messages: number) => void): Promise<boolean> {
  const target = parseS3Source(arg);
  if (target) {
    let token: string | undefined;
    do {
      const page = await s3().send(new ListObjectsV2Command({ Bucket: target.bucket, Prefix: target.prefix, ...(token ? { ContinuationToken: token } : {}) }), signal ? { abortSignal: signal } : {});
      for (const o of page.Contents ?? []) add(o.Size ?? 0, 1);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token && !signal?.aborted);
    return true;
  }
  const info = await stat(arg);
  if (info.isFile()) {
    add(info.size, 0);
    return false; // perhaps an mbox: its message count is known only once read
  }
  if (await isMaildir(arg)) {
    for (const folder of ['', ...(await readdir(arg)).filter((n) => n.startsWith('.') && n.length > 1)]) {
      for (const sub of ['cur', 'new']) {
        const dir = join(arg, folder, sub);
        for (const name of await readdir(dir).catch(() => [] as string[])) {
          if (!name.startsWith('.')) add((await stat(join(dir, name)).catch(() => undefined))?.size ?? 0, 1);
        }
      }
    }
    return true;
  }
  let countable = true;
  const walk = async (dir: string): Promise<void> => {
    for await (const e of await opendir(dir)) {
      if (signal?.aborted) return;
      const path = join(dir, e.name);
      if (e.isDirectory()) await walk(path);
      else if (e.name === 'mbox') {
        add((await stat(path)).size, 0);
        countable = false;
      } else if (/\.eml$/i.test(e.name)) add((await stat(path)).size, 1);
    }
  };
  await walk(arg);
  return countable;
}
