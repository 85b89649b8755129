import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from '../runtime/log.js';
import type { AddressSet } from './cidr.js';
import { readProxyHeader } from './proxy-protocol.js';

/** The client as the SMTP session should see it: the socket's peer, or the address a trusted proxy reported. */
export interface ClientAddress {
  remoteAddress: string;
  remotePort: number;
  /** The load balancer the connection came through, when it sent a PROXY header. */
  via?: string;
}

/**
 * A TCP listener in front of smtp-server: it owns the socket from accept, reads a PROXY header (v1 or v2) from
 * trusted load balancers only, and then hands the socket — positioned after the header — to `handoff`, which
 * decides admission by the real client address and starts the SMTP session (on the implicit-TLS port, before the
 * handshake). A trusted peer that sends no valid header within the
 * timeout is closed without a reply: it is not an SMTP client, and a reply would go to the wrong party.
 */
export class EdgeListener {
  readonly server: Server;
  /** Sockets still waiting for their PROXY header (no session yet; shutdown destroys them). */
  private readonly pending = new Set<Socket>();

  constructor(
    readonly name: string,
    opts: { proxies: AddressSet; headerTimeoutMs: number; maxSockets: number; log: Logger },
    handoff: (socket: Socket, client: ClientAddress) => void,
  ) {
    this.server = createServer({ pauseOnConnect: true }, (socket) => {
      // A reset before the session owns the socket must not become an uncaught error.
      socket.on('error', () => undefined);
      const peer = socket.remoteAddress;
      if (!peer) return socket.destroy();
      if (!opts.proxies.has(peer)) return handoff(socket, { remoteAddress: peer, remotePort: socket.remotePort ?? 0 });
      this.pending.add(socket);
      readProxyHeader(socket, opts.headerTimeoutMs).then(
        (h) => {
          this.pending.delete(socket);
          if (socket.destroyed) return;
          if (h.kind === 'local') return handoff(socket, { remoteAddress: peer, remotePort: socket.remotePort ?? 0 });
          handoff(socket, { remoteAddress: h.remoteAddress, remotePort: h.remotePort, via: peer });
        },
        (err: Error) => {
          this.pending.delete(socket);
          opts.log.info({ listener: name, proxy: peer, err: err.message }, 'bad PROXY header; connection closed without reply');
          socket.destroy();
        },
      );
    });
    // A hard ceiling on open sockets, above the admission limits (which answer 421): sockets still in a PROXY header
    // are not admitted yet (their client address is in the header), and a flood of them must not exhaust descriptors.
    this.server.maxConnections = opts.maxSockets;
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Stops accepting; resolves once every socket it accepted has closed. */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.pending) s.destroy();
    return closed;
  }
}
