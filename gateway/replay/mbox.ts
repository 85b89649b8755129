import { close as closeFd, createReadStream, open as openFd, read as readFd } from 'node:fs';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { chain } from './chain.js';
import { CrlfNormalizer, crlfStream } from './crlf.js';
import { DataMeter, notMailReason, verifyingStream, type MeteredData } from './data-meter.js';
import { parseDateHeader, parseFromLineDate } from './dates.js';
import { MboxDecoder, type MboxVariant } from './mbox-decoder.js';
import { ReplayProblem, SourceNote, type PreparedMessage, type SourceItem, type SourceTime } from './source.js';

/**
 * An mbox file as a replay source, read once from start to end (a 2 GB file never sits in memory): each message
 * between its `From ` line and the empty line that closes it, its quoting undone (mbox-decoder.ts), its lines
 * ended with CRLF. The message is measured and hashed on this pass; its body is read again from its byte range
 * when it is handed on (a page-cache read while the source is still streaming) and checked against the first read.
 *
 * The empty line before each `From ` line belongs to the mbox, not to the message (RFC 4155). The last message
 * must end with it too: a file that ends without it, or in the middle of a line, was cut short, and its last
 * message is reported, not replayed. A `Content-Length` header is not consulted: writers that set it (mboxcl)
 * still quote, and a wrong one would cut or merge messages.
 */

const LF = 0x0a;
const CR = 0x0d;
const READ_CHUNK = 1 << 20;

export interface MboxSourceOptions {
  /** As the user gave it, for locations. */
  path: string;
  /** Its real path, for the identity. */
  realPath: string;
  variant: MboxVariant;
}

interface Current {
  offset: number;
  line: number;
  bodyStart: number;
  sender: string | undefined;
  date: Date | undefined;
  builder: MessageBuilder;
}

export async function* mboxSource(options: MboxSourceOptions): AsyncGenerator<SourceItem | ReplayProblem | SourceNote> {
  const { path, realPath, variant } = options;
  let file: SharedFile;
  try {
    file = await SharedFile.open(path);
  } catch (err) {
    yield new ReplayProblem('failed', path, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
    return;
  }
  const ready: Array<SourceItem | ReplayProblem> = [];
  let current: Current | undefined;

  const close = (endOffset: number, eof: boolean) => {
    const c = current;
    if (!c) return;
    current = undefined;
    const where = `${path}:${c.line} (byte ${c.offset})`;
    const done = c.builder.finish();
    if (eof && !done.closedByEmptyLine) {
      ready.push(
        new ReplayProblem(
          'malformed',
          where,
          done.endedMidLine
            ? 'is cut short: the file ends in the middle of a line of this message; nothing was replayed from it'
            : 'is cut short or unterminated: the file ends without the empty line that closes every message in an mbox; nothing was replayed from it (if the message is complete, add an empty line at the end of the file)',
        ),
      );
      return;
    }
    const notMail = notMailReason(done.data);
    if (notMail) {
      ready.push(new ReplayProblem('malformed', where, notMail));
      return;
    }
    const bodyEnd = endOffset - done.dropped;
    ready.push(preparedItem(file, variant, where, { ...c, bodyEnd, data: done.data }, realPath));
  };

  const decoder = new MboxDecoder({
    variant,
    separators: true,
    sink: {
      content: (bytes) => current?.builder.content(bytes),
      separator: (text, offset, line, end) => {
        close(offset, false);
        if (end === undefined) {
          ready.push(new ReplayProblem('malformed', `${path}:${line} (byte ${offset})`, 'is cut short: the file ends inside this message\'s "From " line; nothing was replayed from it'));
          return;
        }
        const { sender, rest } = splitFromLine(text.toString('latin1'));
        current = { offset, line, bodyStart: end, sender, date: parseFromLineDate(rest), builder: new MessageBuilder() };
      },
    },
  });

  const input = createReadStream(path, { highWaterMark: READ_CHUNK });
  let first = true;
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      if (first) {
        first = false;
        if (!chunk.subarray(0, 5).equals(Buffer.from('From '))) {
          yield new ReplayProblem('malformed', path, 'is not an mbox: it does not begin with a "From " line');
          return;
        }
      }
      decoder.write(chunk);
      while (ready.length) yield ready.shift()!;
    }
    decoder.end();
    close(decoder.position.offset, true);
    while (ready.length) yield ready.shift()!;
  } catch (err) {
    while (ready.length) yield ready.shift()!;
    const at = decoder.position;
    yield new ReplayProblem('failed', `${path}:${at.line} (byte ${at.offset})`, `could not be read further (${(err as Error).message}); the messages after this point were not replayed`, { cause: err });
    return;
  } finally {
    input.destroy();
    file.release();
  }
  if (decoder.ambiguousLines > 0) {
    yield new SourceNote(
      path,
      variant === 'mboxrd'
        ? `${decoder.ambiguousLines} line(s) began with two or more ">" before "From " and were read as mboxrd writes them (one ">" taken off); if an mboxo writer made this file (Postfix's local delivery and Python's mailbox module are two), replay it with --mbox-format mboxo`
        : `${decoder.ambiguousLines} line(s) began with two or more ">" before "From " and were kept as mboxo writes them; if an mboxrd writer made this file, replay it with --mbox-format mboxrd`,
    );
  }
}

/** `From sender date…` → the sender (one word) and the rest; the sender is absent when the line has none. */
function splitFromLine(line: string): { sender: string | undefined; rest: string } {
  const m = /^From +(\S+)\s*(.*)$/.exec(line);
  if (!m) return { sender: undefined, rest: '' };
  // Some writers leave the sender out: the "sender" is then the date's weekday.
  if (/^(mon|tue|wed|thu|fri|sat|sun)$/i.test(m[1]!) && parseFromLineDate(`${m[1]} ${m[2]}`)) return { sender: undefined, rest: `${m[1]} ${m[2]}` };
  return { sender: m[1], rest: m[2]! };
}

/**
 * One descriptor for the whole file, shared by the scan and every message's second read (positional reads, so
 * they never disturb each other): an open and a close per message cost more than the rest of a small message's
 * reading. It is closed when the scan is done and every message read or given up.
 */
class SharedFile {
  private refs = 1;
  private constructor(readonly fd: number) {}

  static open(path: string): Promise<SharedFile> {
    return new Promise((resolve, reject) => openFd(path, 'r', (err, fd) => (err ? reject(err) : resolve(new SharedFile(fd)))));
  }

  /** Another holder; the function it returns lets go (once, however often it is called). */
  hold(): () => void {
    this.refs++;
    let held = true;
    return () => {
      if (held) {
        held = false;
        this.release();
      }
    };
  }

  release(): void {
    if (--this.refs === 0) closeFd(this.fd, () => {});
  }
}

function preparedItem(
  file: SharedFile,
  variant: MboxVariant,
  where: string,
  m: { offset: number; line: number; bodyStart: number; bodyEnd: number; sender: string | undefined; date: Date | undefined; data: MeteredData },
  realPath: string,
): SourceItem {
  const times: SourceTime[] = [];
  if (m.date) times.push({ at: m.date, from: 'mbox From line' });
  const dateHeader = m.data.headers.find((h) => h.name.toLowerCase() === 'date');
  const headerDate = dateHeader ? parseDateHeader(dateHeader.value) : undefined;
  if (headerDate) times.push({ at: headerDate, from: 'Date header' });
  const release = file.hold();
  const message: PreparedMessage = {
    location: where,
    identity: `mbox:${realPath}:${m.offset}`,
    contentTag: `sha256:${m.data.digest}`,
    dataLength: m.data.length,
    headers: m.data.headers,
    hints: m.sender !== undefined ? { fromLineSender: m.sender } : {},
    times,
    body: () => {
      const body = mboxMessageBody(file.fd, variant, m, where);
      body.once('close', release);
      return body;
    },
    discard: () => release(),
  };
  return { location: where, prepare: async () => message };
}

/** One message's DATA, read again from its byte range and checked against the first read. */
function mboxMessageBody(fd: number, variant: MboxVariant, m: { bodyStart: number; bodyEnd: number; line: number; data: MeteredData }, where: string): Readable {
  return chain(rangeReader(fd, m.bodyStart, m.bodyEnd), unquoteStream(variant, m.bodyStart, m.line + 1), crlfStream(), verifyingStream(m.data, where));
}

const RANGE_CHUNK = 256 * 1024;

/**
 * Bytes [start, end) of an open file by positional reads. Unlike fs.ReadStream it never closes the descriptor (it
 * is shared), and it is not done being destroyed while a read is in flight, so the descriptor outlives every read.
 */
function rangeReader(fd: number, start: number, end: number): Readable {
  let position = start;
  let reading = false;
  let destroyed: (() => void) | undefined;
  return new Readable({
    highWaterMark: RANGE_CHUNK,
    read() {
      const want = Math.min(RANGE_CHUNK, end - position);
      if (want <= 0) {
        this.push(null);
        return;
      }
      reading = true;
      const buffer = Buffer.allocUnsafe(want);
      readFd(fd, buffer, 0, want, position, (err, got) => {
        reading = false;
        if (destroyed) return destroyed();
        if (err) return this.destroy(err);
        if (got === 0) return this.destroy(new Error('the file ended before this message did: was it cut since it was read?'));
        position += got;
        this.push(got < want ? buffer.subarray(0, got) : buffer);
      });
    },
    destroy(err, done) {
      if (reading) destroyed = () => done(err);
      else done(err);
    },
  });
}

/** The quoting of one message's byte range undone, as a stream stage. */
export function unquoteStream(variant: MboxVariant, startOffset = 0, startLine = 1): Transform {
  const t: Transform = new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      decoder.write(chunk);
      done();
    },
    flush(done: TransformCallback) {
      decoder.end();
      done();
    },
  });
  const decoder = new MboxDecoder({ variant, separators: false, startOffset, startLine, sink: { content: (b) => t.push(b), separator: () => {} } });
  return t;
}

/**
 * One message's bytes as they come off the decoder: the empty line that closes it is held back until it is known
 * to be the last line (then it is the mbox's, and dropped); the rest goes to CRLF and the meter.
 */
class MessageBuilder {
  private held: Buffer | undefined;
  /** What was passed on ends at a line start (true before anything is). */
  private atLineStart = true;
  private readonly crlf = new CrlfNormalizer();
  private readonly meter = new DataMeter();

  content(b: Buffer): void {
    if (b.length === 0) return;
    let bytes = this.held ? Buffer.concat([this.held, b]) : b;
    this.held = undefined;
    const n = bytes.length;
    let hold = 0;
    if (bytes[n - 1] === LF) {
      const prevLf = n >= 2 ? bytes.lastIndexOf(LF, n - 2) : -1;
      const lineLength = n - (prevLf + 1);
      const atStart = prevLf >= 0 || this.atLineStart;
      if (atStart && (lineLength === 1 || (lineLength === 2 && bytes[n - 2] === CR))) hold = lineLength;
    } else if (bytes[n - 1] === CR && (n >= 2 ? bytes[n - 2] === LF : this.atLineStart)) {
      hold = 1; // perhaps the start of an empty CRLF line
    }
    if (hold > 0) {
      this.held = Buffer.from(bytes.subarray(n - hold));
      bytes = bytes.subarray(0, n - hold);
    }
    if (bytes.length > 0) this.pass(bytes);
  }

  finish(): { data: MeteredData; dropped: number; closedByEmptyLine: boolean; endedMidLine: boolean } {
    let dropped = 0;
    if (this.held) {
      if (this.held[this.held.length - 1] === LF) dropped = this.held.length;
      else this.pass(this.held);
      this.held = undefined;
    }
    const endedMidLine = dropped === 0 && !this.atLineStart;
    this.meter.push(this.crlf.end());
    return { data: this.meter.finish(), dropped, closedByEmptyLine: dropped > 0, endedMidLine };
  }

  private pass(bytes: Buffer): void {
    this.meter.push(this.crlf.write(bytes));
    this.atLineStart = bytes[bytes.length - 1] === LF;
  }
}
