import { randomBytes } from 'node:crypto';

/**
 * SES message ids (spec §1.2): 40 characters of lowercase base32hex `[0-9a-v]`; in every observed id the 39th
 * character has its low three bits zero (`0`, `8`, `g`, `o`) and the 40th is `1`. What the bits mean is
 * UNCONFIRMED, so we mint 38 random characters + one of the four + `1`: indistinguishable in format, and with 192
 * random bits, as unguessable as a key should be.
 */
const ALPHABET = '0123456789abcdefghijklmnopqrstuv';
const PENULTIMATE = '08go';
const MESSAGE_ID_RE = /^[0-9a-v]{38}[08go]1$/;

// One randomBytes call per 256 ids instead of per id: it showed as 2% of the accept path's CPU (as uuid does, the
// pool is only ever read forward, so no byte serves two ids).
const ID_BYTES = 39;
const POOL_IDS = 256;
let pool = Buffer.alloc(0);
let offset = 0;

export function newMessageId(): string {
  if (offset + ID_BYTES > pool.length) {
    pool = randomBytes(ID_BYTES * POOL_IDS);
    offset = 0;
  }
  const at = offset;
  offset += ID_BYTES;
  let id = '';
  for (let i = 0; i < 38; i++) id += ALPHABET[pool[at + i]! & 31];
  return id + PENULTIMATE[pool[at + 38]! & 3] + '1';
}

export function isMessageId(value: string): boolean {
  return MESSAGE_ID_RE.test(value);
}

/** The id SES uses for the test object it writes when a rule is created (spec §1.3). */
export const SETUP_NOTIFICATION_MESSAGE_ID = 'AMAZON_SES_SETUP_NOTIFICATION';
