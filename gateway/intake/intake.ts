import type { Readable } from 'node:stream';
import { dataStartProblem } from '../../shared/ses/header-block.js';
import { newMessageId } from '../../shared/ses/message-id.js';
import type { Enqueuer } from '../queue/enqueue.js';
import type { Logger } from '../runtime/log.js';
import { within } from '../runtime/timeout.js';
import type { SpoolDirectory } from '../spool/directory.js';
import type { MessageEnvelope, SpoolFile, SpoolRecord, SpooledRule } from '../spool/format.js';
import { isOutOfSpace } from '../spool/free-space.js';
import { BodyError, type SpoolWriter } from '../spool/writer.js';
import { AcceptLog } from './accept-log.js';
import { InFlight } from './in-flight.js';

/** The SMTP client a message came from; absent for a source that is not SMTP (replay). */
export interface SmtpClient {
  ip: string;
  /** Reverse-DNS name, when one was found. */
  hostname?: string;
  helo: string;
  tls: boolean;
}

/** What a source knows about a message before its DATA: the envelope and the receipt rules it matched. */
export interface IntakeMessage {
  /** MAIL FROM in its stored form (A-label domain); "" for the null reverse-path. */
  mailFrom: string;
  /** Every matched rule's snapshot with its recipients, in rule-set order (smtp/routing.ts RecipientRouter.rulesFor). */
  rules: SpooledRule[];
  /** A caller-chosen message id (replay derives one from its source); by default a new one. */
  messageId?: string;
  /** When the message was received (replay: the source's date); by default now. */
  receivedAt?: Date;
  client?: SmtpClient;
  /** Added to the intake's log lines about this message (e.g. the SMTP session); never addresses or bodies. */
  logFields?: Record<string, string | number | boolean>;
}

/** Why a message was not accepted. Nothing of it is kept: the source keeps the message and may offer it again. */
export type Refusal =
  | { kind: 'too-big'; dataLength: number; limitBytes: number }
  /** The spool's file system is full: try again later. */
  | { kind: 'no-space' }
  /** The disk or Redis failed: try again later. */
  | { kind: 'unavailable'; reason: string }
  /** The message's own stream failed or ended early (a client gone mid-DATA, a bad replay source): nothing kept. */
  | { kind: 'body-failed'; reason: string }
  /** No receipt rule takes it: nothing would deliver it. */
  | { kind: 'no-rule' }
  /** The DATA cannot be stored as sent (it would continue the gateway's header block); `reason` says why and the fix. */
  | { kind: 'malformed'; reason: string };

export type AcceptOutcome =
  | { accepted: true; messageId: string; dataLength: number }
  | { accepted: false; messageId: string; refusal: Refusal };

export interface IntakeOptions {
  directory: SpoolDirectory;
  writer: SpoolWriter;
  jobs: Enqueuer;
  log: Logger;
  /** How long an accept waits for Redis to confirm the jobs before refusing (the add may still land). */
  jobsTimeoutMs: number;
  maxMessageBytes: number;
  /** Written into every record: the gateway's name (Received `by`), the rule set's account and region. */
  identity: { byHost: string; accountId: string; region: string };
}

/**
 * The accept transaction, owned in one place for every source (the SMTP front, replay): a message is accepted once
 * its bytes are on disk, fsync'd, and its delivery jobs are in Redis — never before, so an `accepted` outcome is
 * what a `250` promises. Any failure on the way refuses the message, and then nothing half-accepted is delivered
 * without the source knowing.
 *
 * The jobs go to Redis as soon as the message's bytes are in its spool file, while the disk flushes: the two waits
 * overlap instead of adding up. So a refusal may come after the jobs went in (the disk failed), or the jobs may go
 * in after the refusal (Redis answered late). One rule settles both: **a refused message's spool file stays exactly
 * when its jobs went in, now or later** — then it is delivered from what was written (each batch entry checked
 * against its checksum), and the source's retry becomes a second copy (at-least-once, never lost); otherwise the file
 * goes. Every message of a batch file hears the same outcome.
 *
 * Until that is settled the file is "in flight": spool recovery (recovery.ts) keeps off it.
 */
export class Intake {
  /** Spool files (and message ids) whose accept is not settled yet: recovery leaves them alone. */
  readonly inFlight = new InFlight();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly accepted: AcceptLog;

  constructor(private readonly opts: IntakeOptions) {
    this.accepted = new AcceptLog(opts.log);
  }

  /** Reads `body` (DATA as received: dot-unstuffed, CRLF line ends) to its end and accepts or refuses the message. */
  accept(message: IntakeMessage, body: Readable): Promise<AcceptOutcome> {
    const p = this.transact(message, body);
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }

  /** True while `fileId` (a spool file or a message id) belongs to an unsettled accept, or to the writer. */
  isBusy(fileId: string): boolean {
    return this.inFlight.has(fileId) || this.opts.writer.owns(fileId);
  }

  /** Resolves once every accept begun so far has its outcome and its spool file's fate is settled (shutdown). */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** Stops the per-second accept summary (logging what it still counted). */
  close(): void {
    this.accepted.close();
  }

  private record(messageId: string, m: IntakeMessage): SpoolRecord {
    const { identity } = this.opts;
    const envelope: MessageEnvelope = {
      messageId,
      receivedAt: (m.receivedAt ?? new Date()).toISOString(),
      mailFrom: m.mailFrom,
      ...(m.client ? { helo: m.client.helo, clientIp: m.client.ip, ...(m.client.hostname ? { clientHostname: m.client.hostname } : {}), tls: m.client.tls } : {}),
      byHost: identity.byHost,
      accountId: identity.accountId,
      region: identity.region,
    };
    return { v: 1, envelope, rules: m.rules };
  }

  private async transact(message: IntakeMessage, body: Readable): Promise<AcceptOutcome> {
    const { writer, log, maxMessageBytes } = this.opts;
    const messageId = message.messageId ?? newMessageId();
    const fields = { messageId, ...message.logFields };
    const refuse = (refusal: Refusal): AcceptOutcome => ({ accepted: false, messageId, refusal });
    if (message.rules.length === 0) {
      // Never spool mail nobody delivers (SMTP cannot get here: DATA needs an accepted RCPT).
      body.resume();
      return refuse({ kind: 'no-rule' });
    }
    this.inFlight.add(messageId);
    let file: SpoolFile | undefined;
    let settling: Promise<unknown> | undefined;
    try {
      let received;
      try {
        received = await writer.receive(this.record(messageId, message), body, maxMessageBytes, dataStartProblem);
      } catch (err) {
        if (err instanceof BodyError) {
          log.info({ ...fields, err: err.message }, 'message body failed before its end; refused');
          return refuse({ kind: 'body-failed', reason: err.message });
        }
        const full = isOutOfSpace(err);
        log.error({ ...fields, err: (err as Error).message }, full ? 'spool file system full; message refused' : 'spool write failed; message refused');
        return refuse(full ? { kind: 'no-space' } : { kind: 'unavailable', reason: 'the spool could not be written' });
      }
      if (!received.ok && received.reason === 'refused') {
        log.info({ ...fields, bytes: received.dataLength }, 'message starts with a continuation line; refused');
        return refuse({ kind: 'malformed', reason: received.why });
      }
      if (!received.ok) {
        log.info({ ...fields, bytes: received.dataLength, limit: maxMessageBytes }, 'message too big; refused');
        return refuse({ kind: 'too-big', dataLength: received.dataLength, limitBytes: maxMessageBytes });
      }
      file = received.file;
      // Before anything awaits: recovery must never see this file unclaimed.
      this.inFlight.add(file.id);
      const jobs = this.opts.jobs.add(file);
      // Usually Redis has answered before the disk: then no timer is needed to bound the wait.
      let queued = false;
      jobs.then(
        () => (queued = true),
        () => undefined,
      );
      try {
        await received.durable;
      } catch (err) {
        settling = this.abandon(file, jobs, fields);
        const full = isOutOfSpace(err);
        log.error({ ...fields, err: (err as Error).message }, full ? 'spool file system full; message refused' : 'spool write failed; message refused');
        return refuse(full ? { kind: 'no-space' } : { kind: 'unavailable', reason: 'the spool could not be written' });
      }
      // Redis's time limit runs from the end of the flush: a slow disk is no reason to refuse.
      try {
        if (!queued) await within(jobs, this.opts.jobsTimeoutMs, () => new Error(`Redis did not confirm the jobs within ${this.opts.jobsTimeoutMs} ms`));
      } catch (err) {
        settling = this.abandon(file, jobs, fields);
        log.error({ ...fields, err: (err as Error).message }, 'jobs not confirmed by Redis; message refused');
        return refuse({ kind: 'unavailable', reason: 'the delivery queue did not confirm' });
      }
      this.accepted.add(fields, file.id, received.dataLength, message.rules);
      return { accepted: true, messageId, dataLength: received.dataLength };
    } finally {
      const done = () => {
        this.inFlight.delete(messageId);
        if (file) this.inFlight.delete(file.id);
      };
      const s = settling;
      if (s) {
        this.pending.add(s);
        void s.then(done, done).finally(() => this.pending.delete(s));
      } else done();
    }
  }

  /** The refused message's file stays exactly when its jobs went in (now or late); otherwise it goes. */
  private abandon(file: SpoolFile, jobs: Promise<void>, fields: Record<string, unknown>): Promise<unknown> {
    const { directory, log } = this.opts;
    return jobs.then(
      () => log.warn({ ...fields, spoolFile: file.id }, 'the jobs went in although the message was refused; it will be delivered from its spool file (and may arrive again from its sender)'),
      () => directory.remove(file.id).catch((e: Error) => log.error({ ...fields, spoolFile: file.id, err: e.message }, 'could not remove a refused message\'s spool file')),
    );
  }
}
