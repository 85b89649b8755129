/**
 * One SMTP session of a load run, on nodemailer's SMTPConnection — the connection class its pooled transport is
 * built on. The pool itself is not used: its sendMail path builds a message object per mail (MailMessage, a MIME
 * node, a Message-ID, an abort signal, a stream pipeline) and cost about four times the CPU of the connection alone,
 * enough to make the generator the bottleneck (docs/load.md#speed). It also resends a message whose connection
 * dropped, which a load test must count instead.
 *
 * Accept latency is end of DATA → reply: the message goes to SMTPConnection as a stream, whose 'end' is when the
 * client has read the last byte and writes the final dot.
 */
import { performance } from 'node:perf_hooks';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { isMessageId } from '../shared/ses/message-id.js';
import type { Job, Lane } from './driver.js';
import { classifySmtpError, interrupted, LoadTimeoutError } from './errors.js';
import { messageStream, type LoadMessage, type MessageFactory } from './messages.js';
import type { Recorder } from './recorder.js';

export interface SmtpTarget {
  host: string;
  port: number;
  tls: 'none' | 'starttls' | 'implicit';
  ca?: Buffer;
  tlsInsecure: boolean;
  auth?: { user: string; pass: string };
  helo: string;
  timeoutMs: number;
}

export interface AcceptedMessage {
  seq: number;
  token: string;
  /** The id in the server's `250 Ok <id>` (mailroom and SES answer so): the stored object's key. */
  sesMessageId: string | undefined;
  /** performance.now() of the reply. */
  at: number;
}

export interface SmtpLaneDeps {
  target: SmtpTarget;
  messages: MessageFactory;
  envelope: { from: string; to: string[] };
  recorder: Recorder;
  onAccepted(m: AcceptedMessage): void;
  stats: { connectionsOpened: number; recipientsRefused: number };
}

type Connection = InstanceType<typeof SMTPConnection>;

const REUSE_BELOW_BYTES = 256 * 1024;

/** The server's id in a `250 Ok <id>` reply, when it is an SES-style message id. */
export function replyMessageId(reply: string): string | undefined {
  const id = /^250[ -]Ok:? <?([0-9a-v]{40})>?/i.exec(reply)?.[1];
  return id && isMessageId(id) ? id : undefined;
}

export function connectionOptions(t: SmtpTarget): ConstructorParameters<typeof SMTPConnection>[0] {
  return {
    host: t.host,
    port: t.port,
    secure: t.tls === 'implicit',
    requireTLS: t.tls === 'starttls',
    ignoreTLS: t.tls === 'none',
    name: t.helo,
    connectionTimeout: Math.min(t.timeoutMs, 30_000),
    greetingTimeout: Math.min(t.timeoutMs, 30_000),
    socketTimeout: t.timeoutMs,
    socketCloseTimeout: 1_000,
    tls: { rejectUnauthorized: !t.tlsInsecure, ...(t.ca ? { ca: t.ca } : {}) },
    logger: false,
  };
}

/** A connected (and, with credentials, logged-in) SMTPConnection; rejects with nodemailer's error. */
export function openConnection(t: SmtpTarget): Promise<Connection> {
  const c = new SMTPConnection(connectionOptions(t));
  return new Promise<Connection>((resolve, reject) => {
    let failed = false;
    // The first error is the one that says what happened; close() then emits 'end', which must not replace it.
    const fail = (err: Error) => {
      if (failed) return;
      failed = true;
      reject(err);
      c.close();
    };
    c.once('error', fail);
    c.once('end', () => fail(Object.assign(new Error('the server closed the connection before the session started'), { code: 'ECONNECTION', command: 'CONN' })));
    c.connect((err) => {
      if (err) return fail(err);
      if (!t.auth) return resolve(c);
      c.login({ user: t.auth.user, pass: t.auth.pass }, (err) => (err ? fail(err) : resolve(c)));
    });
  }).then((conn) => {
    conn.removeAllListeners('error');
    conn.removeAllListeners('end');
    conn.on('error', () => undefined); // reported through the send that was running, or found dead at the next
    return conn;
  });
}

export class SmtpLane implements Lane {
  private conn: Connection | undefined;
  private dead = false;
  private failures = 0;
  /** The last message's buffer, free again once its send was answered: the next small message is built in it. */
  private buffer: Buffer | undefined;

  constructor(private readonly deps: SmtpLaneDeps) {}

  async prepare(): Promise<void> {
    await this.connect().catch(() => undefined);
  }

  private async connect(): Promise<Connection> {
    this.conn = undefined;
    this.dead = false;
    const c = await openConnection(this.deps.target);
    this.conn = c;
    this.deps.stats.connectionsOpened++;
    c.once('end', () => {
      if (this.conn === c) this.dead = true;
    });
    return c;
  }

  async run(job: Job, signal: AbortSignal): Promise<void> {
    const { recorder, target } = this.deps;
    const reuse = this.buffer;
    this.buffer = undefined;
    const msg = this.deps.messages.message(job.seq, reuse);
    let stage = 'CONN';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.drop();
    }, target.timeoutMs);
    const onAbort = () => this.drop();
    signal.addEventListener('abort', onAbort, { once: true });
    recorder.count('sent');
    recorder.bytesSent += msg.bytes;
    try {
      const conn = this.conn && !this.dead ? this.conn : await this.connect();
      if (timedOut) throw new LoadTimeoutError('CONN', target.timeoutMs); // connected, but too late for this message
      stage = 'MAIL FROM';
      const { reply, endOfData, refused } = await this.send(conn, msg);
      const at = performance.now();
      this.failures = 0;
      // Answered, so the socket wrote it all. (After a failure it is not reused: a dropped socket may still hold it.)
      if (msg.data && msg.data.length <= REUSE_BELOW_BYTES) this.buffer = reuse && reuse.length >= msg.data.length ? reuse : msg.data;
      recorder.count('accepted', at);
      if (endOfData !== undefined) recorder.latencyUs('accept', (at - endOfData) * 1000, at);
      if (job.due !== undefined) recorder.latencyUs('response', (at - job.due) * 1000, at);
      for (const r of refused) {
        this.deps.stats.recipientsRefused++;
        recorder.error(classifySmtpError(r, 'RCPT TO'), at);
      }
      this.deps.onAccepted({ seq: job.seq, token: msg.token, sesMessageId: replyMessageId(reply), at });
    } catch (err) {
      if (interrupted(signal) && !timedOut) recorder.count('interrupted');
      else {
        recorder.count('failed');
        const e = timedOut ? new LoadTimeoutError(stage === 'CONN' ? 'CONN' : 'DATA', target.timeoutMs) : signal.aborted ? signal.reason : err;
        recorder.error(classifySmtpError(e, stage === 'CONN' ? 'CONN' : undefined));
      }
      await this.afterError(err, signal);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  private send(conn: Connection, msg: LoadMessage): Promise<{ reply: string; endOfData: number | undefined; refused: Error[] }> {
    return new Promise((resolve, reject) => {
      const stream = messageStream(msg);
      let endOfData: number | undefined;
      let settled = false;
      stream.once('end', () => (endOfData = performance.now()));
      // SMTPConnection.close() forgets the send in flight without calling it back: a timeout or an interrupt closes
      // the connection, and this is how the send learns.
      const onEnd = () => {
        if (settled) return;
        settled = true;
        reject(Object.assign(new Error('the connection closed during the transaction'), { code: 'ECONNECTION', command: endOfData === undefined ? 'DATA' : 'end of DATA' }));
      };
      conn.once('end', onEnd);
      conn.send({ from: this.deps.envelope.from, to: this.deps.envelope.to, size: msg.bytes }, stream, (err, info) => {
        if (settled) return;
        settled = true;
        conn.removeListener('end', onEnd);
        if (err || !info) return reject(err ?? new Error('no reply'));
        resolve({ reply: info.response, endOfData, refused: (info.rejectedErrors ?? []) as Error[] });
      });
    });
  }

  /** A refusal keeps the session (after RSET); anything else drops it, and repeated connection failures back off. */
  private async afterError(err: unknown, signal: AbortSignal): Promise<void> {
    const e = err as { code?: string; responseCode?: number };
    const refusal = (e.code === 'EENVELOPE' || e.code === 'EMESSAGE') && e.responseCode !== 421 && this.conn && !this.dead;
    if (refusal) {
      const conn = this.conn!;
      const ok = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), this.deps.target.timeoutMs);
        conn.reset((resetErr) => (clearTimeout(t), resolve(!resetErr)));
      });
      if (ok) return;
    }
    this.drop();
    if (refusal) return;
    // A target that refuses connections would otherwise be hammered in a tight loop.
    this.failures++;
    const pause = Math.min(1000, 25 * 2 ** Math.min(this.failures, 6));
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, pause);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private drop(): void {
    const c = this.conn;
    this.conn = undefined;
    c?.close();
  }

  async close(): Promise<void> {
    const c = this.conn;
    this.conn = undefined;
    if (!c || this.dead) return c?.close();
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => (c.close(), resolve()), 500);
      c.once('end', () => (clearTimeout(t), resolve()));
      c.quit();
    });
  }
}
