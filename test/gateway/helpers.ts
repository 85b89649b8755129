/** Shared fixtures for the gateway tests: config/runtime builders, AWS fixtures in moto, SMTP clients, waiting. */
import { execFile } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import { CreateQueueCommand, DeleteMessageBatchCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { createTransport } from 'nodemailer';
import { pino } from 'pino';
import { parseConfig, type ReceivingConfigInput } from '../../shared/config/index.js';
import { openStoredMessage } from '../../shared/envelope/index.js';
import { startGateway, type GatewayParts, type RunningGateway } from '../../gateway/gateway.js';
import { createLogger, silentLogger, streamLogger, type Logger } from '../../gateway/runtime/log.js';
import { resolveRuntime, type GatewayRuntime } from '../../gateway/runtime/settings.js';
import { tempDir } from '../support/files.js';
import { startMoto, useMotoEnv, type Moto } from '../support/moto.js';
import { startRedis, type RedisServer } from '../support/redis.js';

export const REGION = 'us-east-1';
export const ACCOUNT = '123456789012';
export const RUBY_SCRIPT = join(import.meta.dirname, '..', 'interop', 's3ec.rb');

export function runtimeFor(config: ReceivingConfigInput): GatewayRuntime {
  const loaded = parseConfig(config, 'test config');
  return resolveRuntime(loaded, {}, 'test config');
}

/** LOG_LEVEL=debug shows the gateway's logs while debugging a test; silent otherwise. */
export function testLogger() {
  return process.env.LOG_LEVEL ? createLogger({ destination: 2 }) : silentLogger();
}

/**
 * A logger whose JSON lines collect as written (`raw`) and parsed (`lines`), for tests that assert what was logged.
 * `net: false` leaves out the logger's net for sensitive fields (a bare pino logger): what the code itself hands over.
 */
export function capturedLog(level = 'info', opts: { net?: boolean } = {}): { log: Logger; lines: Array<Record<string, unknown> & { msg: string }>; raw: string[] } {
  const lines: Array<Record<string, unknown> & { msg: string }> = [];
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) {
        raw.push(l);
        lines.push(JSON.parse(l) as Record<string, unknown> & { msg: string });
      }
      cb();
    },
  });
  return { log: opts.net === false ? pino({ level }, sink) : streamLogger(sink, level), lines, raw };
}

export async function startTestGateway(config: ReceivingConfigInput, parts: GatewayParts = { smtp: true, workers: true }): Promise<RunningGateway & { port: number; runtime: GatewayRuntime }> {
  const runtime = runtimeFor(config);
  const gw = await startGateway(runtime, parts, testLogger());
  return Object.assign(gw, { port: gw.smtpAddress?.port ?? 0, runtime });
}

export interface AwsFixture {
  s3: S3Client;
  kms: KMSClient;
  sns: SNSClient;
  sqs: SQSClient;
  destroy(): void;
}

/** What most gateway tests run against: moto, Redis, a temp dir and SDK clients for moto. */
export interface Backends {
  moto: Moto;
  redis: RedisServer;
  dir: Awaited<ReturnType<typeof tempDir>>;
  aws: AwsFixture;
  stop(): Promise<void>;
}

/** Starts the backends; `motoEnv` also points this process's SDK at moto until stop(). */
export async function startBackends(tmpPrefix: string, opts: { motoEnv?: boolean } = {}): Promise<Backends> {
  const [moto, redis, dir] = await Promise.all([startMoto(), startRedis(), tempDir(tmpPrefix)]);
  const restoreEnv = opts.motoEnv ? useMotoEnv(moto) : undefined;
  const aws = awsClients(moto);
  return {
    moto,
    redis,
    dir,
    aws,
    async stop() {
      aws.destroy();
      restoreEnv?.();
      await Promise.all([moto.stop(), redis.stop()]);
      await dir.remove();
    },
  };
}

export function awsClients(moto: Moto): AwsFixture {
  const cfg = { region: REGION, endpoint: moto.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } };
  const s3 = new S3Client({ ...cfg, forcePathStyle: true });
  const kms = new KMSClient(cfg);
  const sns = new SNSClient(cfg);
  const sqs = new SQSClient(cfg);
  return { s3, kms, sns, sqs, destroy: () => [s3, kms, sns, sqs].forEach((c) => c.destroy()) };
}

export async function createBuckets(aws: AwsFixture, ...names: string[]): Promise<void> {
  for (const Bucket of names) await aws.s3.send(new CreateBucketCommand({ Bucket }));
}

export async function createKey(aws: AwsFixture): Promise<string> {
  return (await aws.kms.send(new CreateKeyCommand({ Description: 'mailroom test key' }))).KeyMetadata!.Arn!;
}

/** A topic with an SQS queue subscribed (raw delivery off: the queue gets SNS's envelope, Subject included). */
export async function createTopicWithQueue(aws: AwsFixture, name: string): Promise<{ topicArn: string; queueUrl: string }> {
  const topicArn = (await aws.sns.send(new CreateTopicCommand({ Name: name }))).TopicArn!;
  const queueUrl = (await aws.sqs.send(new CreateQueueCommand({ QueueName: `${name}-q` }))).QueueUrl!;
  const attrs = await aws.sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }));
  await aws.sns.send(new SubscribeCommand({ TopicArn: topicArn, Protocol: 'sqs', Endpoint: attrs.Attributes!.QueueArn! }));
  return { topicArn, queueUrl };
}

export interface SnsEnvelope {
  Type: string;
  TopicArn: string;
  Subject?: string;
  Message: string;
  Timestamp: string;
}

/** Receives (and deletes) SNS envelopes from a queue until `count` arrived or the time is up. */
export async function receiveSns(aws: AwsFixture, queueUrl: string, count: number, timeoutMs = 30_000): Promise<SnsEnvelope[]> {
  const out: SnsEnvelope[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < count && Date.now() < deadline) {
    const r = await aws.sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    const msgs = r.Messages ?? [];
    for (const m of msgs) out.push(JSON.parse(m.Body!) as SnsEnvelope);
    if (msgs.length > 0) {
      await aws.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: msgs.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
    }
  }
  return out;
}

/** The stored message (decrypted when it carries the envelope) as bytes. Test-sized messages only. */
export async function storedBytes(aws: AwsFixture, bucket: string, key: string): Promise<{ body: Buffer; metadata: Record<string, string> }> {
  const msg = await openStoredMessage(aws.s3, () => aws.kms, bucket, key);
  const chunks: Buffer[] = [];
  for await (const c of msg.body) chunks.push(c as Buffer);
  return { body: Buffer.concat(chunks), metadata: msg.metadata };
}

export async function rawObject(aws: AwsFixture, bucket: string, key: string): Promise<Buffer> {
  const r = await aws.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

export async function listKeys(aws: AwsFixture, bucket: string, prefix?: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const r = await aws.s3.send(new ListObjectsV2Command({ Bucket: bucket, ...(prefix ? { Prefix: prefix } : {}), ...(token ? { ContinuationToken: token } : {}) }));
    for (const o of r.Contents ?? []) keys.push(o.Key!);
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

export async function waitFor<T>(what: string, f: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const MESSAGE_ID_RE = /^250 Ok ([0-9a-v]{38}[08go]1)$/;

export interface SendResult {
  response: string;
  messageId: string;
  accepted: string[];
  rejected: string[];
  rejectedErrors: Array<{ recipient?: string; response?: string }>;
}

/** Sends `raw` (exact bytes; CRLF line ends) with nodemailer, the way an MTA would. */
export async function sendRaw(port: number, envelope: { from: string; to: string[] }, raw: string | Buffer, opts: { requireTLS?: boolean; name?: string } = {}): Promise<SendResult> {
  const transport = createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    name: opts.name ?? 'client.example.net',
    ignoreTLS: !opts.requireTLS,
    requireTLS: !!opts.requireTLS,
    tls: { rejectUnauthorized: false },
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 60_000,
  });
  try {
    const info = (await transport.sendMail({ envelope, raw })) as unknown as SendResult & { response: string };
    const m = MESSAGE_ID_RE.exec(info.response);
    return { ...info, messageId: m?.[1] ?? '' };
  } finally {
    transport.close();
  }
}

/**
 * A line-level SMTP connection for the tests that must send what no well-behaved client would: bytes as given
 * (strings as latin1), replies parsed as they arrive, STARTTLS on the same socket.
 */
export class SmtpLine {
  private buf = '';
  private waiters: Array<() => void> = [];
  private closed = false;

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

  private nap(): Promise<void> {
    return new Promise<void>((r) => {
      this.waiters.push(r);
      setTimeout(r, 100);
    });
  }

  /** The next complete reply (multi-line replies joined with \n). */
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
      await this.nap();
    }
  }

  /** Resolves with whatever arrived once the server closed the connection. */
  async untilClosed(timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`still open after ${timeoutMs} ms; buffer: ${JSON.stringify(this.buf)}`);
      await this.nap();
    }
    return this.buf;
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  async command(line: string | Buffer): Promise<string> {
    this.write(typeof line === 'string' ? `${line}\r\n` : Buffer.concat([line, Buffer.from('\r\n')]));
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

  /** DATA, the payload (dot-stuffed by the caller when it matters), the terminator; then `replies` replies (LMTP: one per recipient). */
  protected async sendData(payload: Buffer | string, replies: number): Promise<string[]> {
    const r = await this.command('DATA');
    if (!r.startsWith('354')) return [r];
    this.write(payload);
    this.write('\r\n.\r\n');
    const out: string[] = [];
    for (let i = 0; i < replies; i++) out.push(await this.reply(60_000));
    return out;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** An SMTP session opened past its greeting, with single-reply DATA. */
export class RawSmtp extends SmtpLine {
  static async connect(port: number): Promise<RawSmtp> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const c = new RawSmtp(socket);
    await c.reply();
    return c;
  }

  async data(payload: Buffer | string): Promise<string> {
    return (await this.sendData(payload, 1))[0]!;
  }
}

/**
 * Sends one message per connection with every DATA's final dot written in the same event-loop turn, so the gateway
 * sees them end together (one spool round: the first alone, the rest in one batch file) however fast its disk is.
 * Returns each message's id from its `250 Ok <id>`.
 */
export async function sendTogether(port: number, envelope: { from: string; to: string[] }, raws: string[]): Promise<Array<{ messageId: string }>> {
  const conns = await Promise.all(raws.map(() => RawSmtp.connect(port)));
  try {
    for (const c of conns) {
      for (const line of ['EHLO client.example.net', `MAIL FROM:<${envelope.from}>`, ...envelope.to.map((t) => `RCPT TO:<${t}>`), 'DATA']) {
        const r = await c.command(line);
        if (!/^(250|354)/.test(r)) throw new Error(`${line}: ${r}`);
      }
    }
    conns.forEach((c, i) => c.write(raws[i]!));
    await new Promise((r) => setTimeout(r, 200));
    for (const c of conns) c.write('\r\n.\r\n');
    return await Promise.all(
      conns.map(async (c) => {
        const r = await c.reply(60_000);
        const m = MESSAGE_ID_RE.exec(r);
        if (!m) throw new Error(`DATA: ${r}`);
        return { messageId: m[1]! };
      }),
    );
  } finally {
    for (const c of conns) c.close();
  }
}

export const run = promisify(execFile);

/** A self-signed certificate for STARTTLS tests. */
export async function selfSignedCert(dir: string, opts: { cn?: string; altNames?: string } = {}): Promise<{ certFile: string; keyFile: string }> {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  const san = opts.altNames ? ['-addext', `subjectAltName=${opts.altNames}`] : [];
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', `/CN=${opts.cn ?? 'mx.gateway.test'}`, ...san], { timeout: 30_000 });
  return { certFile, keyFile };
}

/** A CRLF message with the given headers and body. */
export function rawMessage(headers: Array<[string, string]>, body: string): string {
  return `${headers.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body}`;
}
