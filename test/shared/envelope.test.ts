/** The GCM streams and metadata parsing on their own (no KMS): chunk boundaries, lengths, malformed envelopes. */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { canonicalMatdesc, createDecipherStream, EnvelopeError, parseEnvelope, sesMatdesc } from '../../shared/envelope/index.js';
import { createGcmEncryptStream, gcmEncrypt } from '../../shared/envelope/encrypt.js';

function sealed(plain: Buffer, key: Buffer, iv: Buffer): Buffer {
  const c = createCipheriv('aes-256-gcm', key, iv);
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

function chunked(buf: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return Readable.from(parts, { objectMode: false });
}

const goodMeta = () => ({
  'x-amz-key-v2': Buffer.from('wrapped').toString('base64'),
  'x-amz-iv': randomBytes(12).toString('base64'),
  'x-amz-cek-alg': 'AES/GCM/NoPadding',
  'x-amz-wrap-alg': 'kms',
  'x-amz-tag-len': '128',
  'x-amz-unencrypted-content-length': '5',
  'x-amz-matdesc': '{"aws:ses:message-id":"m","aws:ses:rule-name":"r","aws:ses:source-account":"123456789012","kms_cmk_id":"arn:aws:kms:eu-west-1:123456789012:key/k"}',
});

describe('decipher stream', () => {
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const plain = randomBytes(100_003);
  const body = sealed(plain, key, iv);

  for (const size of [1, 7, 15, 16, 17, 4096, 65_536, body.length]) {
    it(`decrypts with ${size}-byte chunks`, async () => {
      const out = await buffer(chunked(body, size).pipe(createDecipherStream(key, { iv, unencryptedLength: plain.length })));
      expect(out.equals(plain)).toBe(true);
    });
  }

  it('decrypts an empty message (tag only)', async () => {
    const out = await buffer(chunked(sealed(Buffer.alloc(0), key, iv), 3).pipe(createDecipherStream(key, { iv, unencryptedLength: 0 })));
    expect(out.length).toBe(0);
  });

  async function failure(input: Buffer, len?: number): Promise<EnvelopeError> {
    const s = chunked(input, 1000).pipe(createDecipherStream(key, { iv, unencryptedLength: len }));
    return buffer(s).then(
      () => { throw new Error('expected failure'); },
      (e: EnvelopeError) => e,
    );
  }

  it('refuses a truncated object', async () => {
    expect((await failure(body.subarray(0, 10))).code).toBe('authentication-failed');
    expect((await failure(body.subarray(0, body.length - 1))).code).toBe('authentication-failed');
  });
  it('refuses a length that differs from x-amz-unencrypted-content-length', async () => {
    const err = await failure(body, plain.length + 1);
    expect(err.code).toBe('length-mismatch');
    expect(err.message).toBe(`decrypted ${plain.length} bytes, but x-amz-unencrypted-content-length says ${plain.length + 1}`);
  });
  it('the output of the node:crypto reference equals ours', () => {
    const d = createDecipheriv('aes-256-gcm', key, iv);
    d.setAuthTag(body.subarray(-16));
    expect(Buffer.concat([d.update(body.subarray(0, -16)), d.final()]).equals(plain)).toBe(true);
  });
});

describe('matdesc', () => {
  it('is compact JSON with sorted keys, byte-identical to a real SES object (docs/ses-format.md#object-metadata)', () => {
    expect(
      sesMatdesc({
        kmsKeyArn: 'arn:aws:kms:us-east-1:210987654321:key/0f0e0d0c-0b0a-4909-8807-060504030201',
        accountId: '210987654321',
        ruleName: 'announce-bot-dev',
        messageId: 'l9qqcrolmee63vbg1ab7p8hr7fd9a3d3lug34301',
      }),
    ).toBe(
      '{"aws:ses:message-id":"l9qqcrolmee63vbg1ab7p8hr7fd9a3d3lug34301","aws:ses:rule-name":"announce-bot-dev","aws:ses:source-account":"210987654321","kms_cmk_id":"arn:aws:kms:us-east-1:210987654321:key/0f0e0d0c-0b0a-4909-8807-060504030201"}',
    );
    expect(canonicalMatdesc({ b: '1', a: '2' })).toBe('{"a":"2","b":"1"}');
  });
});

describe('parseEnvelope', () => {
  it('reads SES metadata, including the key region for Decrypt', () => {
    const env = parseEnvelope(goodMeta());
    expect(env.wrapAlg).toBe('kms');
    expect(env.unencryptedLength).toBe(5);
    expect(env.keyRegion).toBe('eu-west-1');
    expect(env.context['aws:ses:rule-name']).toBe('r');
  });
  const cases: Array<[string, (m: Record<string, string>) => void, string, string]> = [
    ['V1 format', (m) => { delete m['x-amz-key-v2']; m['x-amz-key'] = 'x'; }, 'unsupported-envelope', 'the object uses the V1 S3 Encryption Client format (x-amz-key, AES-CBC), which SES never writes; decrypt it with an official client in legacy mode'],
    ['CBC content', (m) => { m['x-amz-cek-alg'] = 'AES/CBC/PKCS5Padding'; }, 'unsupported-envelope', 'content is encrypted with "AES/CBC/PKCS5Padding"; only AES/GCM/NoPadding (what SES writes) is supported'],
    ['client-side master key', (m) => { m['x-amz-wrap-alg'] = 'AESWrap'; }, 'unsupported-envelope', 'the data key is wrapped with "AESWrap"; only KMS-wrapped keys ("kms" as SES writes, "kms+context") are supported'],
    ['tag length', (m) => { m['x-amz-tag-len'] = '96'; }, 'malformed-metadata', 'the object\'s encryption metadata is malformed: x-amz-tag-len is "96", expected "128"'],
    ['IV length', (m) => { m['x-amz-iv'] = randomBytes(16).toString('base64'); }, 'malformed-metadata', 'the object\'s encryption metadata is malformed: x-amz-iv is 16 bytes, expected 12'],
    ['matdesc not JSON', (m) => { m['x-amz-matdesc'] = '{oops'; }, 'malformed-metadata', ''],
    ['matdesc with a non-string', (m) => { m['x-amz-matdesc'] = '{"a":1}'; }, 'malformed-metadata', 'the object\'s encryption metadata is malformed: x-amz-matdesc is not a JSON object of strings (not a string map)'],
    ['kms+context without the cek binding', (m) => { m['x-amz-wrap-alg'] = 'kms+context'; }, 'malformed-metadata', 'the object\'s encryption metadata is malformed: aws:x-amz-cek-alg in x-amz-matdesc does not match x-amz-cek-alg'],
    ['length not a number', (m) => { m['x-amz-unencrypted-content-length'] = '-1'; }, 'malformed-metadata', 'the object\'s encryption metadata is malformed: x-amz-unencrypted-content-length is "-1", not a byte count'],
  ];
  for (const [name, edit, code, message] of cases) {
    it(`refuses ${name}`, () => {
      const m: Record<string, string> = goodMeta();
      edit(m);
      let err: EnvelopeError | undefined;
      try {
        parseEnvelope(m);
      } catch (e) {
        err = e as EnvelopeError;
      }
      expect(err).toBeInstanceOf(EnvelopeError);
      expect(err!.code).toBe(code);
      if (message) expect(err!.message).toBe(message);
    });
  }
  it('accepts kms+context with the binding, as the v2 clients write it', () => {
    const m: Record<string, string> = goodMeta();
    m['x-amz-wrap-alg'] = 'kms+context';
    m['x-amz-matdesc'] = '{"aws:x-amz-cek-alg":"AES/GCM/NoPadding"}';
    expect(parseEnvelope(m).context).toEqual({ 'aws:x-amz-cek-alg': 'AES/GCM/NoPadding' });
  });
});

describe('encryption of a message in memory', () => {
  it('is byte for byte the streamed encryption (ciphertext, then the 16-byte tag)', async () => {
    for (const size of [0, 1, 15, 16, 17, 10_000, 300_000]) {
      const key = randomBytes(32);
      const iv = randomBytes(12);
      const plain = randomBytes(size);
      const streamed = await buffer(Readable.from([plain.subarray(0, size >> 1), plain.subarray(size >> 1)]).pipe(createGcmEncryptStream(key, iv, size)));
      const whole = gcmEncrypt(key, iv, plain);
      expect(whole.equals(streamed)).toBe(true);
      expect(whole.length).toBe(size + 16);
      const d = createDecipheriv('aes-256-gcm', key, iv);
      d.setAuthTag(whole.subarray(size));
      expect(Buffer.concat([d.update(whole.subarray(0, size)), d.final()]).equals(plain)).toBe(true);
    }
  });
});
