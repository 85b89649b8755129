/** The SNS notification of a spooled message does not depend on where its DATA is read from. */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { newMessageId } from '../../shared/ses/message-id.js';
import type { SpoolRecord } from '../../gateway/spool/format.js';
import { notificationFor } from '../../gateway/worker/notify.js';
import { headerBlockFor } from '../../gateway/worker/stored-message.js';

describe('notification of a spooled message', () => {
  it('is the same whether its DATA is in memory (a batch entry) or streamed from the spool file', async () => {
    const envelope: SpoolRecord['envelope'] = { messageId: newMessageId(), receivedAt: '2026-11-27T02:00:00.000Z', mailFrom: 'a@origin.example', helo: 'h.example', clientIp: '192.0.2.7', tls: true, byHost: 'mx.example', accountId: '123456789012', region: 'us-east-1' };
    const rule = { name: 'r', recipients: ['b@example.com'], scanEnabled: true, s3Action: { bucketName: 'bkt', objectKeyPrefix: 'in/', topicArn: 'arn:aws:sns:us-east-1:123456789012:t' } };
    const headerBlock = headerBlockFor(envelope, rule);
    for (const data of [
      Buffer.from('From: A <a@origin.example>\r\nTo: b@example.com\r\nSubject: =?UTF-8?B?w6k=?=\r\n folded\r\nMessage-ID: <1@origin.example>\r\n\r\nbody\r\n'),
      Buffer.from('Subject: no body, no blank line\r\n'),
      Buffer.concat([Buffer.from('X-Long: '), Buffer.alloc(300 * 1024, 'x'), Buffer.from('\r\n\r\nbody\r\n')]),
    ]) {
      const now = Date.parse(envelope.receivedAt) + 1234;
      const fromMemory = await notificationFor(envelope, rule, headerBlock, { stored: Buffer.concat([headerBlock, data]) }, now);
      const fromStream = await notificationFor(envelope, rule, headerBlock, Readable.from([data.subarray(0, 7), data.subarray(7)]), now);
      expect(fromMemory).toEqual(fromStream);
    }
  });
});
