import { createHash, createHmac } from 'node:crypto';

/**
 * A SigV4-signed AWS Query-protocol call (IAM, SES v1), for services whose SDK clients this package does not ship.
 * Used only against moto in the deploy test; a plain implementation of the documented signing steps.
 */
export async function awsQuery(opts: {
  endpoint: string;
  service: 'iam' | 'ses';
  region: string;
  action: string;
  version: string;
  params?: Record<string, string>;
  accessKeyId?: string;
  secretAccessKey?: string;
}): Promise<string> {
  const url = new URL(opts.endpoint);
  const body = new URLSearchParams({ Action: opts.action, Version: opts.version, ...opts.params }).toString();
  const now = new Date();
  const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  const hmac = (k: Buffer | string, s: string) => createHmac('sha256', k).update(s).digest();
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', host: url.host, 'x-amz-date': amzDate };
  const signed = Object.keys(headers).sort();
  const canonical = ['POST', url.pathname || '/', '', ...signed.map((h) => `${h}:${headers[h]}`), '', signed.join(';'), sha(body)].join('\n');
  const scope = `${day}/${opts.region}/${opts.service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha(canonical)].join('\n');
  let key: Buffer = hmac(`AWS4${opts.secretAccessKey ?? 'testing'}`, day);
  for (const part of [opts.region, opts.service, 'aws4_request']) key = hmac(key, part);
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  const res = await fetch(url, {
    method: 'POST',
    body,
    headers: { ...headers, authorization: `AWS4-HMAC-SHA256 Credential=${opts.accessKeyId ?? 'testing'}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${signature}` },
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${opts.service} ${opts.action}: HTTP ${res.status}: ${text.slice(0, 500)}`);
  return text;
}

/** Text of the first <tag>…</tag> (XML entities decoded), or undefined. */
export function xmlText(xml: string, tag: string): string | undefined {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(xml);
  return m ? decode(m[1]!) : undefined;
}

/** Texts of every <tag>…</tag>. */
export function xmlAll(xml: string, tag: string): string[] {
  return [...xml.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => decode(m[1]!));
}

function decode(s: string): string {
  return s.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#x27;/g, "'").replace(/&#34;/g, '"').replace(/&amp;/g, '&');
}
