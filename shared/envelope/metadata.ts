/**
 * The S3 Encryption Client "V2 metadata format" as SES writes it (docs/ses-format.md#object-metadata): seven user-metadata entries on the
 * object itself (S3 adds the `x-amz-meta-` prefix on the wire and the SDK strips it again).
 */
export const META = {
  keyV2: 'x-amz-key-v2',
  iv: 'x-amz-iv',
  cekAlg: 'x-amz-cek-alg',
  wrapAlg: 'x-amz-wrap-alg',
  tagLen: 'x-amz-tag-len',
  unencryptedLength: 'x-amz-unencrypted-content-length',
  matdesc: 'x-amz-matdesc',
} as const;

/** The V1 format's key entry; its presence without key-v2 marks an object we do not read. */
export const META_KEY_V1 = 'x-amz-key';

export const CEK_ALG_GCM = 'AES/GCM/NoPadding';
/** SES's wrap algorithm: legacy KMS, the encryption context is the whole matdesc (docs/ses-format.md#encryption-context). */
export const WRAP_KMS = 'kms';
/** The v2 clients' default: like `kms`, plus `aws:x-amz-cek-alg` inside the context. */
export const WRAP_KMS_CONTEXT = 'kms+context';
export const TAG_BYTES = 16;
export const IV_BYTES = 12;
/** Context key the v2 clients add under `kms+context` to bind the content algorithm to the data key. */
export const CONTEXT_CEK_ALG = 'aws:x-amz-cek-alg';

/** Compact JSON with keys in lexicographic order — how SES (Java's TreeMap) writes x-amz-matdesc. */
export function canonicalMatdesc(context: Record<string, string>): string {
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(context).sort()) sorted[k] = context[k]!;
  return JSON.stringify(sorted);
}

export function hasEnvelope(metadata: Record<string, string> | undefined): boolean {
  return !!metadata && (META.keyV2 in metadata || META_KEY_V1 in metadata);
}
