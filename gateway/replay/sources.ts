import type { KMSClient } from '@aws-sdk/client-kms';
import type { S3Client } from '@aws-sdk/client-s3';
import { open, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { emlDirSource } from './eml-dir.js';
import { isMaildir, maildirSource } from './maildir.js';
import { mboxSource } from './mbox.js';
import type { MboxVariant } from './mbox-decoder.js';
import { prepareMessageFile } from './message-file.js';
import { s3Source } from './s3.js';
import { ReplayProblem, type Source } from './source.js';
import { stdinSource } from './stdin.js';

/**
 * Which kind of source an argument names, told from what it is rather than from its name:
 *
 * - `-`: one message on standard input;
 * - `s3://bucket/prefix`: the objects SES or the gateway stored under the prefix;
 * - a directory with `cur/` and `new/`: a Maildir; a directory holding a file `mbox`: an mbox bundle (what Apple
 *   Mail exports as `Name.mbox/`); any other directory: `.eml` files, searched recursively;
 * - a file beginning with `From `: an mbox; any other file: one message.
 */

export interface SourceOptions {
  mboxVariant: MboxVariant;
  maxBytes: number;
  /** Made on first use: only `s3://` sources need AWS clients. */
  aws: () => { s3: S3Client; kmsFor: (region: string | undefined) => KMSClient };
  stdin: Readable;
}

export function parseS3Source(arg: string): { bucket: string; prefix: string } | undefined {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(arg);
  return m ? { bucket: m[1]!, prefix: m[2] ?? '' } : undefined;
}

const GZIP = Buffer.from([0x1f, 0x8b]);

export async function* openSource(arg: string, o: SourceOptions): Source {
  if (arg === '-') {
    yield* stdinSource({ input: o.stdin, maxBytes: o.maxBytes });
    return;
  }
  if (arg.startsWith('s3://')) {
    const target = parseS3Source(arg);
    if (!target) {
      yield new ReplayProblem('failed', arg, 'is not an S3 location: write it as s3://<bucket>/<object key prefix>');
      return;
    }
    yield* s3Source({ ...target, ...o.aws(), maxBytes: o.maxBytes });
    return;
  }

  let info;
  let real;
  try {
    info = await stat(arg);
    real = await realpath(arg);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'does not exist: check the path (an S3 source is written s3://bucket/prefix)' : code === 'EACCES' ? 'cannot be read (permission denied)' : `cannot be read (${code ?? (err as Error).message})`;
    yield new ReplayProblem('failed', arg, why, { cause: err });
    return;
  }

  if (info.isDirectory()) {
    if (await isMaildir(arg)) {
      yield* maildirSource({ path: arg, realPath: real, maxBytes: o.maxBytes });
      return;
    }
    const bundled = join(arg, 'mbox');
    if (await stat(bundled).then((s) => s.isFile(), () => false)) {
      yield* mboxSource({ path: bundled, realPath: join(real, 'mbox'), variant: o.mboxVariant });
      return;
    }
    yield* emlDirSource({ path: arg, realPath: real, maxBytes: o.maxBytes });
    return;
  }
  if (!info.isFile()) {
    yield new ReplayProblem('failed', arg, 'is neither a file nor a directory');
    return;
  }

  let start: Buffer;
  try {
    const handle = await open(arg, 'r');
    try {
      const { buffer, bytesRead } = await handle.read(Buffer.alloc(5), 0, 5, 0);
      start = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (err) {
    yield new ReplayProblem('failed', arg, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
    return;
  }
  if (start.subarray(0, 2).equals(GZIP)) {
    yield new ReplayProblem('malformed', arg, 'is gzip-compressed: decompress it first (gunzip -k), then replay the result');
    return;
  }
  if (start.equals(Buffer.from('From '))) {
    yield* mboxSource({ path: arg, realPath: real, variant: o.mboxVariant });
    return;
  }
  yield { location: arg, prepare: () => prepareMessageFile({ path: arg, location: arg, identity: `eml:${real}`, kind: 'eml', maxBytes: o.maxBytes }) };
}
