import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { kmsClient, s3Client } from '../../gateway/aws/clients.js';
import { parseS3Url } from '../../gateway/aws/s3-url.js';
import { EnvelopeError, ObjectNotFoundError, copyStoredMessage, openStoredMessage } from '../../shared/envelope/index.js';
import { parse } from '../command/args.js';
import { explainAwsError } from '../../gateway/aws/explain-error.js';
import { UsageError, type Command } from '../command/command.js';

export const get: Command = {
  name: 'get',
  summary: 'write a stored message to stdout or a file, decrypting it',
  usage: `usage: mailroom get s3://<bucket>/<key> [-o FILE]

Writes the message SES (or the gateway) stored to stdout, or to FILE. Objects with the S3 Encryption Client
envelope (rules with a KMS key) are decrypted; tampered objects are refused with exit 1 (with -o, FILE is then not
created; on stdout, output already written must be discarded).

Environment: AWS_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_KMS (path-style S3 whenever an
endpoint is set), and the standard AWS credential chain.`,
  async run(args) {
    const { values, positionals } = parse(args, { output: { type: 'string', short: 'o' } });
    if (positionals.length !== 1) throw new UsageError('give exactly one s3://bucket/key');
    let target: { bucket: string; key: string };
    try {
      target = parseS3Url(positionals[0]!);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const s3 = s3Client();
    const kmsByRegion = new Map<string, ReturnType<typeof kmsClient>>();
    const kmsFor = (region: string | undefined) => {
      const r = region ?? '';
      if (!kmsByRegion.has(r)) kmsByRegion.set(r, kmsClient(region ? { region } : {}));
      return kmsByRegion.get(r)!;
    };
    // Write beside the target and rename only after the tag verified, so FILE never holds unauthenticated bytes.
    const partial = values.output ? `${values.output}.partial-${process.pid}` : undefined;
    try {
      const msg = await openStoredMessage(s3, kmsFor, target.bucket, target.key);
      await copyStoredMessage(msg, partial ? createWriteStream(partial, { flags: 'wx' }) : process.stdout);
      if (partial) await rename(partial, values.output!);
      return 0;
    } catch (err) {
      if (partial) await rm(partial, { force: true });
      if (err instanceof EnvelopeError || err instanceof ObjectNotFoundError) {
        console.error(`mailroom get: ${err.message}`);
        return 1;
      }
      const explained = explainAwsError(err);
      if (explained) {
        console.error(`mailroom get: ${explained}`);
        return 1;
      }
      throw err;
    } finally {
      s3.destroy();
      for (const k of kmsByRegion.values()) k.destroy();
    }
  },
};
