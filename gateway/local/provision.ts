import { CreateAliasCommand, CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { CreateBucketCommand, S3Client, type BucketLocationConstraint } from '@aws-sdk/client-s3';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { serviceEndpoint } from '../aws/endpoints.js';
import type { ReceivingConfig } from '../../shared/config/index.js';
import { isAwsManagedSesKey, parseArn } from '../../shared/ses/arn.js';

export interface Provisioned {
  /** The config with what only exists now filled in (created KMS key ARNs; topic ARNs as the emulator named them). */
  config: ReceivingConfig;
  notes: string[];
  /** SQS queue subscribed to every topic (raw delivery off: messages are SNS envelopes, Subject included). */
  watchQueueUrl?: string;
}

/**
 * Creates, in an AWS emulator, what the config's rules deliver to: buckets, the keys `infra.createKmsKeys` asks for,
 * topics, and one SQS queue subscribed to every topic so the arriving notifications can be shown.
 *
 * A created key's ARN cannot be known in advance, so — exactly as the infra stack's `gateway_config` output does —
 * the rules bound to it through `infra.createKmsKeys` get its ARN filled in, in memory only; the file is untouched.
 */
export async function provisionLocal(input: ReceivingConfig): Promise<Provisioned> {
  const config = structuredClone(input);
  const notes: string[] = [];
  const region = config.region;
  const creds = { region, ...(process.env.AWS_ACCESS_KEY_ID ? {} : { credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } }) };
  const s3 = new S3Client({ ...creds, ...serviceEndpoint('s3') });
  const kms = new KMSClient({ ...creds, ...serviceEndpoint('kms') });
  const sns = new SNSClient({ ...creds, ...serviceEndpoint('sns') });
  const sqs = new SQSClient({ ...creds, ...serviceEndpoint('sqs') });
  try {
    for (const rule of config.rules) {
      const a = rule.s3Action;
      const bucketRegion = a.bucketRegion ?? region;
      try {
        await s3.send(
          new CreateBucketCommand({ Bucket: a.bucketName, ...(bucketRegion !== 'us-east-1' ? { CreateBucketConfiguration: { LocationConstraint: bucketRegion as BucketLocationConstraint } } : {}) }),
        );
      } catch (err) {
        const name = (err as Error).name;
        if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw err;
      }
    }
    for (const [name, key] of Object.entries(config.infra?.createKmsKeys ?? {})) {
      const meta = (await kms.send(new CreateKeyCommand({ Description: key.description ?? `mailroom local key ${name}` }))).KeyMetadata!;
      if (key.alias) await kms.send(new CreateAliasCommand({ AliasName: key.alias, TargetKeyId: meta.KeyId! })).catch(() => undefined);
      for (const ruleName of key.rules) {
        const rule = config.rules.find((r) => r.name === ruleName);
        if (rule && !rule.s3Action.kmsKeyArn) rule.s3Action.kmsKeyArn = meta.Arn!;
      }
      notes.push(`KMS key "${name}" created: ${meta.Arn} (rules ${key.rules.join(', ')} encrypt with it)`);
    }
    // In AWS every account has alias/aws/ses; an emulator has none until one is made, so a key stands in for it.
    if (config.rules.some((r) => r.s3Action.kmsKeyArn !== undefined && isAwsManagedSesKey(r.s3Action.kmsKeyArn))) {
      const meta = (await kms.send(new CreateKeyCommand({ Description: 'stands in for the AWS-managed key alias/aws/ses' }))).KeyMetadata!;
      await kms.send(new CreateAliasCommand({ AliasName: 'alias/aws/ses', TargetKeyId: meta.KeyId! })).catch(() => undefined);
      notes.push(`KMS alias alias/aws/ses created in the emulator (${meta.Arn}); in AWS it is the account's AWS-managed key`);
    }
    const topics = new Map<string, string>();
    for (const rule of config.rules) {
      const arn = rule.s3Action.topicArn;
      if (!arn) continue;
      const topicName = parseArn(arn)?.resource ?? arn;
      let created = topics.get(arn);
      if (!created) {
        created = (await sns.send(new CreateTopicCommand({ Name: topicName }))).TopicArn!;
        topics.set(arn, created);
        if (created !== arn) notes.push(`topic ${arn} exists here as ${created} (the emulator's account); the rule uses that`);
      }
      rule.s3Action.topicArn = created;
    }
    let watchQueueUrl: string | undefined;
    if (topics.size > 0) {
      watchQueueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'mailroom-local-watch' }))).QueueUrl!;
      const qArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: watchQueueUrl, AttributeNames: ['QueueArn'] }))).Attributes!.QueueArn!;
      for (const topicArn of new Set(topics.values())) await sns.send(new SubscribeCommand({ TopicArn: topicArn, Protocol: 'sqs', Endpoint: qArn }));
    }
    return { config, notes, ...(watchQueueUrl ? { watchQueueUrl } : {}) };
  } finally {
    for (const c of [s3, kms, sns, sqs]) c.destroy();
  }
}
