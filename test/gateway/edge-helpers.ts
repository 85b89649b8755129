/** Small socket-level tools for the edge tests: a line client that may send bytes before the greeting, PROXY headers. */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { SmtpLine } from './helpers.js';

/** A line client over a socket the test controls (plain, or TLS on an implicit-TLS port); it reads no greeting. */
export class LineClient extends SmtpLine {
  /** Connects from `localAddress` (any 127.0.0.0/8 address works on Linux loopback) and writes `preface` at once. */
  static async open(port: number, opts: { localAddress?: string; preface?: Buffer | string; tls?: boolean } = {}): Promise<LineClient> {
    const tcp = connect({ port, host: '127.0.0.1', localAddress: opts.localAddress ?? '127.0.0.1' });
    const socket: Socket = opts.tls ? tlsConnect({ socket: tcp, rejectUnauthorized: false }) : tcp;
    await new Promise<void>((resolve, reject) => socket.once(opts.tls ? 'secureConnect' : 'connect', resolve).once('error', reject));
    if (opts.preface !== undefined) socket.write(opts.preface);
    return new LineClient(socket);
  }

  /** DATA with every reply up to `replies` (LMTP sends one per recipient). */
  async data(payload: string, replies = 1): Promise<string[]> {
    return this.sendData(payload, replies);
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
