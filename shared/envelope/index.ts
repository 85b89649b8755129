export * from './metadata.js';
export * from './context.js';
export * from './errors.js';
export { prepareEncryption, type PreparedEncryption } from './encrypt.js';
export { parseEnvelope, unwrapDataKey, createDecipherStream, type Envelope } from './decrypt.js';
export { openStoredMessage, copyStoredMessage, ObjectNotFoundError, type StoredMessage } from './object.js';
