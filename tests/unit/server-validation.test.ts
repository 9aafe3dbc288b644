import { mediaOrigins } from '../../src/server/pagePolicy';
import { parseRange } from '../../src/server/app';
import { bearerMatches, signRoomToken, verifyRoomToken, type RoomClaims } from '../../src/server/auth';
import { ConfigError, loadConfig } from '../../src/config';
import { mediaSignatureValid, signedMediaPath } from '../../src/server/mediaUrl';
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
    // exp is required and bounded; sub, when present, is a short string
    const forever = signRoomToken({ room: 'r1', name: 'Ann', role: 'host' } as RoomClaims, 's3cret');
    expect(() => verifyRoomToken(forever, 's3cret')).toThrow(/lacks exp/);
    const now = Date.now();
    const far = signRoomToken({ room: 'r1', name: 'Ann', role: 'host', exp: Math.floor(now / 1000) + 3601 }, 's3cret');
    expect(() => verifyRoomToken(far, 's3cret', now, 3600)).toThrow(/more than 3600 s ahead/);
    expect(verifyRoomToken(far, 's3cret', now, 7200).exp).toBe(Math.floor(now / 1000) + 3601);
    const badSub = signRoomToken({ room: 'r1', name: 'Ann', role: 'host', exp: Math.floor(now / 1000) + 60, sub: 5 as unknown as string }, 's3cret');
    expect(() => verifyRoomToken(badSub, 's3cret')).toThrow(/sub/);
    expect(bearerMatches('Bearer abc', 'abc')).toBe(true);
    expect(bearerMatches('Bearer abd', 'abc')).toBe(false);
    expect(bearerMatches(undefined, 'abc')).toBe(false);
  });
  test('secrets have a minimum length', () => {
    const short = 'x'.repeat(31);
    const long = 'x'.repeat(32);
    for (const name of ['AUTH_SECRET', 'API_TOKEN']) {
      expect(() => loadConfig({ [name]: short })).toThrow(ConfigError);
      expect(() => loadConfig({ [name]: short })).toThrow(new RegExp(`${name}: must be at least 32 characters`));
      expect(() => loadConfig({ [name]: long })).not.toThrow();
    }
  });
  test('signed media URLs: this recording, until they expire, with this token', () => {
    const tok = 't'.repeat(32);
    const now = 1_800_000_000_000;
    const exp = now / 1000 + 300;
    const q = new URL(signedMediaPath(tok, 'rec1', exp), 'http://x').searchParams;
    const [e, sig] = [q.get('expires'), q.get('sig')];
    expect(mediaSignatureValid(tok, 'rec1', e, sig, now)).toBe(true);
    expect(mediaSignatureValid(tok, 'rec1', e, sig, now + 301_000)).toBe(false); // expired
    expect(mediaSignatureValid(tok, 'rec2', e, sig, now)).toBe(false);
    expect(mediaSignatureValid('u'.repeat(32), 'rec1', e, sig, now)).toBe(false); // token rotated
    expect(mediaSignatureValid(tok, 'rec1', e, sig, now, 60)).toBe(false); // longer than allowed
    expect(mediaSignatureValid(tok, 'rec1', [e], sig, now)).toBe(false);
  });
});

describe('the pages\' media-src: where a presigned recording may be played from', () => {
  const s3 = (o: Partial<{ bucket: string | null; endpoint: string | null; region: string }>) => ({ bucket: 'b', endpoint: null, region: 'eu-west-1', ...o });
  test('no bucket: nowhere else; AWS: its domain (China its own); an endpoint: its origin, and its subdomains when it has a name', () => {
    expect(mediaOrigins(s3({ bucket: null }))).toEqual([]);
    expect(mediaOrigins(s3({}))).toEqual(['https://*.amazonaws.com']);
    expect(mediaOrigins(s3({ region: 'cn-north-1' }))).toEqual(['https://*.amazonaws.com.cn']);
    expect(mediaOrigins(s3({ endpoint: 'http://127.0.0.1:9000' }))).toEqual(['http://127.0.0.1:9000']);
    expect(mediaOrigins(s3({ endpoint: 'https://minio.example.com/' }))).toEqual(['https://minio.example.com', 'https://*.minio.example.com']);
    expect(mediaOrigins(s3({ endpoint: 'http://swift.local:8080/s3' }))).toEqual(['http://swift.local:8080', 'http://*.swift.local:8080']);
  });
});
