/**
 * The messages `mailroom load` sends: real MIME composed by nodemailer's MailComposer (headers, multipart structure,
 * transfer encodings, boundaries), each carrying a unique token so its delivery can be matched.
 *
 * MailComposer runs once per message shape, at start, not per message: the generator must not be the bottleneck
 * (docs/load.md#speed). A shape is composed with marker lines where its bodies go; the composed bytes are split at
 * the markers, and each message is those pieces with its token written over a fixed-width placeholder and bodies of
 * the length it needs between them — text lines in a 7bit text part, 76-character base64 lines in an attachment,
 * exactly what MailComposer writes for such content. Messages up to STREAM_ABOVE_BYTES are built in memory; bigger
 * ones are produced as they are read, never whole in memory.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import MailComposer from 'nodemailer/lib/mail-composer';
import type { MessageSize } from './options.js';

/** Every message carries its token in Message-ID (`<token@load.invalid>`), Subject and X-Mailroom-Load. */
export const TOKEN_HEADER = 'X-Mailroom-Load';
export const TOKEN_DOMAIN = 'load.invalid';
const RUN_ID_CHARS = 8;
const SEQ_CHARS = 9;
const TOKEN_LENGTH = RUN_ID_CHARS + 1 + SEQ_CHARS;
const PLACEHOLDER = 'Z'.repeat(TOKEN_LENGTH);

/** Bigger messages stream (a 40 MB message × 20 sessions would otherwise hold 800 MB). */
export const STREAM_ABOVE_BYTES = 4 * 1024 * 1024;

export interface LoadMessage {
  token: string;
  /** Exact length of the DATA (CRLF line ends, no dot-stuffing). */
  bytes: number;
  shape: ShapeName;
  /** The message in memory (up to STREAM_ABOVE_BYTES) … */
  data?: Buffer;
  /** … or a fresh stream of it. */
  stream?: () => Readable;
}

export type ShapeName = 'text' | 'attachments' | 'large';

/** `<runId>-<seq>`: unique in a run and across runs (random run id), fixed width so it overwrites the placeholder. */
export function tokenFor(runId: string, seq: number): string {
  return `${runId}-${seq.toString(36).padStart(SEQ_CHARS, '0')}`;
}

export function newRunId(): string {
  const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';
  return [...randomBytes(RUN_ID_CHARS)].map((b) => alphabet[b % 36]).join('');
}

/** The token in a Message-ID header value, or undefined when it is not one of ours. */
export function tokenOfMessageId(messageId: string | undefined): string | undefined {
  const m = /^<?([0-9a-z]{8}-[0-9a-z]{9})@load\.invalid>?$/.exec(messageId?.trim() ?? '');
  return m?.[1];
}

// ---------------------------------------------------------------------------------------------------------------
// Bodies

const LINE = 78; // 76 characters + CRLF: MailComposer's base64 line, and the text lines written here
const WORDS = 'the of and to in is for on that with as at by from this are be have it an or was which not you all your can has more about will our one new mail message report team update please note below attached meeting review thanks regards'.split(' ');

/** A block of text lines, each exactly 76 ASCII characters without '=' or a trailing space (valid 7bit and QP). */
function textBlock(lines: number, seed: number): Buffer {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s);
  const out = Buffer.alloc(lines * LINE);
  for (let l = 0; l < lines; l++) {
    let line = '';
    while (line.length < 76) line += `${WORDS[next() % WORDS.length]} `;
    line = line.slice(0, 75).replace(/ $/, 'x') + '.';
    out.write(`${line}\r\n`, l * LINE, 'latin1');
  }
  return out;
}

/** Base64 lines of random bytes, 76 characters each: as MailComposer encodes an attachment. */
function base64Block(lines: number): Buffer {
  const raw = randomBytes(lines * 57);
  const out = Buffer.alloc(lines * LINE);
  for (let l = 0; l < lines; l++) out.write(`${raw.subarray(l * 57, (l + 1) * 57).toString('base64')}\r\n`, l * LINE, 'latin1');
  return out;
}

/** Blocks the bodies are cut from (and repeated from, for big messages); made in prepare(), not on the clock. */
const TEXT_LINES = 2048; // × 78 = 156 KiB
const BASE64_LINES = 13_443; // × 78 ≈ 1 MiB
let text: Buffer | undefined;
let base64: Buffer | undefined;
const textLines = () => (text ??= textBlock(TEXT_LINES, 0x6d61696c));
const base64Lines = () => (base64 ??= base64Block(BASE64_LINES));

/**
 * Text of exactly `bytes` bytes as CRLF lines of 0–76 characters (any length ≥ 2 can be written so; 1 cannot and
 * becomes 2). Whole lines come from the block; the end is one shorter line.
 */
function textOf(bytes: number): Buffer[] {
  if (bytes <= 0) return [];
  if (bytes === 1) bytes = 2;
  const block = textLines();
  const parts: Buffer[] = [];
  let left = bytes;
  // Keep 2..LINE+1 bytes for the last one or two lines.
  while (left > LINE + 1) {
    const whole = Math.min(Math.floor((left - 2) / LINE), TEXT_LINES);
    parts.push(block.subarray(0, whole * LINE));
    left -= whole * LINE;
  }
  if (left === LINE + 1) {
    // 79 = a 75-character line + an empty line
    parts.push(Buffer.concat([block.subarray(0, 75), Buffer.from('\r\n\r\n')]));
  } else if (left >= 2) {
    parts.push(Buffer.concat([block.subarray(0, left - 2), Buffer.from('\r\n')]));
  }
  return parts;
}

// ---------------------------------------------------------------------------------------------------------------
// Shapes

type Gap = 'text' | 'base64';

/** A composed message split at its body markers: pieces[0] gap[0] pieces[1] … pieces[n]. */
interface Shape {
  name: ShapeName;
  pieces: Buffer[];
  gaps: Gap[];
  /** Where the placeholder sits in pieces[0] (the header block). */
  tokenAt: number[];
  fixedBytes: number;
}

const TEXT_MARKER = 'MAILROOMLOADTEXTBODYMARKER';
const attachmentMarker = (i: number) => Buffer.from(`MAILROOM-LOAD-ATTACHMENT-MARKER-${i}`.padEnd(57, '-'), 'latin1');

interface ShapeSpec {
  name: ShapeName;
  attachments: number;
}

async function compose(spec: ShapeSpec, from: string, to: string[]): Promise<Shape> {
  const textBody = spec.name === 'text' ? TEXT_MARKER : 'Please find the files attached. This message was sent by mailroom load.';
  const mail = new MailComposer({
    from,
    to,
    subject: `mailroom load ${PLACEHOLDER}`,
    messageId: `<${PLACEHOLDER}@${TOKEN_DOMAIN}>`,
    headers: { [TOKEN_HEADER]: PLACEHOLDER },
    text: textBody,
    html: `<p>${textBody.replace(TEXT_MARKER, 'A load-test message from mailroom load.')}</p>`,
    attachments: Array.from({ length: spec.attachments }, (_, i) => ({ filename: `attachment-${i + 1}.pdf`, contentType: 'application/pdf', content: attachmentMarker(i) })),
  });
  const composed = await new Promise<Buffer>((resolve, reject) => mail.compile().build((err, buf) => (err ? reject(err) : resolve(buf))));
  const markers: Array<{ bytes: Buffer; gap: Gap }> = [];
  if (spec.name === 'text') markers.push({ bytes: Buffer.from(`${TEXT_MARKER}\r\n`), gap: 'text' });
  for (let i = 0; i < spec.attachments; i++) markers.push({ bytes: Buffer.from(`${attachmentMarker(i).toString('base64')}\r\n`), gap: 'base64' });
  const pieces: Buffer[] = [];
  let at = 0;
  for (const m of markers) {
    const i = composed.indexOf(m.bytes, at);
    if (i < 0) throw new Error(`MailComposer's output has no ${m.gap} marker where the ${spec.name} shape expects one`);
    pieces.push(composed.subarray(at, i));
    at = i + m.bytes.length;
  }
  pieces.push(composed.subarray(at));
  const head = pieces[0]!;
  const tokenAt: number[] = [];
  for (let i = head.indexOf(PLACEHOLDER); i >= 0; i = head.indexOf(PLACEHOLDER, i + 1)) tokenAt.push(i);
  if (tokenAt.length < 3) throw new Error('MailComposer changed the token placeholder (folded or encoded a header)');
  return { name: spec.name, pieces, gaps: markers.map((m) => m.gap), tokenAt, fixedBytes: pieces.reduce((n, p) => n + p.length, 0) };
}

// ---------------------------------------------------------------------------------------------------------------
// Sizes

/** Deterministic per message number: the same run length gives the same sizes, so runs compare. */
function unit(seq: number, salt: number): number {
  let h = Math.imul(seq ^ 0x9e3779b9, 0x85ebca6b) ^ salt;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) / 2 ** 32;
}
const logUniform = (u: number, lo: number, hi: number) => Math.round(Math.exp(Math.log(lo) + u * (Math.log(hi) - Math.log(lo))));

/** The realistic mix (docs/load.md#message-sizes): its share of messages, shape and size range. */
export const REALISTIC_MIX = [
  { share: 0.9, shape: 'text', attachments: 0, lo: 5 * 1024, hi: 50 * 1024, spread: 'log' },
  { share: 0.09, shape: 'attachments', attachments: 3, lo: 100 * 1024, hi: 2 * 1024 * 1024, spread: 'log' },
  { share: 0.01, shape: 'large', attachments: 1, lo: 10 * 1024 * 1024, hi: 40 * 1024 * 1024, spread: 'uniform' },
] as const;

export interface MessageFactoryOptions {
  size: MessageSize;
  runId: string;
  from: string;
  to: string[];
  /** The target's limit (config maxMessageSize, else SES's 40 MB): no message is made bigger. */
  maxBytes: number;
}

/** Makes message `seq` of a run: cheap per message (copies and a token write), MailComposer only at prepare(). */
export class MessageFactory {
  private shapes = new Map<string, Shape>();

  constructor(private readonly opts: MessageFactoryOptions) {}

  async prepare(): Promise<void> {
    textLines();
    if (this.opts.size.kind === 'mix') base64Lines();
    const specs: ShapeSpec[] = this.opts.size.kind === 'fixed' ? [{ name: 'text', attachments: 0 }] : REALISTIC_MIX.map((c) => ({ name: c.shape, attachments: c.attachments }));
    for (const s of specs) {
      // 'attachments' messages carry 1–3 files; each count is its own composed shape.
      const counts = s.name === 'attachments' ? [1, 2, 3] : [s.attachments];
      for (const n of counts) this.shapes.set(`${s.name}/${n}`, await compose({ ...s, attachments: n }, this.opts.from, this.opts.to));
    }
  }

  /** The smallest message the fixed-size shape can make (its headers and MIME structure). */
  get minimumBytes(): number {
    return this.shape('text/0').fixedBytes + 2;
  }

  /**
   * Message `seq`. `reuse`: a buffer of an earlier message of the caller's that is no longer in use (its send has
   * been answered); a message that fits is built in it instead of a new one — no allocation, less garbage.
   */
  message(seq: number, reuse?: Buffer): LoadMessage {
    const token = tokenFor(this.opts.runId, seq);
    const size = this.opts.size;
    if (size.kind === 'fixed') return this.build(this.shape('text/0'), token, [Math.max(2, size.bytes - this.shape('text/0').fixedBytes)], reuse);
    const u = unit(seq, 1);
    let acc = 0;
    const cls = REALISTIC_MIX.find((c) => u < (acc += c.share)) ?? REALISTIC_MIX[0];
    const v = unit(seq, 2);
    let target = Math.min(this.opts.maxBytes - 64 * 1024, cls.spread === 'log' ? logUniform(v, cls.lo, cls.hi) : Math.round(cls.lo + v * (cls.hi - cls.lo)));
    if (cls.shape === 'text') return this.build(this.shape('text/0'), token, [Math.max(2, target - this.shape('text/0').fixedBytes)], reuse);
    const n = cls.shape === 'attachments' ? 1 + Math.floor(unit(seq, 3) * 3) : 1;
    const shape = this.shape(`${cls.shape}/${n}`);
    target = Math.max(target, shape.fixedBytes + n * LINE);
    // Split the attachment bytes unevenly (a big file and small ones), whole base64 lines each.
    const lines = Math.max(n, Math.floor((target - shape.fixedBytes) / LINE));
    const weights = Array.from({ length: n }, (_, i) => 1 + unit(seq, 10 + i) * (i === 0 ? 4 : 1));
    const total = weights.reduce((a, b) => a + b, 0);
    const per = weights.map((w) => Math.max(1, Math.floor((lines * w) / total)));
    return this.build(shape, token, per.map((l) => l * LINE), reuse);
  }

  private shape(key: string): Shape {
    const s = this.shapes.get(key);
    if (!s) throw new Error(`message shape ${key} was not prepared`);
    return s;
  }

  /** `gapBytes[i]`: the body length between pieces i and i+1. */
  private build(shape: Shape, token: string, gapBytes: number[], reuse?: Buffer): LoadMessage {
    const bytes = shape.fixedBytes + gapBytes.reduce((a, b) => a + b, 0);
    if (bytes <= STREAM_ABOVE_BYTES) {
      const data = reuse && reuse.length >= bytes ? reuse.subarray(0, bytes) : Buffer.allocUnsafe(bytes);
      let o = 0;
      for (const p of this.parts(shape, gapBytes)) {
        if (Buffer.isBuffer(p)) o += p.copy(data, o);
        else for (const chunk of base64Chunks(p.base64Lines)) o += chunk.copy(data, o);
      }
      for (const at of shape.tokenAt) data.write(token, at, 'latin1');
      return { token, bytes, shape: shape.name, data };
    }
    const head = Buffer.from(shape.pieces[0]!);
    for (const at of shape.tokenAt) head.write(token, at, 'latin1');
    const parts = () => this.parts(shape, gapBytes, head);
    return {
      token,
      bytes,
      shape: shape.name,
      stream: () =>
        Readable.from(
          (function* () {
            for (const p of parts()) {
              if (Buffer.isBuffer(p)) yield p;
              else yield* base64Chunks(p.base64Lines);
            }
          })(),
          { objectMode: false },
        ),
    };
  }

  /** The message's pieces in order: composed bytes, text bodies, and base64 bodies to be generated. */
  private parts(shape: Shape, gapBytes: number[], head: Buffer = shape.pieces[0]!): Array<Buffer | { base64Lines: number }> {
    const out: Array<Buffer | { base64Lines: number }> = [head];
    shape.gaps.forEach((g, i) => {
      if (g === 'text') out.push(...textOf(gapBytes[i]!));
      else out.push({ base64Lines: gapBytes[i]! / LINE });
      out.push(shape.pieces[i + 1]!);
    });
    return out;
  }
}

/** `lines` base64 lines, as views of the shared block (repeated when longer). */
function* base64Chunks(lines: number): Generator<Buffer> {
  const block = base64Lines();
  for (let left = lines; left > 0; ) {
    const n = Math.min(left, 1024); // 78 KiB chunks: socket-sized writes
    const start = (lines - left) % (BASE64_LINES - 1024);
    yield block.subarray(start * LINE, (start + n) * LINE);
    left -= n;
  }
}

/** A message as a stream, for the clients that time the end of its DATA by the stream's 'end'. */
export function messageStream(m: LoadMessage): Readable {
  if (m.stream) return m.stream();
  const data = m.data!;
  return new Readable({
    read() {
      this.push(data);
      this.push(null);
    },
  });
}
