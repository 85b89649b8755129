import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
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
 * `init()` is three lines over `_setListeners` and `connectionReady`; smtp-server is pinned, and a change there
 * fails the edge tests (greeting, early talker, limits) rather than passing silently.
 */
export class EdgeSmtpServer extends SMTPServer {
  constructor(
    options: SMTPServerOptions,
    private readonly admit: (remoteAddress: string) => Admission,
  ) {
    super(options);
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
      socket.once('close', a.release);
      if (socket.destroyed) return a.release();
      if (a.greetingDelayMs > 0) setTimeout(() => c.connectionReady(), a.greetingDelayMs).unref();
      else c.connectionReady();
    });
  }
}
