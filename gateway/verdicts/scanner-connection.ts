import { connect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { parseEndpoint } from '../../shared/config/gateway.js';
import type { ScanOutcome } from '../../shared/ses/verdicts.js';

/** What a scanner said about a message: the outcome, and for logs what it found or why it could not scan. */
export interface ScanResult {
  outcome: ScanOutcome;
  detail?: string;
}

/** The message a scanner reads: its size, and a fresh stream of its bytes for each scanner. */
export interface ScanInput {
  size: number;
  open(): Readable;
}

/** Node's connect options for a configured endpoint (validated by the config schema). */
export function connectOptions(endpoint: string): { host: string; port: number } | { path: string } {
  const e = parseEndpoint(endpoint);
  if ('error' in e) throw new Error(`scanner endpoint "${endpoint}" ${e.error}`);
  return e;
}

/** After a request could not be written whole, how long a reply that explains it may take. */
const REPLY_GRACE_MS = 1_000;

/** A scanner's reply is a status line or a small JSON document; more than this is no answer of theirs. */
export const MAX_REPLY_BYTES = 1024 * 1024;

/**
 * One request/response exchange over a fresh connection, bounded by `timeoutMs` from connect to the last reply byte:
 * `send` writes the request (honouring backpressure), the reply is read until the scanner closes or `complete` says
 * it is whole. Resolves with the reply; rejects on a connection error, a timeout or an over-long reply — each the
 * verdict PROCESSING_FAILED for the caller. A reply that arrives before the request is fully written (clamd's size
 * limit) is still read.
 */
export function exchange(endpoint: string, timeoutMs: number, send: (socket: Socket) => Promise<void>, complete: (reply: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(connectOptions(endpoint));
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err && size === 0) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(() => finish(new Error(`no complete answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > MAX_REPLY_BYTES) return finish(new Error(`answer longer than ${MAX_REPLY_BYTES} bytes`));
      if (complete(Buffer.concat(chunks))) finish();
    });
    socket.on('end', () => finish(size === 0 ? new Error('closed the connection without an answer') : undefined));
    socket.on('error', (err) => finish(err));
    socket.once('connect', () => {
      send(socket).then(
        () => socket.end(),
        // The scanner may have stopped reading to say why (clamd's size limit): give its reply a moment to arrive.
        (err: Error) => setTimeout(() => finish(err), REPLY_GRACE_MS).unref(),
      );
    });
  });
}

/** Writes `chunk`, waiting while the socket's buffer is full; rejects when the socket errors or closes first. */
export function write(socket: Socket, chunk: Buffer): Promise<void> {
  if (socket.destroyed) return Promise.reject(new Error('connection closed'));
  if (socket.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      socket.off('drain', ok);
      socket.off('close', closed);
      if (err) reject(err);
      else resolve();
    };
    const ok = () => done();
    const closed = () => done(new Error('connection closed'));
    socket.on('drain', ok);
    socket.on('close', closed);
  });
}

/** Streams a message into the socket, `frame` wrapping each chunk (clamd's length prefix), never holding it whole. */
export async function writeMessage(socket: Socket, input: ScanInput, frame: (chunk: Buffer) => Buffer[] = (c) => [c]): Promise<void> {
  const stream = input.open();
  try {
    for await (const chunk of stream) for (const part of frame(chunk as Buffer)) await write(socket, part);
  } finally {
    stream.destroy();
  }
}
