import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import type { SmtpReply } from './replies.js';

/** What the gateway decided about a new connection, at TCP accept (before any TLS handshake). */
export type Admission = { ok: false; reply: SmtpReply } | { ok: true; greetingDelayMs: number; release: () => void };

/**
 * smtp-server, with the start of a session decided by the gateway. smtp-server's own `init()` always waits a fixed
 * 100 ms before the greeting (early-talker detection: a client that talks before 220 gets 421) and only knows one
 * connection limit per server object. Here the gateway's EdgeListener owns the TCP accept (PROXY header, real client
 * address), decides admission there, and calls `startSession()`; the session then starts exactly as `init()` would
 * start it, except that the admission decides: refuse now (receipt filter, limits), or greet after a per-client delay
 * (0 for trusted relays, so a relay that opens one connection per message is not held at 10 messages/s per connection).
 *
 * Implicit TLS: admission comes before the handshake, so a flood of idle connections from one address holds only its
 * per-client share, and a blocked address costs no TLS work. A refused connection is closed without a reply (a reply
 * would need the handshake); an admitted one must finish its handshake within `handshakeTimeoutMs`.
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
    private readonly handshakeTimeoutMs: number,
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

  /** Starts the SMTP session of a socket the listener accepted, as admission decided. */
  startSession(socket: Socket | TLSSocket, socketOptions: SMTPConnectionOptions, admission: Admission): void {
    const implicitTls = !!this.options.needsUpgrade;
    // A socket already gone may have sent its close event before anyone listened: no session, nothing held.
    if (socket.destroyed || (!admission.ok && implicitTls)) {
      if (admission.ok) admission.release();
      socket.destroy();
      return;
    }
    const c = new SMTPConnection(this, socket, socketOptions);
    this.connections.add(c);
    c.on('error', (err: Error) => this.emit('error', err));
    c.on('connect', (data: unknown) => this.emit('connect', data));
    if (admission.ok) this.slots.set(c.id, admission.release);
    // Destroying the raw socket closes the TLS socket over it, and with it the session (onClose releases the slot).
    const handshake = implicitTls ? setTimeout(() => socket.destroy(), this.handshakeTimeoutMs).unref() : undefined;
    c._setListeners(() => {
      clearTimeout(handshake);
      if (!admission.ok) {
        c.send(admission.reply.responseCode, admission.reply.message);
        if (admission.reply.responseCode !== 421) c.close(); // send() closes on 421 itself
        return;
      }
      if (admission.greetingDelayMs > 0) setTimeout(() => c.connectionReady(), admission.greetingDelayMs).unref();
      else c.connectionReady();
    });
  }
}
