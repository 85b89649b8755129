import { Readable } from 'node:stream';
import { buildHeaderBlock } from '../../shared/ses/header-block.js';
import type { MessageEnvelope, SpooledRule } from '../spool/format.js';

/**
 * The SES header block of one rule's copy of a message (docs/ses-format.md#header-block), as bytes. Verdicts: a scan-enabled rule gets
 * GRAY spam and virus headers — the honest answer until scanning exists; SPF, DKIM and DMARC are not computed yet,
 * so their headers are left out rather than claiming a result (the builder's contract).
 */
export function headerBlockFor(envelope: MessageEnvelope, rule: SpooledRule): Buffer {
  const text = buildHeaderBlock({
    mailFrom: envelope.mailFrom,
    ...(envelope.clientIp !== undefined && envelope.helo !== undefined ? { helo: envelope.helo, clientIp: envelope.clientIp } : {}),
    ...(envelope.clientHostname ? { clientHostname: envelope.clientHostname } : {}),
    byHost: envelope.byHost,
    messageId: envelope.messageId,
    recipients: rule.recipients,
    receivedAt: new Date(envelope.receivedAt),
    ...(rule.scanEnabled ? { scan: { spam: 'GRAY', virus: 'GRAY' } as const } : {}),
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
