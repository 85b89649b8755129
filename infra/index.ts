export { MailroomStack, loadInfraConfig, type MailroomStackProps } from './stack.js';
export { MailroomReceiving, type MailroomReceivingProps } from './receiving.js';
export { S3Action, type S3ActionProps, type BoundS3Action } from './s3-action.js';
export { GatewayWriterAccess, type GatewayWriterAccessProps, type GatewayWriterRule } from './gateway-writer.js';
export { DeliveryBucket, DeliveryKey, DeliveryRole, DeliveryTopic, type DeliveryResource, type AccountContext } from './resources.js';
export { localEndpointSettings, STACK_SERVICES } from './local-endpoints.js';
export { policyJson, type PolicyStatement, type PolicyDocument } from './policy.js';
