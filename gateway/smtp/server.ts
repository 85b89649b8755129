import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { ConfigError } from '../../shared/config/index.js';
import { headerFieldProblem } from '../../shared/ses/header-block.js';
import { newMessageId } from '../../shared/ses/message-id.js';
import type { Logger } from '../log.js';
import type { SmtpMetrics } from '../observability/metrics.js';
import { EnqueueTimeoutError, type Enqueuer } from '../queue/enqueue.js';
import type { GatewayRuntime } from '../settings.js';
import type { SpoolRecord } from '../spool/format.js';
import type { Spool } from '../spool/spool.js';
import { replies, SmtpReply } from './replies.js';
import { RecipientRouter } from './routing.js';

export interface SmtpFrontDeps {
  runtime: GatewayRuntime;
  spool: Spool;
  enqueuer: Enqueuer;
  /** Ids between spool rename and enqueue, shared with recovery so it never enqueues a message twice at once. */
  inFlight: Set<string>;
  log: Logger;
  /** Counts accepted and refused mail (observability/metrics.ts); absent where nobody scrapes. */
  metrics?: SmtpMetrics;
}

function readTlsFile(path: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError(path, [{ path: `gateway.smtp.tls.${field}`, message: `cannot read "${path}" (${code})`, fix: 'give the path of a PEM file the gateway can read' }]);
  }
}

/** smtp-server writes `[ip]` when the PTR lookup found nothing; the Received header then says `unknown`. */
function resolvedHostname(session: SMTPServerSession): string | undefined {
  const h = session.clientHostname;
  return h && !h.startsWith('[') ? h : undefined;
}

/**
 * The SMTP front: smtp-server with SES's recipient rules, and the accept path — DATA streamed to the spool (never
 * buffered), fsync'd, jobs enqueued, and only then `250 Ok <messageId>`. Any failure on the way is a 451: the
 * client keeps the message and retries, so nothing is lost and nothing half-accepted is delivered.
 */
export class SmtpFront {
  readonly server: SMTPServer;
  private readonly router: RecipientRouter;
  private draining = false;
  /** Sessions whose DATA is being accepted; shutdown lets them finish. */
  private readonly busy = new Set<string>();
  private readonly accepting = new Set<Promise<unknown>>();

  constructor(private readonly deps: SmtpFrontDeps) {
    const { settings, config } = deps.runtime;
    this.router = new RecipientRouter(config);
    const tls = settings.smtp.tls;
    const options: SMTPServerOptions = {
      name: settings.hostname,
      size: config.maxMessageSize,
      // No AUTH: this is an MX, like SES's inbound endpoint (issue 5 adds optional AUTH).
      disabledCommands: ['AUTH', ...(tls ? [] : ['STARTTLS'])],
      hideSTARTTLS: !tls,
      ...(tls ? { key: readTlsFile(tls.keyFile, 'keyFile'), cert: readTlsFile(tls.certFile, 'certFile') } : {}),
      maxClients: settings.smtp.maxConnections,
      maxRecipients: settings.smtp.maxRecipients,
      socketTimeout: settings.smtp.socketTimeoutMs,
      closeTimeout: settings.smtp.closeTimeoutMs,
      disableReverseLookup: !settings.smtp.reverseDns,
      logger: false,
      onConnect: (session, cb) => (this.draining ? cb(this.counted(replies.shuttingDown(settings.hostname))) : cb()),
      onMailFrom: (address, _session, cb) => this.onMailFrom(address, cb),
      onRcptTo: (address, session, cb) => this.onRcptTo(address, session, cb),
      onData: (stream, session, cb) => this.onData(stream, session, cb),
    };
    this.server = new SMTPServer(options);
    this.server.on('error', (err: Error & { code?: string }) => {
      // Client-side socket trouble is routine on an MX; keep it at debug.
      deps.log.debug({ err: err.message, code: err.code }, 'smtp connection error');
    });
  }

  async listen(): Promise<AddressInfo> {
    const { host, port } = this.deps.runtime.settings.smtp;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.server.off('error', onError);
        resolve();
      });
    });
    const addr = this.server.server.address() as AddressInfo;
    this.deps.log.info({ host: addr.address, port: addr.port, tls: !!this.deps.runtime.settings.smtp.tls }, 'smtp listening');
    return addr;
  }

  /** Every refusal the gateway writes passes here on its way to the client, for the rejected-by-reason metric. */
  private counted(reply: SmtpReply): SmtpReply {
    this.deps.metrics?.rejected(reply);
    return reply;
  }

  private onMailFrom(address: SMTPServerAddress, cb: (err?: Error | null) => void): void {
    // smtp-server already refuses control characters; this keeps the Received/Return-Path contract in one place.
    const problem = address.address ? headerFieldProblem(address.address) : undefined;
    cb(problem ? this.counted(replies.badAddress('sender address', problem)) : undefined);
  }

  private onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const problem = headerFieldProblem(address.address);
    if (problem) return cb(this.counted(replies.badAddress('recipient address', problem)));
    const r = this.router.route(address.address, session.secure);
    if (!r.ok) {
      this.deps.log.info({ session: session.id, rcpt: address.address, code: r.reply.responseCode }, 'recipient refused');
      return cb(this.counted(r.reply));
    }
    cb();
  }

  private onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void): void {
    this.busy.add(session.id);
    const done = this.accept(stream, session).then(
      (messageId) => cb(null, replies.accepted(messageId)),
      (err: Error) => {
        // smtp-server sends the reply once DATA has ended; make sure the rest of it is read and dropped.
        if (!stream.readableEnded && !stream.destroyed) stream.resume();
        cb(this.counted(err instanceof SmtpReply ? err : replies.localError()));
      },
    );
    this.accepting.add(done);
    void done.finally(() => {
      this.accepting.delete(done);
      this.busy.delete(session.id);
    });
  }

  private async accept(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const { runtime, spool, enqueuer, inFlight, log } = this.deps;
    const messageId = newMessageId();
    const recipients = session.envelope.rcptTo.map((r) => r.address);
    const rules = this.router.rulesFor(recipients, session.secure);
    const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    const clientHostname = resolvedHostname(session);
    const record: SpoolRecord = {
      v: 1,
      envelope: {
        messageId,
        receivedAt: new Date().toISOString(),
        mailFrom,
        helo: session.hostNameAppearsAs,
        clientIp: session.remoteAddress,
        ...(clientHostname ? { clientHostname } : {}),
        tls: session.secure,
        byHost: runtime.settings.hostname,
        accountId: runtime.config.accountId,
        region: runtime.config.region,
      },
      rules,
    };
    const meta = { messageId, session: session.id, client: session.remoteAddress };
    if (rules.length === 0) {
      // Cannot happen through smtp-server (DATA needs an accepted RCPT), but never spool mail nobody delivers.
      throw replies.localError();
    }
    inFlight.add(messageId);
    try {
      let received;
      try {
        received = await spool.receive(record, stream);
      } catch (err) {
        log.error({ ...meta, err: (err as Error).message }, 'spool write failed; replying 451');
        throw replies.localError();
      }
      if (!received.ok) {
        log.info({ ...meta, bytes: received.dataLength, limit: runtime.config.maxMessageSize }, 'message too big; replying 552');
        throw replies.tooBig(runtime.config.maxMessageSize);
      }
      try {
        await enqueuer.enqueue(record, spool.fileName(messageId));
      } catch (err) {
        this.abandon(messageId, err as Error, meta);
        throw replies.localError();
      }
      log.info({ ...meta, bytes: received.dataLength, rcpts: recipients.length, rules: rules.map((r) => r.name), tls: session.secure }, 'accepted');
      this.deps.metrics?.accepted(received.dataLength);
      return messageId;
    } finally {
      inFlight.delete(messageId);
    }
  }

  /**
   * The client hears 451 and will send the message again, so its spool file must not be delivered too — unless the
   * add that timed out still lands: then the jobs exist and the file must stay (the client's retry becomes a second
   * message, the at-least-once side of never losing one).
   */
  private abandon(messageId: string, err: Error, meta: Record<string, unknown>): void {
    const { spool, log } = this.deps;
    const drop = () => spool.remove(messageId).catch((e: Error) => log.error({ ...meta, err: e.message }, 'could not remove abandoned spool file'));
    if (err instanceof EnqueueTimeoutError) {
      log.error({ ...meta, err: err.message }, 'enqueue timed out; replying 451');
      err.pending.then(
        () => log.warn(meta, 'jobs were added after the client was told 451; the message will be delivered (and may arrive again from the client)'),
        () => void drop(),
      );
    } else {
      log.error({ ...meta, err: err.message }, 'enqueue failed; replying 451');
      void drop();
    }
  }

  /**
   * Graceful stop: no new connections, idle sessions get 421 now, sessions in DATA finish their message (and get
   * their 250 or 451) and then 421 on their next command; after closeTimeoutMs everyone left gets 421.
   */
  async stop(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const conn of this.server.connections) {
      if (!this.busy.has(conn.session.id)) conn.send(421, replies.shuttingDown(this.deps.runtime.settings.hostname).message);
    }
    await closed;
    await Promise.allSettled([...this.accepting]);
  }
}
