import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Short-lived signed media URLs. A `<video>` cannot send an Authorization header, and an API
 * token in a URL ends up in browser history, server and proxy logs and Referer headers. So a
 * client holding the API token asks `GET /api/recordings/:id/media-url` for a URL that plays that
 * one recording for a few minutes: `…/media?expires=<unix s>&sig=<HMAC-SHA256>`. The key is
 * derived from API_TOKEN, so every process sharing the token accepts every other's URLs, and
 * changing the token revokes them all.
 */
const LABEL = 'tessera media url v1';

function key(apiToken: string): Buffer {
  return createHmac('sha256', apiToken).update(LABEL).digest();
}

function signature(apiToken: string, recordingId: string, expires: number): Buffer {
  return createHmac('sha256', key(apiToken)).update(`${recordingId}\n${expires}`).digest();
}

export function signedMediaPath(apiToken: string, recordingId: string, expires: number): string {
  const sig = signature(apiToken, recordingId, expires).toString('base64url');
  return `/api/recordings/${encodeURIComponent(recordingId)}/media?expires=${expires}&sig=${sig}`;
}

/** Whether `expires` and `sig` (query values) sign this recording's media and are still valid. */
export function mediaSignatureValid(apiToken: string, recordingId: string, expires: unknown, sig: unknown, nowMs = Date.now(), maxTtlSec = 24 * 3600): boolean {
  if (typeof expires !== 'string' || typeof sig !== 'string' || !/^\d{1,12}$/.test(expires)) return false;
  const e = Number(expires);
  if (e * 1000 < nowMs || e * 1000 > nowMs + maxTtlSec * 1000) return false;
  const got = Buffer.from(sig, 'base64url');
  const want = signature(apiToken, recordingId, e);
  return got.length === want.length && timingSafeEqual(got, want);
}
