/** Error classes as the upload path's errors arrive (the project's ServiceError classes and the SDK's), and SMTP's. */
import { KMSServiceException } from '@aws-sdk/client-kms';
import { describe, expect, it } from 'vitest';
import { classifyAwsError, classifySmtpError, LoadTimeoutError, replyCode } from '../../load/errors.js';
import { KmsError } from '../../gateway/aws/kms-data-key.js';
import { S3Error } from '../../gateway/aws/s3-put-object.js';
import { SnsError } from '../../gateway/aws/sns-publish-batch.js';

describe('AWS errors', () => {
  it('S3 503 SlowDown, KMS and SNS throttling each have their class; others keep service and name', () => {
    expect(classifyAwsError(new S3Error('SlowDown', 'Please reduce your request rate.', { httpStatusCode: 503 }), 's3', 'store')).toMatchObject({ class: 's3-slowdown', code: 'SlowDown 503' });
    expect(classifyAwsError(new S3Error('ServiceUnavailable', 'x', { httpStatusCode: 503 }), 's3', 'store').class).toBe('s3-slowdown');
    expect(classifyAwsError(new KmsError('ThrottlingException', 'Rate exceeded', { httpStatusCode: 400 }), 'kms', 'store')).toMatchObject({ class: 'kms-throttling', code: 'ThrottlingException' });
    const sdk = new KMSServiceException({ name: 'ThrottlingException', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: 'Rate exceeded' });
    expect(classifyAwsError(sdk, 'kms', 'store').class).toBe('kms-throttling');
    expect(classifyAwsError(new SnsError('Throttled', 'Rate exceeded', { httpStatusCode: 400 }), 'sns', 'publish')).toMatchObject({ class: 'sns-throttling', code: 'Throttled', stage: 'publish' });
    expect(classifyAwsError(new SnsError('KMSThrottling', 'x', { httpStatusCode: 400 }), 'sns', 'publish').class).toBe('sns-throttling');
    expect(classifyAwsError(new S3Error('AccessDenied', 'denied', { httpStatusCode: 403 }), 's3', 'store')).toMatchObject({ class: 's3', code: 'AccessDenied 403' });
    expect(classifyAwsError(new KmsError('NotFoundException', 'no key', { httpStatusCode: 400 }), 'kms', 'store')).toMatchObject({ class: 'kms', code: 'NotFoundException 400' });
    expect(classifyAwsError(new S3Error('ECONNREFUSED', 'connect ECONNREFUSED', { httpStatusCode: 599 }), 's3', 'store')).toMatchObject({ class: 'connection', code: 's3 ECONNREFUSED' });
    expect(classifyAwsError(new SnsError('Error', 'connect ECONNREFUSED 127.0.0.1:4566', { httpStatusCode: 599 }), 'sns', 'publish')).toMatchObject({ class: 'connection', code: 'sns ECONNREFUSED' });
    expect(classifyAwsError(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), 's3', 'store')).toMatchObject({ class: 'connection', code: 's3 ECONNRESET' });
    expect(classifyAwsError(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }), 'sns', 'publish').class).toBe('timeout');
    expect(classifyAwsError(new LoadTimeoutError('store', 5000), 's3', 'store')).toMatchObject({ class: 'timeout', code: 'store' });
  });
});

describe('SMTP errors', () => {
  it('reply code and enhanced code; connection failures by their errno; our timeouts', () => {
    expect(replyCode('451 4.3.0 Error: queue file write error')).toBe('451 4.3.0');
    expect(replyCode('421-4.7.0 too many\n421 4.7.0 connections')).toBe('421 4.7.0');
    expect(replyCode('550 Mailbox unavailable')).toBe('550');
    const e451 = Object.assign(new Error('Message failed: 451 4.3.0 Try later'), { code: 'EMESSAGE', responseCode: 451, response: '451 4.3.0 Try later', command: 'DATA' });
    expect(classifySmtpError(e451)).toMatchObject({ class: 'smtp-4xx', code: '451 4.3.0', stage: 'DATA' });
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ESOCKET', originalCode: 'ECONNREFUSED', command: 'CONN' });
    expect(classifySmtpError(refused)).toMatchObject({ class: 'connection', code: 'ECONNREFUSED', stage: 'CONN' });
    expect(classifySmtpError(Object.assign(new Error('Greeting never received'), { code: 'ETIMEDOUT', command: 'CONN' }))).toMatchObject({ class: 'timeout', stage: 'CONN' });
    expect(classifySmtpError(new LoadTimeoutError('DATA', 1000))).toMatchObject({ class: 'timeout', code: 'DATA' });
    expect(classifySmtpError(new LoadTimeoutError('run end', 1000)).message).toMatch(/still unanswered when the run ended/);
  });
});
