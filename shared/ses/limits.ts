/** SES receiving limits (docs/ses-format.md#limits). One place, so the infra and the gateway refuse the same things. */
export const SES_LIMITS = {
  /** Largest message SES delivers to S3, headers included; larger mail bounces. */
  maxMessageBytes: 40 * 1024 * 1024,
  recipientsPerRule: 100,
  rulesPerRuleSet: 200,
  actionsPerRule: 10,
  nameMaxLength: 64,
  /** Header block size after which a notification's `headers` list is cut off (`headersTruncated`). */
  notificationHeaderBytes: 10 * 1024,
} as const;
