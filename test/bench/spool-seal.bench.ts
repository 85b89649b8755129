/**
 * npm run bench:spool-seal — what sealing a spool file costs, per algorithm suite: the one the gateway uses
 * (AES-256-GCM, HKDF-SHA512, key commitment, no signature) next to the Encryption SDK's default (the same plus an
 * ECDSA P-384 signature), for a file of one 10 KB message (a quiet gateway: a round per message) and a batch file of
 * 20 (a busy one), sealed and opened — as the gateway seals them: the batch in one write, its frame size. CPU time of
 * this process, one data key from a cache (as the gateway has it), no KMS. Bounded: BENCH_SEAL_FILES files per case
 * (default 400).
 */
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import {
  AlgorithmSuiteIdentifier,
  buildClient,
  CommitmentPolicy,
  getLocalCryptographicMaterialsCache,
  NodeCachingMaterialsManager,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
} from '@aws-crypto/client-node';
import { SEAL_FRAME_BYTES } from '../../gateway/spool/seal.js';

const FILES = Number(process.env.BENCH_SEAL_FILES ?? 400);
const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
const keyring = new RawAesKeyringNode({ keyName: 'bench', keyNamespace: 'mailroom-spool', unencryptedMasterKey: new Uint8Array(randomBytes(32)), wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING });
const cmm = new NodeCachingMaterialsManager({ backingMaterials: keyring, cache: getLocalCryptographicMaterialsCache(100), maxAge: 600_000, maxMessagesEncrypted: 1e9 });
const context = { 'mailroom:purpose': 'spool', 'mailroom:node': 'bench' };

const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

async function measure(suiteId: AlgorithmSuiteIdentifier, plaintext: Buffer): Promise<{ seal: number; open: number; bytes: number }> {
  const opts = { suiteId, encryptionContext: context, frameLength: SEAL_FRAME_BYTES, plaintextLength: plaintext.length };
  let sealed = (await encrypt(cmm, plaintext, opts)).result;
  for (let i = 0; i < 50; i++) sealed = (await encrypt(cmm, plaintext, opts)).result; // warm-up
  let t = cpuUs();
  for (let i = 0; i < FILES; i++) await encrypt(cmm, plaintext, opts);
  const seal = (cpuUs() - t) / FILES;
  for (let i = 0; i < 50; i++) await decrypt(cmm, sealed);
  t = cpuUs();
  for (let i = 0; i < FILES; i++) await decrypt(cmm, sealed);
  const open = (cpuUs() - t) / FILES;
  return { seal, open, bytes: sealed.length - plaintext.length };
}

const suites = [
  ['AES-256-GCM + HKDF + commitment (the gateway\'s)', AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY],
  ['the same + ECDSA P-384 signature (the SDK\'s default)', AlgorithmSuiteIdentifier.ALG_AES256_GCM_IV12_TAG16_HKDF_SHA512_COMMIT_KEY_ECDSA_P384],
] as const;
const files = [
  ['1 × 10 KB', 1],
  ['20 × 10 KB', 20],
] as const;

console.log(`spool sealing — ${new Date().toISOString()}, ${cpus().length} × ${cpus()[0]?.model.trim()}, node ${process.version}, ${FILES} files per case, CPU µs per file`);
console.log(`${'suite'.padEnd(52)}  ${'file'.padEnd(11)}  ${'seal'.padStart(8)}  ${'open'.padStart(8)}  ${'per message sealed'.padStart(18)}  overhead`);
for (const [name, id] of suites) {
  for (const [label, count] of files) {
    const r = await measure(id, randomBytes(count * 10 * 1024));
    console.log(`${name.padEnd(52)}  ${label.padEnd(11)}  ${r.seal.toFixed(0).padStart(8)}  ${r.open.toFixed(0).padStart(8)}  ${(r.seal / count).toFixed(0).padStart(18)}  ${r.bytes} B`);
  }
}
