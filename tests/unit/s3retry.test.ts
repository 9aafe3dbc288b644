import { backoffMs, classifyS3Error } from '../../src/storage/s3/retry';

const s3err = (name: string, status?: number): Error => Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });
const netErr = (code: string): Error => Object.assign(new Error(code), { code });

describe('S3 retry classification', () => {
  test.each([
    ['SlowDown 503', s3err('SlowDown', 503), 'throttle'],
    ['429', s3err('TooManyRequests', 429), 'throttle'],
    ['InternalError 500', s3err('InternalError', 500), 'server'],
    ['ServiceUnavailable 503', s3err('ServiceUnavailable', 503), 'server'],
    ['502 from a proxy with no S3 code', s3err('Unknown', 502), 'server'],
    ['RequestTimeout 400', s3err('RequestTimeout', 400), 'timeout'],
    ['handler TimeoutError', Object.assign(new Error('timed out'), { name: 'TimeoutError', code: 'ETIMEDOUT' }), 'timeout'],
    ['ECONNRESET', netErr('ECONNRESET'), 'network'],
    ['ECONNREFUSED', netErr('ECONNREFUSED'), 'network'],
    ['EPIPE', netErr('EPIPE'), 'network'],
    ['EAI_AGAIN', netErr('EAI_AGAIN'), 'network'],
    ['socket hang up', new Error('socket hang up'), 'network'],
    ['SDK-marked retryable', Object.assign(new Error('x'), { name: 'Whatever', $retryable: {} }), 'network'],
  ])('%s is retried', (_label, err, kind) => {
    expect(classifyS3Error(err)).toMatchObject({ retry: true, kind });
  });

  test.each([
    ['AccessDenied 403', s3err('AccessDenied', 403)],
    ['NotImplemented 501 (Swift: tagging, aws:kms)', s3err('NotImplemented', 501)],
    ['NoSuchBucket 404', s3err('NoSuchBucket', 404)],
    ['NoSuchUpload 404', s3err('NoSuchUpload', 404)],
    ['InvalidPart 400', s3err('InvalidPart', 400)],
    ['EntityTooSmall 400', s3err('EntityTooSmall', 400)],
    ['a bug', new TypeError('x is undefined')],
  ])('%s is not retried', (_label, err) => {
    expect(classifyS3Error(err).retry).toBe(false);
  });

  test('backoff: exponential ceiling with jitter, capped', () => {
    expect(backoffMs(0, 200, 10_000, () => 1)).toBe(200);
    expect(backoffMs(0, 200, 10_000, () => 0)).toBe(50);
    expect(backoffMs(3, 200, 10_000, () => 1)).toBe(1600);
    expect(backoffMs(10, 200, 10_000, () => 1)).toBe(10_000);
    expect(backoffMs(50, 200, 10_000, () => 0.5)).toBe(6250);
    for (let i = 0; i < 100; i++) {
      const b = backoffMs(i % 12, 250, 10_000);
      expect(b).toBeGreaterThanOrEqual(0);
      expect(b).toBeLessThanOrEqual(10_000);
    }
  });
});
