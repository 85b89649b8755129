import type { AddressInfo } from 'node:net';
import type { SMTPServer, SMTPServerAddress, SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerDataStream, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { ConfigError } from '../../shared/config/index.js';
import { RECIPIENTS_MAX_BYTES, recipientsBytes } from '../../shared/notification/size.js';
import { headerFieldProblem } from '../../shared/ses/header-block.js';
import { recipientKey, uniqueRecipients, withAsciiDomain } from '../../shared/ses/address.js';
import type { Intake, IntakeMessage, Refusal } from '../intake/intake.js';
import type { Logger } from '../runtime/log.js';
import type { SmtpMetrics } from '../observability/metrics.js';
import type { GatewayRuntime } from '../runtime/settings.js';
import { SpoolFreeSpace } from '../spool/free-space.js';
import { EdgeListener } from '../net/listener.js';
import { Credentials } from './auth.js';
import { AuthFailures, CheckQueue, ChecksBusyError } from './auth-limits.js';
import { EdgePolicy } from './edge.js';
import { replies, SmtpReply } from './replies.js';
import { TlsCertificate } from './tls.js';
import { RecipientRouter } from './routing.js';
import { EdgeSmtpServer, type Admission } from './session.js';

export type ListenerName = 'smtp' | 'smtps' | 'lmtp';

export interface SmtpFrontDeps {
  runtime: GatewayRuntime;
  /** Owns the accept transaction: spool, jobs, and what a refusal leaves behind. */
  intake: Intake;
  spoolDir: string;
  log: Logger;
  /** Counts accepted and refused mail (observability/metrics.ts); absent where nobody scrapes. */
  metrics?: SmtpMetrics;
}

/** smtp-server writes `[ip]` when the PTR lookup found nothing; the Received header then says `unknown`. */
function resolvedHostname(session: SMTPServerSession): string | undefined {
  const h = session.clientHostname;
  return h && !h.startsWith('[') ? h : undefined;
}

/** The intake's refusal as the SMTP reply a sender acts on: 4xx keeps the message at the sender for a retry. */
function refusalReply(refusal: Refusal, host: string): SmtpReply {
  switch (refusal.kind) {
    case 'too-big':
      return replies.tooBig(refusal.limitBytes);
    case 'no-space':
      return replies.systemFull(host);
    case 'malformed':
      return replies.malformed(refusal.reason);
    case 'unavailable':
    case 'body-failed':
    case 'no-rule':
      return replies.localError();
  }
}

/**
 * The SMTP front: smtp-server with the edge's policy (receipt filters, limits, AUTH, TLS) and SES's recipient rules,
 * turning each transaction into an intake call and its outcome into a reply: `250 Ok <messageId>` only once the
 * intake accepted it (on disk, fsync'd, jobs in Redis); any failure on the way is a 4xx, so the client keeps the
 * message and retries — nothing is lost and nothing half-accepted is delivered.
 */
export class SmtpFront {
  /** The SMTP (+STARTTLS) listener's server; `servers` has every listener's. */
  readonly server: SMTPServer;
  readonly servers: Array<{ name: ListenerName; smtp: EdgeSmtpServer; port: number }> = [];
  readonly edge: EdgePolicy;
  /** Where each listener ended up (port 0 picks a free one). */
  readonly addresses: Partial<Record<ListenerName, AddressInfo>> = {};
  private readonly listeners: EdgeListener[] = [];
  private readonly credentials: Credentials | undefined;
  private readonly certificate: TlsCertificate | undefined;
  private readonly authFailures: AuthFailures;
  private readonly authChecks: CheckQueue;
  /** Failed AUTH attempts per session (connection), until it closes. */
  private readonly authFailuresOf = new Map<string, number>();
  private readonly router: RecipientRouter;
  private draining = false;
  /** Sessions whose DATA is being accepted; shutdown lets them finish. */
  private readonly busy = new Set<string>();
  private readonly accepting = new Set<Promise<unknown>>();
  private readonly freeSpace: SpoolFreeSpace;
  /** Inside smtp-server's handling of a DATA reply (onMailFrom defers what arrives then). */
  private replyingToData = 0;

  constructor(private readonly deps: SmtpFrontDeps) {
    const { settings, config } = deps.runtime;
    this.router = new RecipientRouter(config);
    this.freeSpace = new SpoolFreeSpace(deps.spoolDir, settings.spoolMinFreeBytes ?? Math.ceil(1.5 * config.maxMessageSize), {
      onReserve: (short) =>
        short
          ? deps.log.warn(
              { spoolDir: deps.spoolDir, freeBytes: short.free, needBytes: short.need },
              'spool file system short of space: MAIL FROM gets 452 4.3.1 until it has room (free some space, or lower gateway.spoolMinFreeBytes)',
            )
          : deps.log.info({ spoolDir: deps.spoolDir }, 'spool file system has room again: taking mail'),
    });
    const tls = settings.smtp.tls;
    const auth = settings.smtp.auth;
    this.edge = new EdgePolicy(settings.smtp, settings.hostname);
    this.authFailures = new AuthFailures(auth.maxFailuresPerClient, auth.failureWindowMs);
    this.authChecks = new CheckQueue(auth.maxConcurrentChecks, auth.maxQueuedChecks);
    if (auth.mode !== 'off') {
      this.credentials = Credentials.load(auth.usersFile);
      if (this.credentials.size === 0) {
        throw new ConfigError(deps.runtime.source, [{ path: 'gateway.smtp.auth', message: `auth mode "${auth.mode}" but no users`, fix: 'set gateway.smtp.auth.usersFile or MAILROOM_SMTP_USERS (lines from `mailroom smtp-user <name>`)' }]);
      }
      if (!tls && this.edge.authPlaintext.size === 0) {
        throw new ConfigError(deps.runtime.source, [{ path: 'gateway.smtp.auth', message: 'AUTH needs TLS and gateway.smtp.tls is not set, so no login could ever succeed', fix: 'add gateway.smtp.tls, or list the relay in gateway.smtp.auth.plaintextFrom (loopback/testing only)' }]);
      }
    }
    this.certificate = tls ? new TlsCertificate(tls, deps.log) : undefined;
    // smtp-server keeps (and changes) the options object it is given: one fresh object per listener.
    const options = (extra: SMTPServerOptions): SMTPServerOptions => ({
      name: settings.hostname,
      size: config.maxMessageSize,
      // An MX takes mail without AUTH, like SES's inbound endpoint; forwarding MTAs may log in (gateway.smtp.auth).
      disabledCommands: [...(auth.mode === 'off' ? ['AUTH'] : []), ...(tls ? [] : ['STARTTLS'])],
      hideSTARTTLS: !tls,
      ...(this.certificate?.pair ?? {}),
      ...(auth.mode !== 'off'
        ? {
            authMethods: ['PLAIN', 'LOGIN'],
            authOptional: auth.mode === 'optional',
            // onAuth enforces "TLS first" itself, so that plaintextFrom can make exceptions.
            allowInsecureAuth: true,
            authRequiredMessage: replies.authRequired().message,
            onAuth: (a: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void) => this.onAuth(a, session, cb),
          }
        : {}),
      // No maxRecipients for smtp-server: its refusal has no enhanced code and no hint; onRcptTo enforces the limit.
      socketTimeout: settings.smtp.socketTimeoutMs,
      closeTimeout: settings.smtp.closeTimeoutMs,
      disableReverseLookup: !settings.smtp.reverseDns,
      logger: false,
      onConnect: (session, cb) => (this.draining ? cb(this.counted(replies.shuttingDown(settings.hostname))) : cb()),
      onMailFrom: (address, session, cb) => this.onMailFrom(address, session, cb),
      onRcptTo: (address, session, cb) => this.onRcptTo(address, session, cb),
      onData: (stream, session, cb) => this.onData(stream, session, cb, !!extra.lmtp),
      // A transaction left open (QUIT before DATA, a dropped connection) gives its space back here; one whose
      // DATA is still being written keeps it until written (onData's settle).
      onClose: (session) => {
        if (!this.busy.has(session.id)) this.freeSpace.release(session.id);
        this.authFailuresOf.delete(session.id);
      },
      ...extra,
    });
    const add = (name: ListenerName, port: number, extra: SMTPServerOptions) => {
      const smtp = new EdgeSmtpServer(options(extra), tls?.handshakeTimeoutMs ?? 0);
      smtp.on('error', (err: Error & { code?: string }) => {
        // Client-side socket trouble is routine on an MX; keep it at debug.
        deps.log.debug({ listener: name, err: err.message, code: err.code }, 'smtp connection error');
      });
      this.servers.push({ name, smtp, port });
      return smtp;
    };
    this.server = add('smtp', settings.smtp.port, {});
    if (tls?.implicitPort !== undefined) add('smtps', tls.implicitPort, { secure: true, needsUpgrade: true });
    if (settings.smtp.lmtpPort !== undefined) add('lmtp', settings.smtp.lmtpPort, { lmtp: true });
  }

  /** Opens every listener (SMTP, and implicit TLS / LMTP when configured); returns the SMTP one's address. */
  async listen(): Promise<AddressInfo> {
    const { host, proxyProtocol, tls } = this.deps.runtime.settings.smtp;
    await this.freeSpace.start();
    for (const { name, smtp, port } of this.servers) {
      const listener = new EdgeListener(name, { proxies: this.edge.proxies, headerTimeoutMs: proxyProtocol.headerTimeoutMs, maxSockets: 2 * this.deps.runtime.settings.smtp.maxConnections, log: this.deps.log }, (socket, client) =>
        smtp.startSession(socket, { remoteAddress: client.remoteAddress, remotePort: client.remotePort }, this.admit(name, client.remoteAddress)),
      );
      let addr: AddressInfo;
      try {
        addr = await listener.listen(port, host);
      } catch (err) {
        // The caller never gets a front to stop: close what already listens.
        await Promise.all(this.listeners.splice(0).map((l) => l.close()));
        throw err;
      }
      this.listeners.push(listener);
      this.addresses[name] = addr;
      this.deps.log.info({ listener: name, host: addr.address, port: addr.port, tls: name === 'smtps' ? 'implicit' : !!tls, proxyProtocol: this.edge.proxies.size > 0 }, 'smtp listening');
    }
    this.certificate?.watch((pair) => this.applyTls(pair));
    return this.addresses.smtp!;
  }

  /** Re-reads the certificate and key (SIGHUP); sessions that start TLS from now on get them. True when they changed. */
  reloadTls(reason: string): boolean {
    return this.certificate?.reload(reason, (pair) => this.applyTls(pair)) ?? false;
  }

  private applyTls(pair: { key: Buffer; cert: Buffer }): void {
    // updateSecureContext drops the old context before building the new one; the pair was checked by the loader.
    for (const { smtp } of this.servers) smtp.updateSecureContext(pair);
  }

  /**
   * Admission at TCP accept, on every listener: the receipt filters and connection limits, decided before any TLS
   * handshake. On the implicit-TLS port a refusal is a closed connection (no reply without a handshake), still
   * logged and counted by the reply it stands for.
   */
  private admit(listener: ListenerName, ip: string): Admission {
    const a = this.edge.admit(ip);
    if (!a.ok) {
      const closed = listener === 'smtps';
      this.deps.log.info({ listener, client: ip, code: a.reply.responseCode, reason: a.reply.message }, closed ? 'connection refused; closed before the TLS handshake' : 'connection refused');
      return { ok: false, reply: this.counted(a.reply) };
    }
    return { ok: true, release: a.release, greetingDelayMs: this.edge.greetingDelayMs(ip) };
  }

  /** Every refusal the gateway writes passes here on its way to the client, for the rejected-by-reason metric. */
  private counted(reply: SmtpReply): SmtpReply {
    this.deps.metrics?.rejected(reply);
    return reply;
  }

  /**
   * AUTH with its limits (auth-limits.ts): an address over its failures is refused unchecked (454), a check waits for
   * a free slot or is refused when too many wait (454), a failure is answered after failureDelayMs, and the
   * connection's last allowed failure gets 421 and the connection closed.
   */
  private onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession, cb: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void): void {
    const { log, metrics, runtime } = this.deps;
    const limits = runtime.settings.smtp.auth;
    const client = session.remoteAddress;
    const meta = { session: session.id, client, method: auth.method };
    // Neither the user name nor the password is logged: only that a login happened and how it ended.
    if (!session.secure && !this.edge.authPlaintext.has(client)) return cb(this.counted(replies.authNeedsTls()));
    if ((auth.method !== 'PLAIN' && auth.method !== 'LOGIN') || !this.credentials) return cb(this.counted(replies.authFailed()));
    const credentials = this.credentials;
    /** A refusal counted against the connection; its last allowed one closes it. */
    const refuse = (reply: SmtpReply) => {
      const failures = (this.authFailuresOf.get(session.id) ?? 0) + 1;
      this.authFailuresOf.set(session.id, failures);
      const last = failures >= limits.maxFailuresPerConnection;
      if (last) log.info({ ...meta, failures }, 'too many failed AUTH attempts on one connection; closing it');
      setTimeout(() => cb(this.counted(last ? replies.authTooManyFailures(runtime.settings.hostname, limits.maxFailuresPerConnection) : reply)), limits.failureDelayMs).unref();
    };
    const lockedMs = this.authFailures.lockedFor(client);
    if (lockedMs > 0) {
      metrics?.auth('locked_out');
      log.info(meta, 'AUTH refused unchecked: too many failed attempts from this address');
      return refuse(replies.authLockedOut(client, Math.max(1, Math.ceil(lockedMs / 1000))));
    }
    this.authChecks.run(() => credentials.verify(auth.username ?? '', auth.password ?? '')).then(
      (ok) => {
        log.info({ ...meta, ok }, ok ? 'authenticated' : 'authentication failed');
        metrics?.auth(ok ? 'success' : 'failure');
        if (ok) return cb(null, { user: auth.username });
        if (this.authFailures.fail(client)) {
          log.warn({ client, failures: limits.maxFailuresPerClient, windowMs: limits.failureWindowMs }, 'AUTH locked for this address: too many failed attempts; it gets 454 until the oldest leaves the window');
        }
        refuse(replies.authFailed());
      },
      (err: Error) => {
        if (err instanceof ChecksBusyError) {
          metrics?.auth('busy');
          log.info(meta, 'AUTH refused: too many password checks waiting');
          return cb(this.counted(replies.authUnavailable()));
        }
        metrics?.auth('error');
        log.error({ session: session.id, err: err.message }, 'authentication check failed');
        cb(this.counted(replies.authUnavailable()));
      },
    );
  }

  private onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    // smtp-server already refuses control characters; this keeps the Received/Return-Path contract in one place.
    const problem = address.address ? headerFieldProblem(address.address) : undefined;
    if (problem) return cb(this.counted(replies.badAddress('sender address', problem)));
    // Before the rate limit's token is taken: a sender told to come back for want of space has sent nothing.
    const args = address.args as Record<string, string> | false;
    const declared = (args && Number(args.SIZE)) || 0;
    // smtp-server gives each transaction an envelope of its own (RSET, EHLO and the end of DATA start a new one).
    const envelope = session.envelope;
    const short = this.freeSpace.claim(session.id, declared, () => session.envelope === envelope);
    if (short !== undefined) {
      // The reserve running short is logged once (onReserve above); refusals are counted, not logged each.
      this.deps.log.debug({ session: session.id, client: session.remoteAddress, declaredBytes: declared, freeBytes: short.free }, 'spool short of space; replying 452');
      return cb(this.counted(replies.systemFull(this.deps.runtime.settings.hostname)));
    }
    const limited = this.edge.takeMessage(session.remoteAddress);
    if (limited) {
      this.freeSpace.release(session.id);
      this.deps.log.info({ session: session.id, client: session.remoteAddress }, 'message rate limit; replying 451');
      return cb(this.counted(limited));
    }
    // A MAIL FROM that arrives while DATA's reply is being written (it was sent right behind the final ".") is being
    // parsed inside smtp-server's continue(); answered there and then, a client that sends whole transactions without
    // waiting for 354 has its next end of DATA reached inside that call, which then drops the continuation it set —
    // the session hung after the second message. Such a MAIL FROM is answered on the next turn, as smtp-server's own
    // default answers every one; the rest (most clients wait for the 250) at once.
    if (this.replyingToData > 0) setImmediate(cb);
    else cb();
  }

  private onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void): void {
    const problem = headerFieldProblem(address.address);
    if (problem) return cb(this.counted(replies.badAddress('recipient address', problem)));
    const rcpt = withAsciiDomain(address.address);
    const limit = this.deps.runtime.settings.smtp.maxRecipients;
    // A recipient given again — the same mailbox however its domain is written — is accepted and stored once
    // (uniqueRecipients at DATA), so it never counts against the limit.
    const listed = new Set(session.envelope.rcptTo.map((r) => recipientKey(r.address)));
    if (!listed.has(recipientKey(address.address))) {
      if (listed.size >= limit) return cb(this.counted(replies.tooManyRecipients(limit)));
      // The notification lists them all (receipt.recipients): bounded in bytes too, so it always fits SNS.
      const recipients = uniqueRecipients([...session.envelope.rcptTo.map((r) => r.address), rcpt]);
      if (recipientsBytes(recipients) > RECIPIENTS_MAX_BYTES) return cb(this.counted(replies.tooManyRecipientBytes(RECIPIENTS_MAX_BYTES)));
    }
    const r = this.router.route(rcpt, session.secure);
    if (!r.ok) {
      this.deps.log.info({ session: session.id, rcpt, code: r.reply.responseCode }, 'recipient refused');
      return cb(this.counted(r.reply));
    }
    cb();
  }

  /**
   * LMTP: one reply per accepted recipient, each naming it. The message is still accepted or refused as a whole
   * (one spool file, its jobs for every rule added all or none): SES stores one object per rule listing all its recipients
   * under one message id, and accepting some recipients in a separate transaction would store a second message id
   * for the same mail. So an enqueue failure is a 451 for each recipient, and a success a 250 for each.
   */
  private onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string | string[]) => void, lmtp: boolean): void {
    this.busy.add(session.id);
    // Settled before cb: a client that pipelined its next MAIL FROM (and RCPT, DATA) behind the final "." has them
    // handled inside cb, and their hold and busy mark are the next transaction's, not this one's.
    const settle = () => {
      this.busy.delete(session.id);
      this.freeSpace.release(session.id);
    };
    const reply = (...args: Parameters<typeof cb>) => {
      this.replyingToData++;
      try {
        cb(...args);
      } finally {
        this.replyingToData--;
      }
    };
    const done = this.deps.intake.accept(this.intakeMessage(session), stream).then(
      (outcome) => {
        if (!stream.readableEnded && !stream.destroyed) stream.resume();
        settle();
        if (outcome.accepted) {
          this.deps.metrics?.accepted(outcome.dataLength);
          reply(null, lmtp ? session.envelope.rcptTo.map((r) => replies.acceptedFor(outcome.messageId, withAsciiDomain(r.address))) : replies.accepted(outcome.messageId));
        } else reply(this.counted(refusalReply(outcome.refusal, this.deps.runtime.settings.hostname)));
      },
      (err: Error) => {
        // The intake answers every failure as a refusal; this is a bug's last line of defence.
        this.deps.log.error({ session: session.id, err: err.message }, 'accept failed unexpectedly; replying 451');
        // smtp-server sends the reply once DATA has ended; make sure the rest of it is read and dropped.
        if (!stream.readableEnded && !stream.destroyed) stream.resume();
        settle();
        reply(this.counted(replies.localError()));
      },
    );
    this.accepting.add(done);
    void done.finally(() => this.accepting.delete(done));
  }

  /** The transaction as the intake takes it: the envelope in its stored form and the rules each recipient matched. */
  private intakeMessage(session: SMTPServerSession): IntakeMessage {
    const recipients = uniqueRecipients(session.envelope.rcptTo.map((r) => r.address));
    const hostname = resolvedHostname(session);
    return {
      mailFrom: session.envelope.mailFrom ? withAsciiDomain(session.envelope.mailFrom.address) : '',
      rules: this.router.rulesFor(recipients, session.secure),
      client: { ip: session.remoteAddress, helo: session.hostNameAppearsAs, tls: session.secure, ...(hostname ? { hostname } : {}) },
      logFields: { session: session.id, client: session.remoteAddress },
    };
  }

  /**
   * Graceful stop: no new connections, idle sessions get 421 now, sessions in DATA finish their message (and get
   * their 250 or 451) and then 421 on their next command; after closeTimeoutMs everyone left gets 421.
   */
  async stop(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.freeSpace.stop();
    this.certificate?.close();
    // The listeners own the sockets: closing them resolves once every session has ended.
    const closed = Promise.all(this.listeners.map((l) => l.close()));
    for (const { smtp } of this.servers) {
      // Arms smtp-server's closeTimeout (then 421 to whoever is left) and makes later commands get 421.
      smtp.close(() => undefined);
      for (const conn of smtp.connections) {
        if (!this.busy.has(conn.session.id)) conn.send(421, replies.shuttingDown(this.deps.runtime.settings.hostname).message);
      }
    }
    // smtp-server's own timer is disarmed when its (unused) net.Server closes; the listeners keep the deadline.
    const force = setTimeout(() => {
      for (const { smtp } of this.servers) for (const conn of smtp.connections) conn.send(421, replies.shuttingDown(this.deps.runtime.settings.hostname).message);
    }, this.deps.runtime.settings.smtp.closeTimeoutMs).unref();
    await closed;
    clearTimeout(force);
    await Promise.allSettled([...this.accepting]);
  }
}
