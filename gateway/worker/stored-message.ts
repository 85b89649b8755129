import { Readable } from 'node:stream';
import { buildHeaderBlock } from '../../shared/ses/header-block.js';
import type { MessageEnvelope, SpooledRule } from '../spool/format.js';
import { headerBlockVerdicts, type MessageVerdicts } from '../verdicts/verdicts.js';

/**
 * The SES header block of one rule's copy of a message (docs/ses-format.md#header-block), as bytes, with the message's
 * verdicts (gateway/verdicts): a scan-enabled rule gets the spam and virus headers (GRAY when nothing scanned it),
 * and the authentication results are written only when they were computed — never a claimed result (the builder's
 * contract). Their authserv-id is the gateway's own name, the `by` host.
 */
export function headerBlockFor(envelope: MessageEnvelope, rule: SpooledRule, verdicts?: MessageVerdicts): Buffer {
  const text = buildHeaderBlock({
    mailFrom: envelope.mailFrom,
    ...(envelope.clientIp !== undefined && envelope.helo !== undefined ? { helo: envelope.helo, clientIp: envelope.clientIp } : {}),
    ...(envelope.clientHostname ? { clientHostname: envelope.clientHostname } : {}),
    byHost: envelope.byHost,
    messageId: envelope.messageId,
    recipients: rule.recipients,
    receivedAt: new Date(envelope.receivedAt),
    ...headerBlockVerdicts(verdicts, rule),
  });
  return Buffer.from(text, 'utf8');
}

/** Header block, then DATA: the stored message as one stream, in order, never held whole. */
export function storedMessageStream(headerBlock: Buffer, data: Readable): Readable {
  async function* chunks() {
    try {
      yield headerBlock;
      for await (const chunk of data) yield chunk as Buffer;
    } finally {
      data.destroy();
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}
