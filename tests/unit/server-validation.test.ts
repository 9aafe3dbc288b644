import { parseRange } from '../../src/server/app';
import { bearerMatches, signRoomToken, verifyRoomToken } from '../../src/server/auth';
import { validateName, validateRoomId } from '../../src/server/validation';

describe('server validation', () => {
  test('room ids', () => {
    for (const ok of ['a', 'Room_1-x', 'x'.repeat(64)]) expect(validateRoomId(ok)).toBe(ok);
    for (const bad of ['', 'x'.repeat(65), 'a b', 'ä', '../x', 5, null]) {
      expect(() => validateRoomId(bad)).toThrow(expect.objectContaining({ code: 'REC_ERR_INVALID_ROOM_ID' }));
    }
  });
  test('names', () => {
    expect(validateName(undefined)).toBe('Guest');
    expect(validateName('  Ann\u0000 ')).toBe('Ann');
    expect(() => validateName('x'.repeat(65))).toThrow(/1–64/);
  });
  test('ranges', () => {
    expect(parseRange(undefined, 100)).toBeNull();
    expect(parseRange('bytes=0-', 100)).toEqual({ start: 0, end: 99 });
    expect(parseRange('bytes=10-19', 100)).toEqual({ start: 10, end: 19 });
    expect(parseRange('bytes=90-500', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=100-', 100)).toBe('invalid');
    expect(parseRange('bytes=5-2', 100)).toBe('invalid');
    expect(parseRange('items=0-1', 100)).toBe('invalid');
  });
  test('room tokens', () => {
    const t = signRoomToken({ room: 'r1', name: 'Ann', role: 'host', exp: Math.floor(Date.now() / 1000) + 60 }, 's3cret');
    expect(verifyRoomToken(t, 's3cret')).toMatchObject({ room: 'r1', name: 'Ann', role: 'host' });
    expect(() => verifyRoomToken(t, 'other')).toThrow(/signature/);
    expect(() => verifyRoomToken(t + 'x', 's3cret')).toThrow(/signature/);
    const old = signRoomToken({ room: 'r1', name: 'Ann', role: 'guest', exp: 1 }, 's3cret');
    expect(() => verifyRoomToken(old, 's3cret')).toThrow(/expired/);
    expect(() => verifyRoomToken('a.b', 's3cret')).toThrow(/malformed/);
    expect(bearerMatches('Bearer abc', 'abc')).toBe(true);
    expect(bearerMatches('Bearer abd', 'abc')).toBe(false);
    expect(bearerMatches(undefined, 'abc')).toBe(false);
  });
});
