/**
 * Every reply the gateway itself writes, in one place. The gateway does not advertise ENHANCEDSTATUSCODES (so the
 * success reply reads `250 Ok <messageId>`, as SES's does); its refusals still carry the RFC 3463 code in the text,
 * which senders log and bounce messages quote.
 */
export class SmtpReply extends Error {
  constructor(
    readonly responseCode: number,
    text: string,
  ) {
    super(text);
    this.name = 'SmtpReply';
  }
}

export const replies = {
  unknownRecipient: (address: string) => new SmtpReply(550, `5.1.1 <${address}>: Recipient address rejected: no receipt rule accepts it`),
  tlsRequired: (address: string) => new SmtpReply(530, `5.7.0 <${address}>: Must issue a STARTTLS command first: a receipt rule for this recipient requires TLS`),
  tooBig: (limit: number) => new SmtpReply(552, `5.3.4 Message size exceeds fixed maximum message size of ${limit} bytes`),
  /** RFC 5322: a message starts with a header field (or an empty line); this one starts with a folded continuation. */
  /** RFC 3463 5.6.0 "other or undefined media error": the DATA itself cannot be stored as sent. */
  malformed: (why: string) => new SmtpReply(554, `5.6.0 Message refused: ${why}`),
  localError: () => new SmtpReply(451, '4.3.0 Local error in processing; the message was not accepted, try again later'),
  /** RFC 5321's 452 "insufficient system storage": the sender keeps the message and retries. */
  systemFull: (host: string) => new SmtpReply(452, `4.3.1 ${host} Insufficient system storage, try again later`),
  shuttingDown: (host: string) => new SmtpReply(421, `4.3.2 ${host} Service shutting down, try again later`),
  badAddress: (what: string, problem: string) => new SmtpReply(553, `5.1.7 ${what} ${problem}`),
  /** RFC 5321 §4.5.3.1.10: 452 for too many recipients, which the sender delivers in a later transaction. */
  tooManyRecipients: (limit: number) => new SmtpReply(452, `4.5.3 Too many recipients: at most ${limit} per message, send the rest in another transaction`),
  tooManyRecipientBytes: (limit: number) => new SmtpReply(452, `4.5.3 Too many recipients: their addresses add up to more than ${limit} bytes, send the rest in another transaction`),
  accepted: (messageId: string) => `Ok ${messageId}`,
  /** LMTP's per-recipient reply: the same id for every recipient (one message, as SES stores it). */
  acceptedFor: (messageId: string, rcpt: string) => `Ok ${messageId} <${rcpt}>`,
  // Connection level (the edge): RFC 5321 allows 554 instead of the 220 greeting; limits are temporary (421).
  blockedClient: (ip: string, why: string) => new SmtpReply(554, `5.7.1 Client host [${ip}] rejected: ${why}`),
  tooManyConnections: (host: string, limit: number) => new SmtpReply(421, `4.7.0 ${host} Too many connections (limit ${limit}), try again in a few minutes`),
  tooManyClientConnections: (host: string, ip: string, limit: number) =>
    new SmtpReply(421, `4.7.0 ${host} Too many connections from [${ip}] (limit ${limit} at once), try again after closing some`),
  rateLimited: (ip: string, perMinute: number, retryS: number) =>
    new SmtpReply(451, `4.7.1 Rate limit exceeded for [${ip}]: at most ${perMinute} messages per minute, try again in ${retryS} s`),
  authRequired: () => new SmtpReply(530, '5.7.0 Authentication required'),
  authFailed: () => new SmtpReply(535, '5.7.8 Authentication credentials invalid'),
  authUnavailable: () => new SmtpReply(454, '4.7.0 Temporary authentication failure, try again later'),
  authLockedOut: (ip: string, retryS: number) => new SmtpReply(454, `4.7.0 Too many failed authentication attempts from [${ip}], try again in ${retryS} s`),
  authTooManyFailures: (host: string, limit: number) => new SmtpReply(421, `4.7.0 ${host} Too many failed authentication attempts on this connection (limit ${limit}), closing connection`),
  authNeedsTls: () => new SmtpReply(538, '5.7.11 Encryption required for requested authentication mechanism: issue STARTTLS first'),
};
