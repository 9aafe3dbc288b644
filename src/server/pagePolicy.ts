import type { Config } from '../config';

/**
 * Where a page's `<video>` may load a recording from besides this server: the bucket's presigned
 * URLs, when GET /api/recordings/:id/media answers with a redirect to them (S3 storage). The SDK
 * names the bucket in the host unless path style is forced, so both forms are allowed.
 */
export function mediaOrigins(s3: Pick<Config['s3'], 'bucket' | 'endpoint' | 'region'>): string[] {
  if (!s3.bucket) return [];
  // AWS itself: the SDK's endpoints are under amazonaws.com, and amazonaws.com.cn in China.
  if (!s3.endpoint) return [s3.region.startsWith('cn-') ? 'https://*.amazonaws.com.cn' : 'https://*.amazonaws.com'];
  const u = new URL(s3.endpoint);
  const port = u.port ? `:${u.port}` : '';
  // An address has no subdomains: a bucket in the host needs a name.
  const named = !/^[\d.]+$|^\[/.test(u.hostname);
  return [`${u.protocol}//${u.host}`, ...(named ? [`${u.protocol}//*.${u.hostname}${port}`] : [])];
}

/**
 * The Content-Security-Policy of the HTML pages (the front door, the meeting, the recordings).
 * They load only their own scripts and styles (no inline code), talk only to this server
 * (socket.io's WebSocket included: `'self'` covers ws: and wss: of the same host), and play media
 * from here or the bucket. `frame-ancestors` decides who may frame them: by default only this
 * server, so another site cannot lay the meeting page's Record button or consent dialog under a
 * decoy and have someone click it. A page's XSS, should one appear, could then load nothing and
 * send nothing elsewhere.
 */
export function pagePolicy(config: Pick<Config, 's3' | 'frameAncestors'>): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    ["media-src 'self' blob:", ...mediaOrigins(config.s3)].join(' '),
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    `frame-ancestors ${config.frameAncestors.join(' ')}`,
  ].join('; ');
}
