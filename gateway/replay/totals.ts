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
    const target = parseS3Source(arg);
    if (target) {
      let token: string | undefined;
      do {
        const page = await s3().send(new ListObjectsV2Command({ Bucket: target.bucket, Prefix: target.prefix, ...(token ? { ContinuationToken: token } : {}) }), signal ? { abortSignal: signal } : {});
        for (const o of page.Contents ?? []) {
          bytes += o.Size ?? 0;
          messages++;
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token && !signal?.aborted);
      continue;
    }
    const info = await stat(arg);
    if (info.isFile()) {
      bytes += info.size;
      countable = false; // an mbox: its message count is known only once read
      continue;
    }
    if (await isMaildir(arg)) {
      for (const folder of ['', ...(await readdir(arg)).filter((n) => n.startsWith('.') && n.length > 1)]) {
        for (const sub of ['cur', 'new']) {
          const dir = join(arg, folder, sub);
          const names = await readdir(dir).catch(() => [] as string[]);
          for (const name of names) {
            if (name.startsWith('.')) continue;
            bytes += (await stat(join(dir, name)).catch(() => undefined))?.size ?? 0;
            messages++;
          }
        }
      }
      continue;
    }
    const walk = async (dir: string): Promise<void> => {
      for await (const e of await opendir(dir)) {
        if (signal?.aborted) return;
        const path = join(dir, e.name);
        if (e.isDirectory()) await walk(path);
        else if (/\.eml$/i.test(e.name) || e.name === 'mbox') {
          bytes += (await stat(path)).size;
          if (e.name === 'mbox') countable = false;
          else messages++;
        }
      }
    };
    await walk(arg);
  }
  return { bytes, ...(countable ? { messages } : {}) };
}
