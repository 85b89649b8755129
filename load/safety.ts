/**
 * A load run sends to loopback unless told otherwise: a mistyped --target or a forgotten AWS_ENDPOINT_URL must not
 * put thousands of messages on someone's production MX or bucket. `--allow-remote` lifts it.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { serviceEndpoint, type AwsService } from '../gateway/aws/endpoints.js';

export function isLoopbackAddress(address: string): boolean {
  const a = address.replace(/^::ffff:/i, '');
  if (isIP(a) === 4) return a.startsWith('127.');
  // The URL parser writes an IPv6 address in its shortest form: 0:0:0:0:0:0:0:1 becomes ::1.
  return isIP(a) === 6 && new URL(`http://[${a}]/`).hostname === '[::1]';
}

/** Every address `host` resolves to; loopback only when all are. */
export async function resolvesToLoopback(host: string): Promise<{ loopback: boolean; addresses: string[] }> {
  const h = host.replace(/^\[|\]$/g, '');
  let addresses: string[];
  try {
    addresses = isIP(h) ? [h] : (await lookup(h, { all: true })).map((a) => a.address);
  } catch {
    addresses = [];
  }
  return { loopback: addresses.length > 0 && addresses.every(isLoopbackAddress), addresses };
}

/** Why the run would leave this machine, or undefined when every target is loopback. */
export async function remoteSmtpTarget(host: string, port: number): Promise<string | undefined> {
  const r = await resolvesToLoopback(host);
  if (r.loopback) return undefined;
  const where = r.addresses.length ? `${host} (${r.addresses.join(', ')})` : `${host} (does not resolve here)`;
  return `--target ${host}:${port} is not on this machine: ${where}`;
}

/** The AWS endpoints an upload run writes to (S3, and KMS and SNS when the rule uses them): each must be loopback. */
export async function remoteAwsTargets(services: AwsService[], env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const remote: string[] = [];
  for (const s of services) {
    const e = serviceEndpoint(s, env).endpoint;
    if (!e) {
      remote.push(`${s.toUpperCase()}: AWS itself (no AWS_ENDPOINT_URL set)`);
      continue;
    }
    let host: string;
    try {
      host = new URL(e).hostname;
    } catch {
      remote.push(`${s.toUpperCase()}: ${e} (not a URL)`);
      continue;
    }
    if (!(await resolvesToLoopback(host)).loopback) remote.push(`${s.toUpperCase()}: ${e}`);
  }
  return remote.length ? `the upload would go to ${remote.join('; ')}` : undefined;
}
