/** Sealed spools for the spool-encryption tests: key files, a seal, and a spool's writer and reader with it. */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Readable } from 'node:stream';
import type { GatewaySpoolEncryption } from '../../shared/config/gateway.js';
import { newMessageId } from '../../shared/ses/message-id.js';
import { SpoolDirectory, type SpoolDirectoryOptions } from '../../gateway/spool/directory.js';
import type { SpoolFile, SpoolRecord } from '../../gateway/spool/format.js';
import { SpoolReader } from '../../gateway/spool/reader.js';
import { spoolSealFor } from '../../gateway/spool/seal-keys.js';
import type { SpoolSeal } from '../../gateway/spool/seal.js';
import { SpoolWriter } from '../../gateway/spool/writer.js';

/** A fresh 256-bit key in a file only its owner can read (base64, as `openssl rand -base64 32` writes it). */
export async function keyFile(dir: string, name = 'spool.key'): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  return path;
}

export const DATA_KEY_DEFAULTS = { enabled: true, thread: 'auto' as const, dataKeyMaxAgeMs: 300_000, dataKeyMaxFiles: 100_000, dataKeyMaxBytes: 8 * 2 ** 30 };

export function encryption(key: { keyFile: string } | { kmsKeyArn: string }, more: Partial<GatewaySpoolEncryption> = {}): GatewaySpoolEncryption {
  return { ...DATA_KEY_DEFAULTS, ...key, ...more };
}

/** A seal for `nodeId`, counting the data keys it makes and opens. */
export function sealFor(enc: GatewaySpoolEncryption, nodeId = 'node-a'): { seal: SpoolSeal; dataKeys: { made: number; opened: number } } {
  const dataKeys = { made: 0, opened: 0 };
  const seal = spoolSealFor(enc, { source: 'test config', requestTimeoutMs: 10_000, nodeId, onDataKey: (op) => void dataKeys[op]++ })!;
  return { seal, dataKeys };
}

const open = new Set<SealedSpool>();

/** Closes every SealedSpool made so far (its `messages/` descriptor, its spares): for afterAll. */
export async function closeSpools(): Promise<void> {
  for (const s of [...open]) await s.close();
}

/** A spool directory with a writer and a reader that share `seal` (either may be absent: plaintext). */
export class SealedSpool {
  readonly directory: SpoolDirectory;
  readonly writer: SpoolWriter;
  readonly reader: SpoolReader;

  constructor(
    readonly dir: string,
    seal: { writer?: SpoolSeal | undefined; reader?: SpoolSeal | undefined },
    opts: SpoolDirectoryOptions = {},
  ) {
    this.directory = new SpoolDirectory(dir, opts);
    this.writer = new SpoolWriter(this.directory, {}, seal.writer);
    this.reader = new SpoolReader(this.directory, seal.reader);
    open.add(this);
  }

  async close(): Promise<void> {
    open.delete(this);
    await this.directory.close();
  }

  /** The disk side of an accept: resolves once the message is durable. */
  async receive(record: SpoolRecord, body: Buffer | Readable, limitBytes = 64 * 2 ** 20): Promise<SpoolFile> {
    const r = await this.writer.receive(record, Buffer.isBuffer(body) ? Readable.from([body]) : body, limitBytes);
    if (!r.ok) throw new Error(`not spooled: ${r.reason}`);
    await r.durable;
    return r.file;
  }

  /** Every message's record and DATA, read the way a delivery reads them. */
  async read(file: SpoolFile): Promise<Array<{ record: SpoolRecord; data: Buffer }>> {
    const open = await this.reader.open(file.id);
    try {
      const out = [];
      for (const e of file.entries) {
        const msg = await open.entry(e.at, e.record.envelope.messageId, e.length);
        const chunks: Buffer[] = [];
        for await (const c of this.reader.dataStream(msg)) chunks.push(c as Buffer);
        out.push({ record: msg.record, data: Buffer.concat(chunks) });
      }
      return out;
    } finally {
      await open.close();
    }
  }
}

export interface Addressed {
  record: SpoolRecord;
  /** What must never be on disk in plaintext: the body's token and every address. */
  secrets: string[];
}

/** A record with addresses unique to this message, and the strings that must not be found on disk. */
export function addressedRecord(tag = randomBytes(6).toString('hex')): Addressed {
  const mailFrom = `from-${tag}@sender.example`;
  const rcpt = `rcpt-${tag}@example.com`;
  const helo = `helo-${tag}.client.example`;
  const clientHostname = `ptr-${tag}.client.example`;
  return {
    record: {
      v: 1,
      envelope: { messageId: newMessageId(), receivedAt: new Date().toISOString(), mailFrom, helo, clientIp: '192.0.2.77', clientHostname, tls: false, byHost: 'mx.example', accountId: '123456789012', region: 'us-east-1' },
      rules: [{ name: 'all', recipients: [rcpt], scanEnabled: false, s3Action: { bucketName: 'b', objectKeyPrefix: 'in/' } as SpoolRecord['rules'][number]['s3Action'] }],
    },
    secrets: [mailFrom, rcpt, helo, clientHostname, `body-${tag}`],
  };
}

/** Every regular file under `dir`, recursively. */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/**
 * Where any of `needles` is found, byte for byte, in any file under `dir` — as UTF-8 and as UTF-16 (a serialiser
 * could write either), whole files read (test spools are small; a 40 MB file is read once).
 */
export async function plaintextFound(dir: string, needles: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const path of await filesUnder(dir)) {
    if ((await stat(path)).size === 0) continue;
    const bytes = await readFile(path);
    for (const n of needles) {
      for (const enc of ['utf8', 'utf16le'] as const) if (bytes.includes(Buffer.from(n, enc))) found.push(`${n} (${enc}) in ${path}`);
    }
  }
  return found;
}

/** Every value Redis at `url` holds under `prefix`, as one string (to search for what must not be there). */
export async function redisDump(url: string, prefix: string): Promise<string> {
  const r = new Redis(url);
  try {
    let out = '';
    for (const key of await r.keys(`${prefix}*`)) {
      const type = await r.type(key);
      if (type === 'hash') out += JSON.stringify(await r.hgetall(key));
      else if (type === 'string') out += await r.get(key);
      else if (type === 'list') out += JSON.stringify(await r.lrange(key, 0, -1));
      else if (type === 'zset') out += JSON.stringify(await r.zrange(key, '0', '-1'));
      else if (type === 'stream') out += JSON.stringify(await r.xrange(key, '-', '+'));
      else if (type === 'set') out += JSON.stringify(await r.smembers(key));
    }
    return out;
  } finally {
    r.disconnect();
  }
}
