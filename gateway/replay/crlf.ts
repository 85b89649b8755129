import { Transform, type TransformCallback } from 'node:stream';

const LF = 0x0a;
const CR = 0x0d;
const CRLF = Buffer.from('\r\n');

/**
 * A stored message's lines as an SMTP client would have sent them: each bare LF becomes CRLF, an existing CRLF stays,
 * and a last line without a line end gets one (DATA always ends with the CRLF before its final dot). Mail archives
 * (mbox, Maildir, `.eml` exports) mostly hold LF-only text; SES stores what arrived over SMTP, which is CRLF.
 * A lone CR inside a line is content and stays.
 */
export class CrlfNormalizer {
  private lastByte = -1;

  /** The chunk with its bare LFs widened; the chunk itself when it has none (the usual CRLF case costs no copy). */
  write(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    let bare = 0;
    for (let i = chunk.indexOf(LF); i >= 0; i = chunk.indexOf(LF, i + 1)) {
      if ((i === 0 ? this.lastByte : chunk[i - 1]) !== CR) bare++;
    }
    const prev = this.lastByte;
    this.lastByte = chunk[chunk.length - 1]!;
    if (bare === 0) return chunk;
    const out = Buffer.allocUnsafe(chunk.length + bare);
    let o = 0;
    let from = 0;
    for (let i = chunk.indexOf(LF); i >= 0; i = chunk.indexOf(LF, i + 1)) {
      if ((i === 0 ? prev : chunk[i - 1]) === CR) continue;
      o += chunk.copy(out, o, from, i);
      out[o++] = CR;
      out[o++] = LF;
      from = i + 1;
    }
    o += chunk.copy(out, o, from);
    return out;
  }

  /** The line end a last line without one needs: CRLF, or LF after a trailing CR; nothing for an empty message. */
  end(): Buffer {
    if (this.lastByte === -1 || this.lastByte === LF) return Buffer.alloc(0);
    const tail = this.lastByte === CR ? CRLF.subarray(1) : CRLF;
    this.lastByte = LF;
    return tail;
  }
}

/** CrlfNormalizer as a stream stage. */
export function crlfStream(): Transform {
  const crlf = new CrlfNormalizer();
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      const out = crlf.write(chunk);
      done(null, out.length ? out : undefined);
    },
    flush(done: TransformCallback) {
      const tail = crlf.end();
      done(null, tail.length ? tail : undefined);
    },
  });
}
