import { isIPv4, isIPv6, type Socket } from 'node:net';

/**
 * PROXY protocol (HAProxy's spec, versions 1 and 2) as load balancers send it before the first SMTP byte. AWS NLB
 * sends v2 (binary); HAProxy and others may send v1 (text). smtp-server only reads v1, so the gateway reads both
 * here and hands smtp-server a socket positioned after the header, together with the client's address.
 */

/** `proxied`: the client's address as the load balancer saw it. `local`: the balancer speaking for itself
 * (health checks: v2 LOCAL, v1 UNKNOWN, or an address family that carries no IP) — the peer is the client. */
export type ProxyHeader = { kind: 'proxied'; remoteAddress: string; remotePort: number } | { kind: 'local' };

export class ProxyHeaderError extends Error {
  override name = 'ProxyHeaderError';
}

const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const V1_MAX = 107; // including CRLF, per the spec
const V2_FIXED = 16;

type Parse = { done: false } | { done: true; header: ProxyHeader; length: number };

/** Parses a header at the start of `buf`; `{done:false}` = need more bytes; throws ProxyHeaderError when malformed. */
export function parseProxyHeader(buf: Buffer): Parse {
  const n = Math.min(buf.length, V2_SIGNATURE.length);
  if (buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n))) return n < V2_SIGNATURE.length ? { done: false } : parseV2(buf);
  const p = Math.min(buf.length, 6);
  if (buf.subarray(0, p).toString('latin1') === 'PROXY '.slice(0, p)) return parseV1(buf);
  throw new ProxyHeaderError('not a PROXY protocol header');
}

function parseV1(buf: Buffer): Parse {
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end < 0) {
    if (buf.length >= V1_MAX) throw new ProxyHeaderError('v1 header longer than 107 bytes');
    return { done: false };
  }
  if (end + 2 > V1_MAX) throw new ProxyHeaderError('v1 header longer than 107 bytes');
  const parts = buf.subarray(0, end).toString('latin1').split(' ');
  const length = end + 2;
  if (parts[1] === 'UNKNOWN') return { done: true, header: { kind: 'local' }, length };
  if (parts.length !== 6) throw new ProxyHeaderError('v1 header does not have 6 fields');
  const [, proto, src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const isFamily = proto === 'TCP4' ? isIPv4 : proto === 'TCP6' ? isIPv6 : undefined;
  if (!isFamily) throw new ProxyHeaderError(`v1 protocol "${proto}" is not TCP4, TCP6 or UNKNOWN`);
  if (!isFamily(src) || !isFamily(dst)) throw new ProxyHeaderError(`v1 addresses are not ${proto}`);
  if (!isPort(sport) || !isPort(dport)) throw new ProxyHeaderError('v1 ports are not 0-65535');
  return { done: true, header: { kind: 'proxied', remoteAddress: proto === 'TCP6' ? formatIPv6(ipv6Groups(src)) : src, remotePort: Number(sport) }, length };
}

function isPort(s: string): boolean {
  return /^(0|[1-9]\d{0,4})$/.test(s) && Number(s) <= 65535;
}

function parseV2(buf: Buffer): Parse {
  if (buf.length < V2_FIXED) return { done: false };
  const verCmd = buf[12]!;
  const fam = buf[13]!;
  const len = buf.readUInt16BE(14);
  if (verCmd >> 4 !== 2) throw new ProxyHeaderError('v2 header with a version other than 2');
  const cmd = verCmd & 0x0f;
  if (cmd > 1) throw new ProxyHeaderError('v2 command is neither LOCAL nor PROXY');
  if (buf.length < V2_FIXED + len) return { done: false };
  const length = V2_FIXED + len;
  // LOCAL: the balancer's own connection (health check); UNSPEC/UDP/UNIX carry no TCP client to speak of.
  if (cmd === 0) return { done: true, header: { kind: 'local' }, length };
  const body = buf.subarray(V2_FIXED, length);
  switch (fam) {
    case 0x11: {
      // TCP over IPv4: src(4) dst(4) sport(2) dport(2), then TLVs (skipped).
      if (len < 12) throw new ProxyHeaderError('v2 TCP4 address block too short');
      return { done: true, header: { kind: 'proxied', remoteAddress: [...body.subarray(0, 4)].join('.'), remotePort: body.readUInt16BE(8) }, length };
    }
    case 0x21: {
      if (len < 36) throw new ProxyHeaderError('v2 TCP6 address block too short');
      const groups: number[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(body.readUInt16BE(i));
      return { done: true, header: { kind: 'proxied', remoteAddress: formatIPv6(groups), remotePort: body.readUInt16BE(32) }, length };
    }
    case 0x00:
      return { done: true, header: { kind: 'local' }, length };
    default:
      throw new ProxyHeaderError(`v2 address family 0x${fam.toString(16)} is not TCP over IPv4/IPv6`);
  }
}

/** The 8 groups of a valid IPv6 address (`::` and a dotted IPv4 tail expanded). */
function ipv6Groups(addr: string): number[] {
  let a = addr;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (dotted) {
    const [b0, b1, b2, b3] = dotted.slice(1).map(Number) as [number, number, number, number];
    a = `${a.slice(0, dotted.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head = '', tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const parts = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return parts.map((g) => parseInt(g, 16));
}

/**
 * RFC 5952 text; an IPv4-mapped address (::ffff:a.b.c.d, as dual-stack balancers send IPv4 clients) becomes the
 * plain IPv4 address, which is what filters, logs and the Received header must see.
 */
function formatIPv6(g: number[]): string {
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return [g[6]! >> 8, g[6]! & 0xff, g[7]! >> 8, g[7]! & 0xff].join('.');
  return compressIPv6(g.map((x) => x.toString(16)));
}

/** RFC 5952 form (longest run of zero groups as ::), so lists, logs and Received show what other tools show. */
function compressIPv6(groups: string[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/**
 * Reads the header off the socket; bytes after it are pushed back for the SMTP session. Rejects (and the caller
 * closes without a reply: a balancer that speaks garbage is not an SMTP client) on a malformed header, on close,
 * or when nothing complete arrived within `timeoutMs`.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | undefined, header?: ProxyHeader) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('error', onGone);
      socket.off('close', onGone);
      socket.off('end', onGone);
      if (err) reject(err);
      else resolve(header!);
    };
    const onGone = () => finish(new ProxyHeaderError('connection closed before a complete PROXY header'));
    const onReadable = () => {
      let chunk: Buffer | null;
      while (!settled && (chunk = socket.read() as Buffer | null) !== null) {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        let r: Parse;
        try {
          r = parseProxyHeader(buf);
        } catch (err) {
          return finish(err as Error);
        }
        if (r.done) {
          if (buf.length > r.length) socket.unshift(buf.subarray(r.length));
          return finish(undefined, r.header);
        }
      }
    };
    const timer = setTimeout(() => finish(new ProxyHeaderError(`no complete PROXY header within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    socket.on('readable', onReadable);
    socket.on('error', onGone);
    socket.on('close', onGone);
    socket.on('end', onGone);
  });
}
