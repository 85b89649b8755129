import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { DecryptCommand, EncryptCommand, GenerateDataKeyCommand, type DecryptCommandInput, type EncryptCommandInput, type GenerateDataKeyCommandInput, type KMSClient } from '@aws-sdk/client-kms';
import { KmsKeyringNode, RawAesKeyringNode, RawAesWrappingSuiteIdentifier } from '@aws-crypto/client-node';
import type { GatewaySpoolEncryption } from '../../shared/config/gateway.js';
import { ConfigError } from '../../shared/config/index.js';
import { kmsClient } from '../aws/clients.js';
import { RAW_KEY_NAMESPACE, SpoolSeal, type SpoolKey, type SpoolSealOptions } from './seal.js';

/**
 * The key spool files are sealed under, from `gateway.spool.encryption`: a KMS keyring (the SDK's, over a KMS client
 * made as every other mailroom client is: AWS_ENDPOINT_URL, AWS_REGION, the standard credentials) or a raw AES keyring
 * over a key file. Everything a user can get wrong is said at start, with the field and the fix.
 */

const FIELD = 'gateway.spool.encryption';

/** 256 bits; a file of them, or their hex or base64. */
const KEY_BYTES = 32;

/** The key in a key file, checked: a regular file nobody but its owner can read or write, holding 256 random bits. */
export function readKeyFile(path: string, source: string): Buffer {
  const problem = (message: string, fix: string) => new ConfigError(source, [{ path: `${FIELD}.keyFile`, message, fix }]);
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw problem(
        `${path} does not exist`,
        `restore it — mail sealed under it cannot be delivered without it; for a new key (with no sealed mail in the spool): (umask 077 && openssl rand -base64 32 > ${path})`,
      );
    }
    throw problem(`${path} cannot be looked at (${code ?? (err as Error).message})`, 'give the user the gateway runs as access to the directories on its path');
  }
  if (!st.isFile()) throw problem(`${path} is not a regular file`, 'point keyFile at the file holding the key');
  const open = st.mode & 0o066;
  if (open !== 0) {
    const who = [st.mode & 0o060 ? 'its group' : '', st.mode & 0o006 ? 'other users' : ''].filter(Boolean).join(' and ');
    throw problem(`${path} can be ${st.mode & 0o044 ? 'read' : 'written'} by ${who} (mode ${(st.mode & 0o777).toString(8).padStart(3, '0')}): whoever reads it can read every sealed message`, `chmod 600 ${path} (owned by the user the gateway runs as)`);
  }
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw problem(`${path} cannot be read (${code ?? (err as Error).message})`, `make it readable by the user the gateway runs as: chown <that user> ${path} && chmod 600 ${path}`);
  }
  const text = raw.toString('latin1').trim();
  const fix = `write 32 random bytes into it: (umask 077 && openssl rand -base64 32 > ${path}) — their hex, or the raw 32 bytes, also do`;
  // The keyring wants the key in a buffer of its own (not a slice of Node's shared pool), and no other copy about.
  const own = (b: Buffer) => {
    const key = Buffer.alloc(KEY_BYTES);
    b.copy(key);
    b.fill(0);
    raw.fill(0);
    return key;
  };
  if (raw.length === KEY_BYTES) {
    // 32 printable characters are a password, not a key: random bytes are all printable once in about 10^14.
    if (/^[\x20-\x7e]{32}$/.test(raw.toString('latin1'))) throw problem(`${path} holds 32 printable characters, which looks like a password rather than a random key`, fix);
    return own(raw);
  }
  if (/^[0-9a-fA-F]{64}$/.test(text)) return own(Buffer.from(text, 'hex'));
  if (/^[A-Za-z0-9+/]{43}=$/.test(text)) return own(Buffer.from(text, 'base64'));
  throw problem(`${path} holds ${raw.length} bytes, which are not a 256-bit key (32 bytes, 64 hex digits or 44 base64 characters)`, fix);
}

/** A key's fingerprint: names it in each sealed file and in errors, and says nothing about the key. */
export function keyFingerprint(key: Buffer): string {
  return createHash('sha256').update('mailroom spool key\0').update(key).digest('hex').slice(0, 16);
}

/** Why a KMS call failed, and what to do about it. */
function kmsTrouble(name: string, message: string, op: string, arn: string): string {
  const what = `KMS ${op} on ${arn} failed: ${name}: ${message}`;
  switch (name) {
    case 'AccessDeniedException':
      return `${what}: allow the gateway's role kms:GenerateDataKey and kms:Decrypt on the key (IAM policy and key policy)`;
    case 'DisabledException':
      return `${what}: enable the key`;
    case 'KMSInvalidStateException':
      return `${what}: the key is pending deletion or otherwise unusable: cancel its deletion`;
    case 'NotFoundException':
      return `${what}: no such key in that account and region`;
    case 'CredentialsProviderError':
      return `${what}: no AWS credentials found (AWS_PROFILE, AWS_ACCESS_KEY_ID, or an instance/task role)`;
    default:
      return `${what} (KMS unreachable or refusing: check AWS_ENDPOINT_URL / AWS_REGION and the network)`;
  }
}

/** Marks a KMS failure so that it can be found again in the SDK's keyring error, which folds causes into its text. */
const KMS_MARK = '[mailroom-kms]';

/** The KMS calls the SDK's keyring makes, on a client made by aws/clients.ts; failures carry their KMS error name. */
function keyringClient(client: KMSClient) {
  const call = async <T>(op: string, send: () => Promise<T>): Promise<T> => {
    try {
      return await send();
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      // A connection that failed is named by its code (ECONNREFUSED), not by the generic Error.
      const name = e.name === 'Error' && e.code ? e.code : e.name;
      const line = `${KMS_MARK} ${op} ${name} ${e.message.replace(/\s+/g, ' ')}`;
      throw Object.assign(new Error(`KMS ${op}: ${name}: ${e.message}`), { name, stack: line });
    }
  };
  return {
    generateDataKey: (input: GenerateDataKeyCommandInput) => call('GenerateDataKey', () => client.send(new GenerateDataKeyCommand(input))),
    decrypt: (input: DecryptCommandInput) => call('Decrypt', () => client.send(new DecryptCommand(input))),
    encrypt: (input: EncryptCommandInput) => call('Encrypt', () => client.send(new EncryptCommand(input))),
  };
}

function kmsKey(arn: string, requestTimeoutMs: number): SpoolKey {
  const clients = new Map<string, ReturnType<typeof keyringClient>>();
  const clientProvider = (region: string) => {
    let c = clients.get(region);
    if (!c) clients.set(region, (c = keyringClient(kmsClient({ region, requestTimeoutMs }))));
    return c;
  };
  return {
    keyring: 'aws-kms',
    keyId: arn,
    // The SDK's keyring types its client as its own KMS interface; ours has the three calls it makes.
    node: new KmsKeyringNode({ generatorKeyId: arn, clientProvider: clientProvider as unknown as NonNullable<NonNullable<ConstructorParameters<typeof KmsKeyringNode>[0]>['clientProvider']> }),
    describe: `KMS key ${arn}`,
    explain(err) {
      // Folded into the keyring's own error text (Decrypt), or the adapter's error itself (GenerateDataKey).
      const text = [err.message, err.stack ?? ''].find((t) => t.includes(KMS_MARK));
      if (!text) return { kind: 'key', why: `the KMS keyring failed: ${err.message.split('\n')[0]}` };
      const [, op = '?', name = 'Error', ...rest] = text.slice(text.indexOf(KMS_MARK)).split('\n')[0]!.split(' ');
      // The data key's ciphertext itself is not what KMS made (the context is checked before KMS is asked).
      if (name === 'InvalidCiphertextException') return { kind: 'sealed', why: `KMS ${op}: ${name}` };
      return { kind: 'key', why: kmsTrouble(name, rest.join(' '), op, arn) };
    },
  };
}

function rawKey(path: string, source: string): SpoolKey {
  const key = readKeyFile(path, source);
  const fingerprint = keyFingerprint(key);
  return {
    keyring: 'raw-aes',
    keyId: fingerprint,
    node: new RawAesKeyringNode({ keyName: fingerprint, keyNamespace: RAW_KEY_NAMESPACE, unencryptedMasterKey: key, wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING }),
    describe: `the key in ${path} (fingerprint ${fingerprint})`,
    // The file names this key (its fingerprint was checked): a data key it cannot unwrap was tampered with.
    explain: (err) => ({ kind: 'sealed', why: err.message.split('\n')[0]! }),
  };
}

/** The key `gateway.spool.encryption` names: a key file is read and checked here (ConfigError with the fix). */
export function spoolKey(encryption: GatewaySpoolEncryption, opts: { source: string; requestTimeoutMs: number }): SpoolKey {
  if (encryption.kmsKeyArn !== undefined) return kmsKey(encryption.kmsKeyArn, opts.requestTimeoutMs);
  return rawKey(encryption.keyFile!, opts.source);
}

/** The spool's seal for this node under `key` (spoolKey), as `encryption` bounds its data keys. */
export function spoolSeal(encryption: GatewaySpoolEncryption, key: SpoolKey, opts: { nodeId: string; onDataKey?: SpoolSealOptions['onDataKey'] }): SpoolSeal {
  return new SpoolSeal({
    key,
    nodeId: opts.nodeId,
    sealNewFiles: encryption.enabled,
    dataKey: { maxAgeMs: encryption.dataKeyMaxAgeMs, maxFiles: encryption.dataKeyMaxFiles, maxBytes: encryption.dataKeyMaxBytes },
    ...(opts.onDataKey ? { onDataKey: opts.onDataKey } : {}),
  });
}

/** Whether batch files are sealed on a thread of their own: `thread`, "auto" meaning when there is a second CPU. */
export function sealOnThread(encryption: GatewaySpoolEncryption, cpus = availableParallelism()): boolean {
  return encryption.thread === 'yes' || (encryption.thread === 'auto' && cpus > 1);
}

/** The spool's seal for this node, or undefined when `gateway.spool.encryption` is not set. */
export function spoolSealFor(
  encryption: GatewaySpoolEncryption | undefined,
  opts: { source: string; requestTimeoutMs: number; nodeId: string; onDataKey?: SpoolSealOptions['onDataKey'] },
): SpoolSeal | undefined {
  if (!encryption) return undefined;
  return spoolSeal(encryption, spoolKey(encryption, opts), opts);
}
