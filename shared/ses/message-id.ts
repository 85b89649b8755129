import { randomPool } from '../random-pool.js';

/**
 * SES message ids (docs/ses-format.md#message-id): 40 characters of lowercase base32hex `[0-9a-v]`; in every observed id the 39th
 * character has its low three bits zero (`0`, `8`, `g`, `o`) and the 40th is `1`. What the bits mean is
 * UNCONFIRMED, so we mint 38 random characters + one of the four + `1`: indistinguishable in format, and with 192
 * random bits, as unguessable as a key should be.
 */
const ALPHABET = '0123456789abcdefghijklmnopqrstuv';
const PENULTIMATE = '08go';
const MESSAGE_ID_RE = /^[0-9a-v]{38}[08go]1$/;

const ID_BYTES = 39;
const nextIdBytes = randomPool(ID_BYTES);
const ALPHABET_CODES = Buffer.from(ALPHABET, 'latin1');
const PENULTIMATE_CODES = Buffer.from(PENULTIMATE, 'latin1');

/** Built in place over the random bytes and read as one string: one id per accepted message, on the accept path. */
export function newMessageId(): string {
  return idOver(nextIdBytes());
}

/** How many bytes `messageIdFromBytes` reads: 5 bits from each of the first 38, 2 from the 39th (192 bits). */
export const MESSAGE_ID_SOURCE_BYTES = ID_BYTES;

/**
 * The id in SES's shape over caller-supplied bytes (at least 39, e.g. a keyed hash), for ids that must come out the
 * same every time, such as a replayed message's. The bytes must be uniformly distributed for the id to be.
 */
export function messageIdFromBytes(bytes: Uint8Array): string {
  if (bytes.length < ID_BYTES) throw new RangeError(`a message id needs ${ID_BYTES} bytes, got ${bytes.length}`);
  return idOver(Buffer.from(bytes.subarray(0, ID_BYTES)));
}

/** Rewrites `r` (39 bytes, owned by the caller) into the id's characters. */
function idOver(r: Buffer): string {
  for (let i = 0; i < 38; i++) r[i] = ALPHABET_CODES[r[i]! & 31]!;
  r[38] = PENULTIMATE_CODES[r[38]! & 3]!;
  return r.toString('latin1') + '1';
}

export function isMessageId(value: string): boolean {
  return MESSAGE_ID_RE.test(value);
}

/** The id SES uses for the test object it writes when a rule is created (docs/ses-format.md#setup-notification-object). */
export const SETUP_NOTIFICATION_MESSAGE_ID = 'AMAZON_SES_SETUP_NOTIFICATION';
