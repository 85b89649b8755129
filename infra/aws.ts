/**
 * Provider resource bindings, each by deep path: the package barrel loads every AWS resource (~5 s, ~760 MB).
 */
export { AwsProvider, type AwsProviderConfig, type AwsProviderEndpoints } from '@cdktf/provider-aws/lib/provider/index.js';
export { S3Bucket } from '@cdktf/provider-aws/lib/s3-bucket/index.js';
export { S3BucketPolicy } from '@cdktf/provider-aws/lib/s3-bucket-policy/index.js';
export { S3BucketPublicAccessBlock } from '@cdktf/provider-aws/lib/s3-bucket-public-access-block/index.js';
export { S3BucketOwnershipControls } from '@cdktf/provider-aws/lib/s3-bucket-ownership-controls/index.js';
export { S3BucketServerSideEncryptionConfigurationA as S3BucketServerSideEncryption } from '@cdktf/provider-aws/lib/s3-bucket-server-side-encryption-configuration/index.js';
export { S3BucketLifecycleConfiguration } from '@cdktf/provider-aws/lib/s3-bucket-lifecycle-configuration/index.js';
export { KmsKey } from '@cdktf/provider-aws/lib/kms-key/index.js';
export { KmsAlias } from '@cdktf/provider-aws/lib/kms-alias/index.js';
export { KmsKeyPolicy } from '@cdktf/provider-aws/lib/kms-key-policy/index.js';
export { SnsTopic } from '@cdktf/provider-aws/lib/sns-topic/index.js';
export { SnsTopicPolicy } from '@cdktf/provider-aws/lib/sns-topic-policy/index.js';
export { IamRole } from '@cdktf/provider-aws/lib/iam-role/index.js';
export { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy/index.js';
export { IamPolicy } from '@cdktf/provider-aws/lib/iam-policy/index.js';
export { IamRolePolicyAttachment } from '@cdktf/provider-aws/lib/iam-role-policy-attachment/index.js';
export { SesReceiptRuleSet } from '@cdktf/provider-aws/lib/ses-receipt-rule-set/index.js';
export { SesReceiptRule, type SesReceiptRuleS3Action, type SesReceiptRuleStopAction } from '@cdktf/provider-aws/lib/ses-receipt-rule/index.js';
export { SesActiveReceiptRuleSet } from '@cdktf/provider-aws/lib/ses-active-receipt-rule-set/index.js';
export { SesDomainIdentity } from '@cdktf/provider-aws/lib/ses-domain-identity/index.js';
export { SesDomainDkim } from '@cdktf/provider-aws/lib/ses-domain-dkim/index.js';
export { Route53Record } from '@cdktf/provider-aws/lib/route53-record/index.js';
