import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import type { SmtpReply } from './replies.js';

/** What the gateway decides about a new session once its transport is up (after the handshake on implicit TLS). */
export type Admission = { ok: false; reply: SmtpReply } | { ok: true; greetingDelayMs: number; release: () => void };

/**
 * smtp-server, with the start of a session decided by the gateway. smtp-server's own `init()` always waits a fixed
 * 100 ms before the greeting (early-talker detection: a client that talks before 220 gets 421) and only knows one
 * connection limit per server object. Here the gateway's EdgeListener owns the TCP accept (PROXY header, real client
 * address) and calls `connect()`; the session then starts exactly as `init()` would start it, except that the
 * admission decides: refuse now (receipt filter, limits), or greet after a per-client delay (0 for trusted relays,
 * so a relay that opens one connection per message is not held at 10 messages/s per connection).
 *
 * An admitted session gives its slot back from smtp-server's `onClose` hook, which runs once per connection
 * whichever socket ends it: after STARTTLS the session lives on a new TLS socket, and smtp-server drops every
 * listener of the raw one, so a listener there never hears the end of a session that upgraded.
 *
 * `init()` is three lines over `_setListeners` and `connectionReady`; smtp-server is pinned, and a change there
 * fails the edge tests (greeting, early talker, limits) rather than passing silently.
 */
export class EdgeSmtpServer extends SMTPServer {
  /** The slot of each admitted session, by session id, until its connection closes. */
  private readonly slots = new Map<string, () => void>();

  constructor(
    options: SMTPServerOptions,
    private readonly admit: (remoteAddress: string) => Admission,
  ) {
    super(options);
    // smtp-server has installed options.onClose (if any) as this.onClose; the slot goes back before it runs.
    const onClose = this.onClose.bind(this);
    this.onClose = (session: SMTPServerSession, callback?: (err?: Error | null) => void) => {
      this.releaseSlot(session.id);
      onClose(session, callback);
    };
  }

  private releaseSlot(sessionId: string): void {
    const release = this.slots.get(sessionId);
    if (!release) return;
    this.slots.delete(sessionId);
    release();
  }

  override connect(socket: Socket | TLSSocket, socketOptions?: SMTPConnectionOptions | null): void {
    const c = new SMTPConnection(this, socket, socketOptions);
    this.connections.add(c);
    c.on('error', (err: Error) => this.emit('error', err));
    c.on('connect', (data: unknown) => this.emit('connect', data));
    c._setListeners(() => {
      const a = this.admit(c.remoteAddress);
      if (!a.ok) {
        c.send(a.reply.responseCode, a.reply.message);
        if (a.reply.responseCode !== 421) c.close(); // send() closes on 421 itself
        return;
      }
      this.slots.set(c.id, a.release);
      // Gone before its session was set up: its close event may have gone by already. (Released once either way.)
      if (socket.destroyed) return this.releaseSlot(c.id);
      if (a.greetingDelayMs > 0) setTimeout(() => c.connectionReady(), a.greetingDelayMs).unref();
      else c.connectionReady();
    });
  }
}
