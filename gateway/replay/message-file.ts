import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { chain } from './chain.js';
import { CrlfNormalizer, crlfStream } from './crlf.js';
import { DataMeter, notMailReason, tooBig, verifyingStream } from './data-meter.js';
import { parseDateHeader } from './dates.js';
import { ReplayProblem, type PreparedMessage, type SourceTime } from './source.js';

/**
 * A file holding one message (an `.eml` export, a Maildir entry, standard input saved to a file): read once to
 * measure and hash its DATA (CRLF line ends) and take its header section, then again when it is handed on, checked
 * against the first read.
 */

export type MessageFileKind = 'eml' | 'maildir' | 'stdin';

export interface MessageFileOptions {
  path: string;
  location: string;
  identity: string;
  kind: MessageFileKind;
  /** The config's maxMessageSize: a bigger file is reported without being read through. */
  maxBytes: number;
  /** Called once the file is no longer needed (the body was read or given up). */
  release?: () => void;
}

const READ_CHUNK = 256 * 1024;

export async function prepareMessageFile(o: MessageFileOptions): Promise<PreparedMessage> {
  let handle;
  try {
    handle = await open(o.path, 'r');
  } catch (err) {
    o.release?.();
    throw unreadable(o.location, err);
  }
  let mtime: Date;
  const crlf = new CrlfNormalizer();
  const meter = new DataMeter();
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new ReplayProblem('malformed', o.location, 'is not a regular file');
    mtime = stat.mtime;
    // DATA is never shorter than the file (CRLF only widens), so a file over the limit needs no reading.
    if (stat.size > o.maxBytes) throw tooBig(o.location, stat.size, o.maxBytes, true);
    for await (const chunk of handle.createReadStream({ highWaterMark: READ_CHUNK, autoClose: false }) as AsyncIterable<Buffer>) {
      meter.push(crlf.write(chunk));
      if (meter.length > o.maxBytes) throw tooBig(o.location, meter.length, o.maxBytes, true);
    }
    meter.push(crlf.end());
  } catch (err) {
    o.release?.();
    throw err instanceof ReplayProblem ? err : unreadable(o.location, err);
  } finally {
    await handle.close();
  }
  const data = meter.finish();
  const notMail = notMailReason(data);
  if (notMail) {
    o.release?.();
    throw new ReplayProblem('malformed', o.location, notMail);
  }

  const dateHeader = data.headers.find((h) => h.name.toLowerCase() === 'date');
  const headerDate = dateHeader ? parseDateHeader(dateHeader.value) : undefined;
  const byDate: SourceTime[] = headerDate ? [{ at: headerDate, from: 'Date header' }] : [];
  const byMtime: SourceTime[] = [{ at: mtime, from: 'file mtime' }];
  // Maildir: the file's time is the delivery time (Dovecot keeps it so); an export's file time is the export's.
  const times = o.kind === 'maildir' ? [...byMtime, ...byDate] : o.kind === 'eml' ? [...byDate, ...byMtime] : byDate;

  let released = false;
  const release = () => {
    if (!released) {
      released = true;
      o.release?.();
    }
  };
  return {
    location: o.location,
    identity: o.identity,
    contentTag: `sha256:${data.digest}`,
    dataLength: data.length,
    headers: data.headers,
    hints: {},
    times,
    body(): Readable {
      const out = chain(createReadStream(o.path, { highWaterMark: READ_CHUNK }), crlfStream(), verifyingStream(data, o.location));
      out.once('close', release);
      return out;
    },
    discard: release,
  };
}

function unreadable(location: string, err: unknown): ReplayProblem {
  const e = err as NodeJS.ErrnoException;
  const why = e.code === 'ENOENT' ? 'is gone (removed since it was listed)' : e.code === 'EACCES' ? 'cannot be read (permission denied): give this user read access' : `cannot be read (${e.code ?? e.message})`;
  return new ReplayProblem('failed', location, why, { cause: err });
}
