import { request } from 'node:http';
import { connectOptions, exchange, MAX_REPLY_BYTES, write, writeMessage, type ScanInput, type ScanResult } from './scanner-connection.js';

/** What the spam scanners are told of the SMTP transaction besides the message. */
export interface SpamContext {
  messageId: string;
  mailFrom: string;
  helo?: string;
  clientIp?: string;
  recipients: readonly string[];
  /** The gateway's name, for the trace spamd reads. */
  byHost: string;
}

export interface SpamScanner {
  scan(input: ScanInput, context: SpamContext): Promise<ScanResult>;
}

/**
 * SpamAssassin's spamd over its spamc protocol (`CHECK SPAMC/1.5`, Content-length, the message; the reply's `Spam:`
 * line): `True` is found (FAIL), `False` clean (PASS). spamd reads the relay from the topmost Received field, so the
 * message goes with the trace an MTA would hand it (`Received: from <helo> ([<ip>]) by <gateway> …`).
 */
export class Spamd implements SpamScanner {
  constructor(private readonly settings: { endpoint: string; timeoutMs: number; maxBytes: number }) {}

  async scan(input: ScanInput, context: SpamContext): Promise<ScanResult> {
    if (input.size > this.settings.maxBytes) return { outcome: 'not-scanned', detail: `larger than maxBytes (${this.settings.maxBytes})` };
    const trace = Buffer.from(traceField(context));
    try {
      const reply = await exchange(
        this.settings.endpoint,
        this.settings.timeoutMs,
        async (socket) => {
          await write(socket, Buffer.from(`CHECK SPAMC/1.5\r\nContent-length: ${trace.length + input.size}\r\n\r\n`));
          await write(socket, trace);
          await writeMessage(socket, input);
        },
        // spamd closes after its reply; a reply whose headers ended is whole.
        (r) => r.includes('\r\n\r\n'),
      );
      return parseSpamdReply(reply.toString('latin1'));
    } catch (err) {
      return { outcome: 'failed', detail: `spamd at ${this.settings.endpoint}: ${(err as Error).message}` };
    }
  }
}

/** `SPAMD/1.1 0 EX_OK` then `Spam: True ; 1000.0 / 5.0`; any other status is spamd saying it could not scan. */
export function parseSpamdReply(reply: string): ScanResult {
  const status = /^SPAMD\/\d+\.\d+ (\d+) ([^\r\n]*)/.exec(reply);
  if (!status) return { outcome: 'failed', detail: `spamd: unexpected answer ${JSON.stringify(reply.slice(0, 60))}` };
  if (status[1] !== '0') return { outcome: 'failed', detail: `spamd: ${status[1]} ${status[2]}` };
  const spam = /\r\nSpam: (True|False|Yes|No) ; (-?[\d.]+) \/ (-?[\d.]+)/i.exec(reply);
  if (!spam) return { outcome: 'failed', detail: 'spamd: no Spam line in its answer' };
  const found = /^(true|yes)$/i.test(spam[1]!);
  return { outcome: found ? 'found' : 'clean', detail: `score ${spam[2]} / ${spam[3]}` };
}

/** The Received field an MTA would add for the gateway's hop (RFC 5321 §4.4), so spamd sees the real client. */
function traceField(c: SpamContext): string {
  const from = c.clientIp ? `from ${c.helo ?? 'unknown'} ([${c.clientIp.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '')}])\r\n\t` : '';
  return `Received: ${from}by ${c.byHost} with SMTP id ${c.messageId};\r\n\t${new Date().toUTCString().replace('GMT', '+0000')}\r\n`;
}

const printable = (v: string | undefined) => (v !== undefined && /^[\x20-\x7e]+$/.test(v) ? v : undefined);

/**
 * rspamd's normal worker over HTTP (`POST /checkv2` with the transaction in headers; a JSON reply whose `action`
 * decides): reject, add header and rewrite subject are found (FAIL), greylist and soft reject uncertain (GRAY), no
 * action clean (PASS) — unless rspamd skipped the message, then not scanned (GRAY).
 */
export class Rspamd implements SpamScanner {
  constructor(private readonly settings: { endpoint: string; timeoutMs: number; maxBytes: number }) {}

  async scan(input: ScanInput, context: SpamContext): Promise<ScanResult> {
    if (input.size > this.settings.maxBytes) return { outcome: 'not-scanned', detail: `larger than maxBytes (${this.settings.maxBytes})` };
    try {
      return parseRspamdReply(await this.post(input, context));
    } catch (err) {
      return { outcome: 'failed', detail: `rspamd at ${this.settings.endpoint}: ${(err as Error).message}` };
    }
  }

  private post(input: ScanInput, c: SpamContext): Promise<string> {
    const target = connectOptions(this.settings.endpoint);
    // Header values must be printable ASCII; an SMTPUTF8 address is left out rather than mangled.
    const headers: Record<string, string | string[]> = { 'Content-Length': String(input.size), 'Queue-Id': c.messageId };
    for (const [name, value] of [['IP', c.clientIp], ['Helo', c.helo], ['From', c.mailFrom], ['MTA-Name', c.byHost]] as const) {
      const v = printable(value);
      if (v) headers[name] = v;
    }
    const rcpt = c.recipients.map(printable).filter((r): r is string => r !== undefined);
    if (rcpt.length > 0) headers.Rcpt = rcpt;
    return new Promise((resolve, reject) => {
      const req = request({ ...('path' in target ? { socketPath: target.path } : { host: target.host, port: target.port }), method: 'POST', path: '/checkv2', headers, timeout: this.settings.timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_REPLY_BYTES) req.destroy(new Error(`answer longer than ${MAX_REPLY_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString('utf8')) : reject(new Error(`HTTP ${res.statusCode}`))));
        res.on('error', reject);
      });
      const deadline = setTimeout(() => req.destroy(new Error(`no complete answer within ${this.settings.timeoutMs} ms`)), this.settings.timeoutMs);
      req.on('close', () => clearTimeout(deadline));
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.settings.timeoutMs} ms`)));
      req.on('error', reject);
      const stream = input.open();
      stream.on('error', (err) => req.destroy(err));
      stream.pipe(req);
    });
  }
}

export function parseRspamdReply(body: string): ScanResult {
  let reply: { action?: unknown; score?: unknown; required_score?: unknown; is_skipped?: unknown };
  try {
    reply = JSON.parse(body) as typeof reply;
  } catch {
    return { outcome: 'failed', detail: 'rspamd: its answer is not JSON' };
  }
  const detail = `action ${String(reply.action)}, score ${String(reply.score)} / ${String(reply.required_score)}`;
  switch (reply.action) {
    case 'no action':
      // Skipped (a settings rule, a size limit): rspamd did not look, so "no action" says nothing. A skip with an
      // action (GTUBE stops the checks with a reject) keeps its action.
      return reply.is_skipped === true ? { outcome: 'not-scanned', detail: `rspamd skipped it (${detail})` } : { outcome: 'clean', detail };
    case 'greylist':
    case 'soft reject':
      return { outcome: 'uncertain', detail };
    case 'add header':
    case 'rewrite subject':
    case 'reject':
      return { outcome: 'found', detail };
    default:
      return { outcome: 'failed', detail: `rspamd: unknown action (${detail})` };
  }
}
