/**
 * A minimal local AWS sink for benchmarks: answers just enough of S3 (PutObject, CreateMultipartUpload, UploadPart,
 * CompleteMultipartUpload, AbortMultipartUpload; HeadObject always 404), KMS (GenerateDataKey, and Decrypt of its own data keys) and SNS (Publish, PublishBatch) for the SDK to be
 * satisfied, and discards every body. It stores nothing and checks no signatures: it exists to show what the
 * gateway itself costs when the storage behind it costs (almost) nothing.
 *
 * Run as its own process (so its CPU is not the measured process's): `tsx test/bench/s3-sink.ts [port] [--slowdown]`;
 * it prints `listening <port>` and serves `GET /__stats` (JSON counters) and `POST /__reset`.
 *
 * With `slowDown` (`--slowdown`) every S3 write is answered `503 SlowDown`, as S3 answers a prefix written faster than
 * it can take: what an overloaded bucket looks like to a client (counted in `slowDowns`).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SinkStats {
  puts: number;
  multipartCompleted: number;
  parts: number;
  bytes: number;
  dataKeys: number;
  /** KMS Decrypt calls (a sealed spool's data keys, opened by its workers). */
  decrypts: number;
  /** Messages published: one per Publish, one per PublishBatch entry. */
  publishes: number;
  publishBatches: number;
  /** S3 writes answered 503 SlowDown (the slowDown option). */
  slowDowns: number;
  /** HeadObject requests, each answered 404. */
  heads: number;
  other: number;
}

export interface SinkOptions {
  /** Answer every S3 write (PutObject, CreateMultipartUpload, UploadPart) with 503 SlowDown. */
  slowDown?: boolean;
}

const stats: SinkStats = { puts: 0, multipartCompleted: 0, parts: 0, bytes: 0, dataKeys: 0, decrypts: 0, publishes: 0, publishBatches: 0, slowDowns: 0, heads: 0, other: 0 };

/** Reads and drops a body; resolves with its length (and its text when asked, for the small KMS/SNS requests). */
function drain(req: IncomingMessage, keepText = false): Promise<{ length: number; text: string }> {
  return new Promise((resolve, reject) => {
    let length = 0;
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      length += c.length;
      if (keepText) parts.push(c);
    });
    req.on('end', () => resolve({ length, text: keepText ? Buffer.concat(parts).toString('utf8') : '' }));
    req.on('error', reject);
  });
}

const etag = () => `"${createHash('md5').update(randomBytes(8)).digest('hex')}"`;

function xml(res: ServerResponse, body: string): void {
  res.writeHead(200, { 'content-type': 'application/xml', 'x-amz-request-id': 'sink' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`);
}

const escapeXml = (s: string) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** S3's own answer to a request rate it cannot take: 503 with the SlowDown code. */
async function slowDown(req: IncomingMessage, res: ServerResponse): Promise<void> {
  await drain(req);
  stats.slowDowns++;
  res.writeHead(503, { 'content-type': 'application/xml', 'x-amz-request-id': 'sink' });
  res.end('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>sink</RequestId></Error>');
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: SinkOptions): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://sink');
  const q = url.searchParams;
  if (url.pathname === '/__stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return void res.end(JSON.stringify(stats));
  }
  if (url.pathname === '/__reset') {
    for (const k of Object.keys(stats) as Array<keyof SinkStats>) stats[k] = 0;
    res.writeHead(204);
    return void res.end();
  }
  const target = req.headers['x-amz-target'];
  if (req.method === 'POST' && url.pathname === '/' && typeof target === 'string') {
    // KMS (JSON 1.1 protocol). A data key's "ciphertext" ends with the key itself, so Decrypt needs no state.
    const { text } = await drain(req, true);
    const input = (text ? JSON.parse(text) : {}) as { KeyId?: string; CiphertextBlob?: string };
    const keyId = input.KeyId?.startsWith('arn:') ? input.KeyId : 'arn:aws:kms:us-east-1:123456789012:key/sink';
    if (target.endsWith('.GenerateDataKey')) {
      stats.dataKeys++;
      const plaintext = randomBytes(32);
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      return void res.end(JSON.stringify({ KeyId: keyId, Plaintext: plaintext.toString('base64'), CiphertextBlob: Buffer.concat([randomBytes(152), plaintext]).toString('base64') }));
    }
    if (target.endsWith('.Decrypt') && input.CiphertextBlob) {
      stats.decrypts++;
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      return void res.end(JSON.stringify({ KeyId: keyId, Plaintext: Buffer.from(input.CiphertextBlob, 'base64').subarray(-32).toString('base64'), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' }));
    }
    stats.other++;
    res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' });
    return void res.end(JSON.stringify({ __type: 'UnsupportedOperation', message: `sink does not answer ${target}` }));
  }
  if (req.method === 'POST' && url.pathname === '/') {
    // SNS (query protocol).
    const { text } = await drain(req, true);
    const form = new URLSearchParams(text);
    const action = form.get('Action');
    if (action === 'PublishBatch') {
      // Entries are numbered from 1 with no gaps (query protocol lists); every one is reported Successful.
      const ids: string[] = [];
      for (let n = 1; form.has(`PublishBatchRequestEntries.member.${n}.Id`); n++) ids.push(form.get(`PublishBatchRequestEntries.member.${n}.Id`)!);
      stats.publishBatches++;
      stats.publishes += ids.length;
      const members = ids.map((id) => `<member><Id>${escapeXml(id)}</Id><MessageId>${randomUUID()}</MessageId></member>`).join('');
      return xml(res, `<PublishBatchResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishBatchResult><Successful>${members}</Successful><Failed/></PublishBatchResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></PublishBatchResponse>`);
    }
    if (action === 'Publish') {
      stats.publishes++;
      return xml(res, `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>${randomUUID()}</MessageId></PublishResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></PublishResponse>`);
    }
    stats.other++;
    res.writeHead(400, { 'content-type': 'text/xml' });
    return void res.end(`<ErrorResponse><Error><Code>InvalidAction</Code><Message>sink does not answer ${action}</Message></Error></ErrorResponse>`);
  }
  // S3, path style: /<bucket>/<key>
  const [, bucket = '', ...keyParts] = url.pathname.split('/');
  const key = decodeURIComponent(keyParts.join('/'));
  if (opts.slowDown && ((req.method === 'PUT' && key) || (req.method === 'POST' && q.has('uploads')))) return slowDown(req, res);
  if (req.method === 'PUT' && q.has('uploadId') && q.has('partNumber')) {
    const { length } = await drain(req);
    stats.parts++;
    stats.bytes += length;
    res.writeHead(200, { etag: etag() });
    return void res.end();
  }
  if (req.method === 'PUT' && key) {
    const { length } = await drain(req);
    stats.puts++;
    stats.bytes += length;
    res.writeHead(200, { etag: etag() });
    return void res.end();
  }
  if (req.method === 'POST' && q.has('uploads')) {
    await drain(req);
    return xml(res, `<InitiateMultipartUploadResult><Bucket>${bucket}</Bucket><Key>${key}</Key><UploadId>${randomUUID()}</UploadId></InitiateMultipartUploadResult>`);
  }
  if (req.method === 'POST' && q.has('uploadId')) {
    await drain(req);
    stats.multipartCompleted++;
    return xml(res, `<CompleteMultipartUploadResult><Location>http://sink/${bucket}/${key}</Location><Bucket>${bucket}</Bucket><Key>${key}</Key><ETag>${etag().replace(/"/g, '&quot;')}</ETag></CompleteMultipartUploadResult>`);
  }
  if (req.method === 'HEAD' && key) {
    // It stores nothing: no object is ever there (replay asks before it stores).
    await drain(req);
    stats.heads++;
    // With a length, as S3 answers: without one Node's server closes the connection after a HEAD.
    res.writeHead(404, { 'x-amz-request-id': 'sink', 'content-length': '0' });
    return void res.end();
  }
  if (req.method === 'DELETE' && q.has('uploadId')) {
    await drain(req);
    res.writeHead(204);
    return void res.end();
  }
  await drain(req);
  stats.other++;
  res.writeHead(200);
  res.end();
}

export function startSink(port = 0, opts: SinkOptions = {}): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    handle(req, res, opts).catch((err: Error) => {
      res.writeHead(500);
      res.end(err.message);
    });
  });
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => {
      resolve({ port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const { port } = await startSink(Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 0), { slowDown: process.argv.includes('--slowdown') });
  process.stdout.write(`listening ${port}\n`);
}
