/** Why a stored message could not be decrypted; `code` lets the CLI and workers react without parsing text. */
export type EnvelopeErrorCode =
  | 'unsupported-envelope'
  | 'malformed-metadata'
  | 'kms-refused'
  | 'authentication-failed'
  | 'length-mismatch';

export class EnvelopeError extends Error {
  constructor(
    readonly code: EnvelopeErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EnvelopeError';
  }
}
