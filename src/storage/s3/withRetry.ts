import { TesseraError } from '../../errors';
import type { Logger } from '../../logger';
import { metrics } from '../../metrics';
import { backoffMs, classifyS3Error, sleep } from './retry';

export interface RetryOptions {
  /** Label for logs. */
  op: string;
  /** Wall-clock deadline (ms since epoch), read before every wait: Infinity = keep trying. */
  deadline: () => number;
  /** Hard limit per attempt; the request is aborted when it passes (a hung request never hangs us). */
  attemptTimeoutMs: number;
  baseMs: number;
  capMs: number;
  /** Aborts everything (the owner closed). */
  signal?: AbortSignal;
  /** Read at each backoff wait: aborting it ends that wait early (the next attempt goes now). */
  wakeSignal?: () => AbortSignal;
  logger: Logger;
}

/** Retry options from the S3 settings: every S3 call of the process retries the same way. */
export function retryOptions(
  cfg: { requestTimeoutMs: number; retryBaseMs: number; retryMaxMs: number },
  o: Pick<RetryOptions, 'op' | 'deadline' | 'signal' | 'wakeSignal' | 'logger'>,
): RetryOptions {
  // The SDK's own requestTimeout only warns; the extra second lets it fire first when it does.
  return { ...o, attemptTimeoutMs: cfg.requestTimeoutMs + 1000, baseMs: cfg.retryBaseMs, capMs: cfg.retryMaxMs };
}

/**
 * Run an S3 call until it succeeds, a non-retryable error comes back, or the deadline passes
 * (then REC_ERR_UPLOAD). Each attempt gets its own AbortSignal that fires after
 * `attemptTimeoutMs`, on top of the HTTP handler's own requestTimeout.
 */
export async function withRetry<T>(fn: (signal: AbortSignal) => Promise<T>, o: RetryOptions): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    if (o.signal?.aborted) throw new TesseraError('REC_ERR_UPLOAD', `${o.op}: cancelled (storage closed)`);
    const ac = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, o.attemptTimeoutMs);
    const cancel = (): void => ac.abort();
    o.signal?.addEventListener('abort', cancel, { once: true });
    try {
      return await fn(ac.signal);
    } catch (err) {
      if (o.signal?.aborted) throw new TesseraError('REC_ERR_UPLOAD', `${o.op}: cancelled (storage closed)`, { cause: err });
      const c = timedOut ? { retry: true, kind: 'timeout' as const, status: undefined } : classifyS3Error(err);
      metrics.uploadErrors.inc();
      const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      if (!c.retry) {
        o.logger.warn({ op: o.op, attempt, kind: c.kind, status: c.status, err: message }, 's3 request failed');
        throw err;
      }
      const wait = backoffMs(attempt, o.baseMs, o.capMs);
      if (Date.now() + wait > o.deadline()) {
        o.logger.warn({ op: o.op, attempt, kind: c.kind, status: c.status, err: message }, 's3 request failed, deadline passed');
        throw new TesseraError('REC_ERR_UPLOAD', `${o.op} failed after ${attempt + 1} attempts: ${message}`, { cause: err });
      }
      o.logger.info({ op: o.op, attempt, kind: c.kind, status: c.status, waitMs: wait, err: message }, 's3 request failed, retrying');
      const wake = o.wakeSignal?.();
      await sleep(wait, wake && o.signal ? AbortSignal.any([o.signal, wake]) : (wake ?? o.signal));
    } finally {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', cancel);
    }
  }
}
