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
  localError: () => new SmtpReply(451, '4.3.0 Local error in processing; the message was not accepted, try again later'),
  shuttingDown: (host: string) => new SmtpReply(421, `4.3.2 ${host} Service shutting down, try again later`),
  badAddress: (what: string, problem: string) => new SmtpReply(553, `5.1.7 ${what} ${problem}`),
  accepted: (messageId: string) => `Ok ${messageId}`,
};
