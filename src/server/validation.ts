import { TesseraError } from '../errors';

export const ROOM_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export function validateRoomId(v: unknown): string {
  if (typeof v !== 'string' || !ROOM_ID_RE.test(v)) {
    throw new TesseraError('REC_ERR_INVALID_ROOM_ID', 'room id must be 1–64 characters of A-Z a-z 0-9 _ -');
  }
  return v;
}

export function validateName(v: unknown): string {
  if (v === undefined || v === null || v === '') return 'Guest';
  if (typeof v !== 'string') throw new TesseraError('REC_ERR_BAD_REQUEST', 'name must be a string');
  // eslint-disable-next-line no-control-regex
  const name = v.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  if (name.length === 0 || name.length > 64) throw new TesseraError('REC_ERR_BAD_REQUEST', 'name must be 1–64 characters');
  return name;
}

export function validateLayout(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !/^[A-Za-z0-9_-]{1,32}$/.test(v)) throw new TesseraError('REC_ERR_UNKNOWN_LAYOUT', 'layout must be a preset name');
  return v;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
