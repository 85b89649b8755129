/**
 * Writes a big mbox for the replay benchmarks as a stream (never whole in memory): messages of about `averageBytes`
 * bodies (base64 text in 76-character lines), with `every` of them bigger, and bodies with "From " lines to quote
 * (mboxrd), until `maxBytes` or `maxMessages` is reached.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

/** 1 MiB of base64 text in 76-character lines to cut bodies from. */
const TEXT = Buffer.from(
  randomBytes(768 * 1024)
    .toString('base64')
    .replace(/.{76}/g, '$&\n'),
);

function body(bytes: number): Buffer {
  const parts: Buffer[] = [];
  for (let left = bytes; left > 0; left -= TEXT.length) parts.push(TEXT.subarray(0, Math.min(left, TEXT.length)));
  return Buffer.concat([Buffer.from('From the first line, quoted\n>From a quoted one\n'), ...parts, Buffer.from('\n')]);
}

export interface MboxShape {
  maxBytes?: number;
  maxMessages?: number;
  /** Body bytes of an ordinary message. */
  averageBytes: number;
  /** Bigger messages: every `every`-th message has a body of `bytes`. */
  bigger?: Array<{ every: number; bytes: number }>;
}

const lineEnds = (b: Buffer) => {
  let n = 0;
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) n++;
  return n;
};

/**
 * `bytes`: the file's size; `dataBytes`: the messages' DATA as replay hands it on (the From line and the separating
 * empty line left out, the quoting undone, CRLF line ends).
 */
export async function writeMbox(path: string, shape: MboxShape): Promise<{ messages: number; bytes: number; dataBytes: number }> {
  const out = createWriteStream(path, { highWaterMark: 1 << 20 });
  const quote = (b: Buffer) => Buffer.from(b.toString('latin1').replace(/^(>*From )/gm, '>$1'), 'latin1');
  const withData = (plain: Buffer) => ({ body: quote(plain), data: plain.length + lineEnds(plain) });
  const ordinary = withData(body(shape.averageBytes));
  const bigger = (shape.bigger ?? []).map((b) => ({ every: b.every, ...withData(body(b.bytes)) }));
  let written = 0;
  let dataBytes = 0;
  let messages = 0;
  while ((shape.maxBytes === undefined || written < shape.maxBytes) && (shape.maxMessages === undefined || messages < shape.maxMessages)) {
    const n = messages++;
    const b = bigger.find((x) => n % x.every === x.every - 1) ?? ordinary;
    const fromLine = Buffer.from(`From sender${n}@sender.example Sat Jan  3 01:05:34 2004\n`);
    const head = Buffer.from(
      `Return-Path: <sender${n}@sender.example>\nFrom: sender${n}@sender.example\nTo: user${n % 50}@example.com\nSubject: message ${n}\nDate: Sat, 3 Jan 2004 01:05:34 +0000\nMessage-ID: <${n}@sender.example>\n\n`,
    );
    dataBytes += head.length + lineEnds(head) + b.data;
    for (const part of [fromLine, head, b.body, Buffer.from('\n')]) {
      written += part.length;
      if (!out.write(part)) await once(out, 'drain');
    }
  }
  out.end();
  await once(out, 'finish');
  return { messages, bytes: written, dataBytes };
}
