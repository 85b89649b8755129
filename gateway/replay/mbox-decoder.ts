/**
 * The byte-level reading of an mbox file: finding the `From ` lines that separate its messages and undoing the
 * `>From ` quoting inside them, on a stream of chunks of any size, without holding a line: a 40 MB line costs no
 * more memory than a short one.
 *
 * Quoting (RFC 4155 and the mbox(5) page): a writer puts `>` before each body line that would otherwise read as a
 * separator. mboxo quotes only `From ` (so an original `>From ` line comes back as `From `: the variant loses
 * information); mboxrd quotes every `>*From ` line with one more `>`, and its reader takes one `>` off each. The two
 * read a file differently only on lines of two or more `>` before `From `: mboxrd takes one off, mboxo keeps them.
 */

export type MboxVariant = 'mboxrd' | 'mboxo';

export interface MboxSink {
  /** Message bytes with the quoting undone, line ends as in the file. */
  content(bytes: Buffer): void;
  /**
   * A `From ` line: `text` is the line without its line end (cut at FROM_LINE_LIMIT bytes), `offset` where it
   * begins, `line` its line number, `end` the offset just after its LF (undefined when the file ends inside it).
   */
  separator(text: Buffer, offset: number, line: number, end: number | undefined): void;
}

const LF = 0x0a;
const GT = 0x3e;
const FROM = Buffer.from('From ', 'latin1');
/** Far more than any real `From ` line (sender, date and maybe a few words); the rest is read past, not kept. */
export const FROM_LINE_LIMIT = 4096;

const enum State {
  /** At the start of a line, possibly inside a `>…>From ` prefix still being matched. */
  LineStart,
  InLine,
  /** Inside a `From ` separator line. */
  Separator,
}

export interface MboxDecoderOptions {
  variant: MboxVariant;
  /** False to read one message's byte range (its separator already cut off): `From ` lines are then content. */
  separators: boolean;
  sink: MboxSink;
  /** Offset and line number of the first byte written (the start of a range). */
  startOffset?: number;
  startLine?: number;
}

export class MboxDecoder {
  /** Lines with two or more `>` before `From `: where mboxo and mboxrd disagree. */
  ambiguousLines = 0;
  private offset: number;
  private line: number;
  private state = State.LineStart;
  /** The pending prefix at a line start: `gt` times `>`, then the first `matched` bytes of `From `. */
  private gt = 0;
  private matched = 0;
  private lineOffset: number;
  private separatorText: Buffer[] = [];
  private separatorKept = 0;
  private separatorOffset = 0;
  private separatorLine = 0;
  private readonly variant: MboxVariant;
  private readonly separators: boolean;
  private readonly sink: MboxSink;

  constructor(options: MboxDecoderOptions) {
    this.variant = options.variant;
    this.separators = options.separators;
    this.sink = options.sink;
    this.offset = options.startOffset ?? 0;
    this.lineOffset = this.offset;
    this.line = options.startLine ?? 1;
  }

  /** Offset of the next byte, and the line it is on. */
  get position(): { offset: number; line: number } {
    return { offset: this.offset, line: this.line };
  }

  write(chunk: Buffer): void {
    const n = chunk.length;
    const base = this.offset;
    const sink = this.sink;
    let i = 0;
    /** Start of the bytes of this chunk not yet given to the sink. */
    let emitFrom = 0;
    /** Where the current line starts in this chunk; -1 when it started in an earlier one. */
    let lineStart = this.state === State.LineStart && this.gt === 0 && this.matched === 0 ? 0 : -1;
    const emit = (from: number, to: number) => {
      if (to > from) sink.content(chunk.subarray(from, to));
    };

    while (i < n) {
      if (this.state === State.InLine) {
        const lf = chunk.indexOf(LF, i);
        if (lf < 0) {
          i = n;
          break;
        }
        i = lf + 1;
        this.startLine(base + i);
        lineStart = i;
      } else if (this.state === State.LineStart) {
        const b = chunk[i]!;
        if (this.matched === 0 && b === GT) {
          this.gt++;
          i++;
          continue;
        }
        if (b === FROM[this.matched]) {
          this.matched++;
          i++;
          if (this.matched < FROM.length) continue;
          if (this.gt === 0 && this.separators) {
            if (lineStart >= 0) emit(emitFrom, lineStart);
            this.state = State.Separator;
            this.separatorOffset = this.lineOffset;
            this.separatorLine = this.line;
            this.separatorText = [FROM];
            this.separatorKept = FROM.length;
            this.gt = this.matched = 0;
            continue;
          }
          // A quoted `From ` line: take one `>` off (mboxo: only from a lone one).
          if (this.gt >= 2) this.ambiguousLines++;
          const unquote = this.gt >= 1 && (this.variant === 'mboxrd' || this.gt === 1);
          if (lineStart >= 0) {
            if (unquote) {
              emit(emitFrom, lineStart);
              emitFrom = lineStart + 1;
            }
          } else {
            sink.content(this.pendingPrefix(unquote ? 1 : 0));
            emitFrom = i;
          }
          this.gt = this.matched = 0;
          this.state = State.InLine;
          continue;
        }
        // An ordinary line; a prefix begun in an earlier chunk is given back as it was. The byte at `i` is read
        // again as part of the line (it may be its LF).
        if (lineStart < 0 && (this.gt > 0 || this.matched > 0)) {
          sink.content(this.pendingPrefix(0));
          emitFrom = i;
        }
        this.gt = this.matched = 0;
        this.state = State.InLine;
      } else {
        const lf = chunk.indexOf(LF, i);
        const end = lf < 0 ? n : lf + 1;
        const keep = Math.min(end - i, FROM_LINE_LIMIT - this.separatorKept);
        if (keep > 0) {
          this.separatorText.push(chunk.subarray(i, i + keep));
          this.separatorKept += keep;
        }
        i = end;
        if (lf >= 0) {
          sink.separator(stripLineEnd(Buffer.concat(this.separatorText)), this.separatorOffset, this.separatorLine, base + i);
          this.separatorText = [];
          this.startLine(base + i);
          lineStart = i;
          emitFrom = i;
        }
      }
    }

    if (this.state === State.InLine) emit(emitFrom, n);
    else if (this.state === State.LineStart) emit(emitFrom, this.gt > 0 || this.matched > 0 ? (lineStart >= 0 ? lineStart : emitFrom) : n);
    // In a separator line: everything before it was given out when it was recognised.
    this.offset = base + n;
  }

  /** Ends the input: a prefix still pending is content; a `From ` line the file ends in is reported unfinished. */
  end(): void {
    if (this.state === State.LineStart && (this.gt > 0 || this.matched > 0)) {
      this.sink.content(this.pendingPrefix(0));
      this.gt = this.matched = 0;
    } else if (this.state === State.Separator) {
      this.sink.separator(stripLineEnd(Buffer.concat(this.separatorText)), this.separatorOffset, this.separatorLine, undefined);
      this.separatorText = [];
    }
  }

  private startLine(offset: number): void {
    this.line++;
    this.lineOffset = offset;
    this.state = State.LineStart;
  }

  private pendingPrefix(dropGt: number): Buffer {
    return Buffer.from('>'.repeat(this.gt - dropGt) + 'From '.slice(0, this.matched), 'latin1');
  }
}

function stripLineEnd(line: Buffer): Buffer {
  let end = line.length;
  if (end > 0 && line[end - 1] === LF) end--;
  if (end > 0 && line[end - 1] === 0x0d) end--;
  return line.subarray(0, end);
}
