import { createHmac, timingSafeEqual } from 'node:crypto';
import { TesseraError } from '../errors';

/**
 * Room tokens: HS256 JWTs signed with AUTH_SECRET, claims `{ room, name, role, exp, sub? }`.
 * `role` is `host` (may record) or `guest` (may not). `exp` is required and at most
 * TESSERA_ROOM_TOKEN_MAX_TTL_SEC ahead: a token without one was valid for ever. `sub` (else
 * `name`) is the identity, which holds one seat in a room. No token library: HS256 is a dozen
 * lines.
 */
export type Role = 'host' | 'guest';
export interface RoomClaims {
  room: string;
  name: string;
  role: Role;
  exp: number;
  /** Who this is (one seat per identity); `name` when absent. */
  sub?: string;
  /** On a host's token: every recording this host starts asks for consent. */
  consent?: 'required';
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

export function signRoomToken(claims: RoomClaims, secret: string): string {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

export function verifyRoomToken(token: unknown, secret: string, now = Date.now(), maxTtlSec = 24 * 3600): RoomClaims {
  const unauthorized = (why: string) => new TesseraError('REC_ERR_UNAUTHORIZED', `room token ${why}`);
  if (typeof token !== 'string' || token.length > 4096) throw unauthorized('missing');
  const parts = token.split('.');
  if (parts.length !== 3) throw unauthorized('malformed');
  const [head, body, sig] = parts;
  let header: { alg?: string };
  let claims: Partial<RoomClaims>;
  try {
    header = JSON.parse(Buffer.from(head, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    throw unauthorized('malformed');
  }
  if (header.alg !== 'HS256') throw unauthorized('must be HS256');
  const want = createHmac('sha256', secret).update(`${head}.${body}`).digest();
  const got = Buffer.from(sig, 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want)) throw unauthorized('signature invalid');
  if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) throw unauthorized('lacks exp (expiry, seconds since 1970)');
  if (claims.exp * 1000 < now) throw unauthorized('expired');
  if (claims.exp * 1000 > now + maxTtlSec * 1000) throw unauthorized(`expires more than ${maxTtlSec} s ahead (TESSERA_ROOM_TOKEN_MAX_TTL_SEC)`);
  if (typeof claims.room !== 'string' || typeof claims.name !== 'string') throw unauthorized('lacks room or name');
  if (claims.sub !== undefined && (typeof claims.sub !== 'string' || claims.sub.length === 0 || claims.sub.length > 256)) throw unauthorized('has a sub that is not a string of 1–256 characters');
  return { room: claims.room, name: claims.name, role: claims.role === 'host' ? 'host' : 'guest', exp: claims.exp, ...(claims.sub !== undefined ? { sub: claims.sub } : {}), ...(claims.consent === 'required' ? { consent: 'required' as const } : {}) };
}

/** Constant-time check of `Authorization: Bearer <token>`. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  if (!m) return false;
  const a = Buffer.from(m[1]);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
