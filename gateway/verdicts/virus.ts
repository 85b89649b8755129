import { exchange, write, writeMessage, type ScanInput, type ScanResult } from './scanner-connection.js';

/** clamd takes INSTREAM chunks of at most this many bytes each (its own limit is larger; this keeps writes small). */
const CHUNK_BYTES = 64 * 1024;

/**
 * ClamAV's clamd over INSTREAM (`zINSTREAM\0`, then length-prefixed chunks of the message, a zero length to end):
 * `stream: OK` is clean (PASS), `stream: <name> FOUND` found (FAIL) — but for clamd's heuristic matches
 * (`Heuristics.*`: a broken or encrypted archive, a phishing guess), which are uncertain (GRAY). An `ERROR` answer —
 * among them the message exceeding clamd's StreamMaxLength — means clamd could not scan it (PROCESSING_FAILED).
 */
export class Clamd {
  constructor(private readonly settings: { endpoint: string; timeoutMs: number }) {}

  async scan(input: ScanInput): Promise<ScanResult> {
    try {
      const reply = await exchange(
        this.settings.endpoint,
        this.settings.timeoutMs,
        async (socket) => {
          await write(socket, Buffer.from('zINSTREAM\0'));
          await writeMessage(socket, input, frame);
          await write(socket, Buffer.alloc(4));
        },
        // The z-form ends its one reply with NUL.
        (r) => r.includes(0),
      );
      return parseClamdReply(reply.toString('utf8'));
    } catch (err) {
      // clamd answers a message over its StreamMaxLength and closes; when the close beats its answer to us, the
      // write fails instead (EPIPE, ECONNRESET) and the answer is lost with the socket.
      const code = (err as NodeJS.ErrnoException).code;
      const hint = code === 'EPIPE' || code === 'ECONNRESET' ? ` (clamd closed the connection before the ${input.size}-byte message was sent: is its StreamMaxLength smaller?)` : '';
      return { outcome: 'failed', detail: `clamd at ${this.settings.endpoint}: ${(err as Error).message}${hint}` };
    }
  }
}

function frame(chunk: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < chunk.length; at += CHUNK_BYTES) {
    const part = chunk.subarray(at, at + CHUNK_BYTES);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(part.length);
    out.push(length, part);
  }
  return out;
}

export function parseClamdReply(raw: string): ScanResult {
  const reply = raw.replace(/\0[\s\S]*$/, '').trim();
  if (reply === 'stream: OK') return { outcome: 'clean' };
  const found = /^stream: (.+) FOUND$/.exec(reply);
  if (found) return { outcome: found[1]!.startsWith('Heuristics.') ? 'uncertain' : 'found', detail: found[1]! };
  return { outcome: 'failed', detail: `clamd: ${reply.slice(0, 200) || '(empty answer)'}` };
}
