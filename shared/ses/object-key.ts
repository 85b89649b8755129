import { SETUP_NOTIFICATION_MESSAGE_ID } from './message-id.js';

/**
 * The S3 key SES writes for a message (docs/ses-format.md#object-key): the prefix, a `/` unless the prefix already ends with one, then
 * the message id; no prefix means the bare id.
 *
 * UNCONFIRMED edge cases (docs/ses-format.md#odd-prefixes) get the same literal rule — a prefix of `/` gives `/<id>`, a leading `/` or
 * `//` is kept verbatim — because SES documents the prefix as an unconstrained string and nothing suggests it
 * normalises it. The config validation warns about such prefixes instead of rewriting them.
 */
export function objectKey(objectKeyPrefix: string | undefined, messageId: string): string {
  const prefix = objectKeyPrefix ?? '';
  if (prefix === '') return messageId;
  return prefix.endsWith('/') ? prefix + messageId : `${prefix}/${messageId}`;
}

export function setupNotificationKey(objectKeyPrefix: string | undefined): string {
  return objectKey(objectKeyPrefix, SETUP_NOTIFICATION_MESSAGE_ID);
}

/** S3's key limit is 1024 bytes of UTF-8; a 40-character id and the separator must still fit. */
export const MAX_OBJECT_KEY_PREFIX_BYTES = 1024 - 41;
