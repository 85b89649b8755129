import { z } from 'zod';
import { SES_LIMITS } from '../ses/limits.js';
import { GatewaySettingsSchema } from './gateway.js';
import { InfraSettingsSchema } from './infra.js';
import { checkSesRules } from './ses-rules.js';

/**
 * One receiving setup — the file `cdktf deploy` and `mailroom gateway` both read. Field names follow the SES API
 * (`S3Action.BucketName`, `ObjectKeyPrefix`, `KmsKeyArn`, `TopicArn`, `IamRoleArn`) in camelCase.
 */
export const S3ActionSchema = z
  .object({
    bucketName: z.string().describe('Bucket SES (and the gateway) writes each message to.'),
    objectKeyPrefix: z
      .string()
      .default('')
      .describe('Key prefix; SES inserts "/" before the message id unless the prefix ends with one.'),
    kmsKeyArn: z
      .string()
      .optional()
      .describe('Encrypt each message client-side (S3 Encryption Client format) under this key: a full key ARN, or arn:aws:kms:<region>:<account>:alias/aws/ses.'),
    topicArn: z.string().optional().describe('SNS topic notified after each message is stored.'),
    iamRoleArn: z
      .string()
      .optional()
      .describe('Role SES assumes to write the bucket, use the key and publish to the topic; required when the bucket is in another region.'),
    bucketRegion: z
      .string()
      .optional()
      .describe('Region of the bucket when it is not the receiving region (requires iamRoleArn).'),
  })
  .strict();

/** `StopAction` of the SES API; its optional TopicArn (a stop notification) is not offered. */
export const StopActionSchema = z
  .object({
    scope: z.literal('RuleSet').default('RuleSet').describe('The only scope SES has: stop evaluating the rule set.'),
  })
  .strict();

export const ReceiptRuleSchema = z
  .object({
    name: z.string().describe('Receipt rule name: letters, digits, _ - . ; starts and ends alphanumeric; ≤ 64 chars.'),
    enabled: z.boolean().default(true).describe('Whether the rule runs. Defaults to true here (the SES API default is false).'),
    recipients: z
      .array(z.string())
      .default([])
      .describe('Recipient conditions: user@example.com, example.com or .example.com (subdomains). Empty: every recipient.'),
    tlsPolicy: z.enum(['Require', 'Optional']).default('Optional').describe('Require: mail not received over TLS is refused.'),
    scanEnabled: z.boolean().default(false).describe('Scan for spam and viruses and add the X-SES-*-Verdict headers.'),
    s3Action: S3ActionSchema,
    stopAction: StopActionSchema.optional().describe(
      "SES's Stop action, after the S3 action: no later rule of the set runs for the recipients this rule matched (other recipients of the same message are not affected).",
    ),
  })
  .strict();

export const ReceivingConfigSchema = z
  .object({
    $schema: z.string().optional(),
    region: z.string().describe('Receiving region: the rule set, KMS key and SNS topic live here.'),
    accountId: z.string().describe('12-digit AWS account id that owns the rule set (aws:ses:source-account).'),
    ruleSetName: z.string().describe('Receipt rule set name: letters, digits, _ and - ; ≤ 64 chars.'),
    receivingRegions: z
      .array(z.string())
      .optional()
      .describe('Overrides the built-in list of regions where SES receiving exists.'),
    maxMessageSize: z
      .number()
      .int()
      .positive()
      .default(SES_LIMITS.maxMessageBytes)
      .describe('Largest message accepted, in bytes, headers included (SES: 40 MB).'),
    rules: z.array(ReceiptRuleSchema).describe('Receipt rules, evaluated in this order.'),
    infra: InfraSettingsSchema.optional(),
    gateway: GatewaySettingsSchema.optional(),
  })
  .strict()
  .superRefine(checkSesRules);

export type ReceivingConfig = z.output<typeof ReceivingConfigSchema>;
export type ReceivingConfigInput = z.input<typeof ReceivingConfigSchema>;
export type ReceiptRule = ReceivingConfig['rules'][number];
export type S3Action = ReceiptRule['s3Action'];
