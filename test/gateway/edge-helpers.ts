/** Small socket-level tools for the edge tests: a line client that may send bytes before the greeting, PROXY headers. */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/** A line client over a socket the test controls (plain, or TLS after STARTTLS / on an implicit-TLS port). */
export class LineClient {
  private buf = '';
  private waiters: Array<() => void> = [];
  closed = false;

  constructor(public socket: Socket | TLSSocket) {
    this.attach(socket);
  }

  private attach(s: Socket | TLSSocket): void {
    s.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.wake();
    });
    s.on('close', () => {
      this.closed = true;
      this.wake();
    });
    s.on('error', () => undefined);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Connects from `localAddress` (any 127.0.0.0/8 address works on Linux loopback) and writes `preface` at once. */
  static async open(port: number, opts: { localAddress?: string; preface?: Buffer | string; tls?: boolean } = {}): Promise<LineClient> {
    const tcp = connect({ port, host: '127.0.0.1', localAddress: opts.localAddress ?? '127.0.0.1' });
    const socket: Socket = opts.tls ? tlsConnect({ socket: tcp, rejectUnauthorized: false }) : tcp;
    await new Promise<void>((resolve, reject) => socket.once(opts.tls ? 'secureConnect' : 'connect', resolve).once('error', reject));
    if (opts.preface !== undefined) socket.write(opts.preface);
    return new LineClient(socket);
  }

  /** The next complete reply, multi-line replies joined with \n. */
  async reply(timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(this.buf);
      if (m) {
        this.buf = this.buf.slice(m[0].length);
        return m[0].trimEnd().replace(/\r\n/g, '\n');
      }
      if (this.closed) throw new Error(`connection closed; unparsed: ${JSON.stringify(this.buf)}`);
      if (Date.now() > deadline) throw new Error(`no reply within ${timeoutMs} ms; buffer: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  /** Resolves with whatever arrived once the server closed the connection. */
  async untilClosed(timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`still open after ${timeoutMs} ms; buffer: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
    return this.buf;
  }

  write(s: string | Buffer): void {
    this.socket.write(s);
  }

  async command(line: string): Promise<string> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  /** STARTTLS, then the handshake on the same socket (self-signed test certificates are accepted). */
  async startTls(): Promise<string> {
    const r = await this.command('STARTTLS');
    if (!r.startsWith('220')) return r;
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = tlsConnect({ socket: plain, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    this.socket = secure;
    this.attach(secure);
    return r;
  }

  /** DATA, the payload, the terminator; returns every reply up to `replies` (LMTP sends one per recipient). */
  async data(payload: string, replies = 1): Promise<string[]> {
    const r = await this.command('DATA');
    if (!r.startsWith('354')) return [r];
    this.write(`${payload}\r\n.\r\n`);
    const out: string[] = [];
    for (let i = 0; i < replies; i++) out.push(await this.reply(60_000));
    return out;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** PROXY v1 text header, as HAProxy sends it. */
export function proxyV1(src: string, srcPort = 40000): Buffer {
  const six = src.includes(':');
  return Buffer.from(`PROXY ${six ? 'TCP6' : 'TCP4'} ${src} ${six ? '::1' : '127.0.0.1'} ${srcPort} 25\r\n`, 'latin1');
}

const V2_SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

function ipBytes(ip: string): Buffer {
  if (!ip.includes(':')) return Buffer.from(ip.split('.').map(Number));
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

/**
 * PROXY v2 binary header as AWS NLB sends it: PROXY command, TCP over IPv4/IPv6, optional TLVs after the addresses
 * (NLB adds e.g. type 0xEA with the VPC endpoint id). `local` builds the LOCAL command (health checks).
 */
export function proxyV2(opts: { src?: string; srcPort?: number; local?: boolean; tlvs?: Array<[number, Buffer]>; version?: number }): Buffer {
  const tlv = Buffer.concat((opts.tlvs ?? []).map(([type, value]) => Buffer.concat([Buffer.from([type, value.length >> 8, value.length & 0xff]), value])));
  const verCmd = ((opts.version ?? 2) << 4) | (opts.local ? 0 : 1);
  if (opts.local) return Buffer.concat([V2_SIG, Buffer.from([verCmd, 0x00, 0, tlv.length]), tlv]);
  const src = opts.src!;
  const six = src.includes(':');
  const addr = Buffer.concat([ipBytes(src), ipBytes(six ? '::1' : '127.0.0.1'), Buffer.from([(opts.srcPort ?? 40000) >> 8, (opts.srcPort ?? 40000) & 0xff, 0, 25])]);
  const body = Buffer.concat([addr, tlv]);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(body.length);
  return Buffer.concat([V2_SIG, Buffer.from([verCmd, six ? 0x21 : 0x11]), len, body]);
}
