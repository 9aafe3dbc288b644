/**
 * Which S3 failures are worth retrying, and how long to wait. Pure except `sleep`.
 *
 * Retried: 5xx, 429/503 throttling (SlowDown), 408 / RequestTimeout, our own per-attempt timeout,
 * connection resets and refusals, DNS hiccups. Not retried: 501 NotImplemented, the rest of 4xx
 * (AccessDenied, NoSuchBucket, NoSuchUpload, InvalidPart, EntityTooSmall, ...) and programming errors.
 */
const RETRY_NAMES = new Set([
  'SlowDown', 'Throttling', 'ThrottlingException', 'ThrottledException', 'RequestThrottled',
  'RequestThrottledException', 'TooManyRequestsException', 'ProvisionedThroughputExceededException',
  'RequestLimitExceeded', 'BandwidthLimitExceeded', 'RequestTimeout', 'RequestTimeoutException',
  'InternalError', 'ServiceUnavailable', 'TimeoutError', 'AttemptTimeout',
]);

const RETRY_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN',
  'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET',
]);

export interface Classified {
  retry: boolean;
  /** Short label for logs and metrics (bounded set). */
  kind: 'throttle' | 'server' | 'timeout' | 'network' | 'client' | 'unknown';
  status?: number;
}

export function classifyS3Error(err: unknown): Classified {
  const e = (err ?? {}) as { name?: string; code?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown; cause?: unknown };
  const status = e.$metadata?.httpStatusCode;
  const name = e.name ?? '';
  if (name === 'SlowDown' || name.includes('Throttl') || status === 429) return { retry: true, kind: 'throttle', status };
  if (name === 'TimeoutError' || name === 'AttemptTimeout' || name === 'RequestTimeout' || e.code === 'ETIMEDOUT' || status === 408) {
    return { retry: true, kind: 'timeout', status };
  }
  // 501: the store does not implement what was asked (Swift: tagging, aws:kms); asking again cannot help.
  if (status === 501 || name === 'NotImplemented') return { retry: false, kind: 'client', status };
  if (typeof status === 'number' && status >= 500) return { retry: true, kind: 'server', status };
  if (typeof status === 'number' && status >= 400) return { retry: RETRY_NAMES.has(name), kind: RETRY_NAMES.has(name) ? 'server' : 'client', status };
  if ((e.code && RETRY_CODES.has(e.code)) || RETRY_NAMES.has(name)) return { retry: true, kind: 'network', status };
  if (e.$retryable) return { retry: true, kind: 'network', status };
  // A response the SDK could not parse (a proxy's HTML error page, a truncated body) has no status.
  if (name === 'Error' && /socket hang up|premature close|ECONNRESET|aborted/i.test(String((err as Error).message))) {
    return { retry: true, kind: 'network' };
  }
  if (e.cause && e.cause !== err) {
    const c = classifyS3Error(e.cause);
    if (c.retry) return c;
  }
  return { retry: false, kind: name ? 'client' : 'unknown', status };
}

/** "Full jitter" exponential backoff: uniform in [0, min(cap, base * 2^attempt)], at least 1/4 of it. */
export function backoffMs(attempt: number, baseMs: number, capMs: number, rand: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
  return Math.round(ceiling * (0.25 + 0.75 * rand()));
}

/** Resolves after `ms`, or early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
