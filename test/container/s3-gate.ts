/**
 * A TCP relay on loopback between the gateway in its container and moto, which the test can make slow or absent:
 * `hold()` keeps every request byte (on open connections too) until `release()`, so a delivery is provably in
 * flight; `refuse()` closes the port, as an S3 endpoint that cannot be reached.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface S3Gate {
  endpoint: string;
  /** Request lines (e.g. "PUT /bucket/key?…") of the requests held since hold(). */
  heldRequests(): string[];
  hold(): void;
  release(): void;
  refuse(): Promise<void>;
  open(): Promise<void>;
  stop(): Promise<void>;
}

export async function startS3Gate(targetPort: number): Promise<S3Gate> {
  let holding = false;
  const waiting: Array<() => void> = [];
  const held: string[] = [];
  const sockets = new Set<Socket>();
  let port = 0;

  const relay = (client: Socket) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    const forget = () => {
      sockets.delete(client);
      sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', forget).on('close', forget);
    upstream.on('error', forget).on('close', forget);
    upstream.on('data', (b: Buffer) => client.write(b));
    client.on('data', (b: Buffer) => {
      if (!holding) return void upstream.write(b);
      const line = /^[A-Z]+ \S+ HTTP\/1\.1/.exec(b.toString('latin1', 0, Math.min(b.length, 2048)))?.[0];
      if (line) held.push(line);
      waiting.push(() => upstream.write(b));
    });
  };

  let server: Server | undefined;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer(relay);
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        server = s;
        port = (s.address() as { port: number }).port;
        resolve();
      });
    });
  const close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      if (!server) return resolve();
      const s = server;
      server = undefined;
      s.close(() => resolve());
    });
  await listen();

  return {
    endpoint: `http://127.0.0.1:${port}`,
    heldRequests: () => [...held],
    hold: () => {
      holding = true;
      held.length = 0;
    },
    release: () => {
      holding = false;
      for (const write of waiting.splice(0)) write();
    },
    refuse: close,
    open: listen,
    stop: close,
  };
}
