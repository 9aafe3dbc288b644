/**
 * Room tokens and the REST token, end to end over socket.io and HTTP (real werift participants, a
 * probe in place of the pipeline): who may join which room, who may toggle the recording, and
 * that refusals are clear errors that leave the server and the room working.
 */
import { signRoomToken, type RoomClaims } from '../../src/server/auth';
import type { TesseraServer } from '../../src/server/TesseraServer';
import type { WeriftParticipant } from '../../src/rtc/WeriftParticipant';
import { FakeRecorder } from '../helpers/rtc-fakeRecorder';
import { participant, startServer } from '../helpers/rtc-harness';

jest.setTimeout(60_000);

const SECRET = 'test-secret-0123456789abcdef-0123456789';
const API_TOKEN = 'api-token-0123456789-0123456789abcdef';
let server: TesseraServer;
let recorder: FakeRecorder;
const open: WeriftParticipant[] = [];

beforeAll(async () => {
  recorder = new FakeRecorder();
  server = await startServer(recorder, { AUTH_SECRET: SECRET, API_TOKEN });
});
afterAll(async () => {
  await Promise.all(open.map((p) => p.close()));
  await server.close();
});

const token = (c: Partial<RoomClaims> & { room: string }, secret = SECRET): string =>
  signRoomToken({ name: 'X', role: 'guest', exp: Math.floor(Date.now() / 1000) + 600, ...c }, secret);

async function joinWith(room: string, name: string, tok: string | undefined, index = 1) {
  const p = await participant(server.url, room, name, index, { token: tok, publish: false });
  open.push(p);
  return { p, ack: (await p.join()) as { ok: boolean; canRecord?: boolean; error?: { code: string; message: string } } };
}

test('joining needs a valid token for that room; refusals are clear errors', async () => {
  const cases: Array<[string, string | undefined, string]> = [
    ['no token', undefined, 'REC_ERR_UNAUTHORIZED'],
    ['garbage', 'not.a.jwt', 'REC_ERR_UNAUTHORIZED'],
    ['wrong secret', token({ room: 'r1' }, 'another-secret-0123456789'), 'REC_ERR_UNAUTHORIZED'],
    ['expired', token({ room: 'r1', exp: Math.floor(Date.now() / 1000) - 5 }), 'REC_ERR_UNAUTHORIZED'],
    ['no expiry', signRoomToken({ room: 'r1', name: 'X', role: 'host' } as RoomClaims, SECRET), 'REC_ERR_UNAUTHORIZED'],
    ['expiry beyond a day', token({ room: 'r1', exp: Math.floor(Date.now() / 1000) + 2 * 86400 }), 'REC_ERR_UNAUTHORIZED'],
    ['another room', token({ room: 'r2' }), 'REC_ERR_FORBIDDEN'],
  ];
  for (const [what, tok, code] of cases) {
    const { ack } = await joinWith('r1', what, tok);
    expect({ what, ok: ack.ok, code: ack.error?.code }).toEqual({ what, ok: false, code });
    expect(ack.error?.message.length).toBeGreaterThan(5);
  }
  expect(server.conference.room('r1')?.participants().length ?? 0).toBe(0);
});

test('a guest may join but not toggle the recording; a host may; the REST API needs its bearer token', async () => {
  const guest = await joinWith('r3', 'Guest', token({ room: 'r3', name: 'Guest', role: 'guest' }));
  expect({ ok: guest.ack.ok, canRecord: guest.ack.canRecord }).toEqual({ ok: true, canRecord: false });
  const refused = (await guest.p.request('record:start', {})) as { ok: boolean; error?: { code: string } };
  expect({ ok: refused.ok, code: refused.error?.code }).toEqual({ ok: false, code: 'REC_ERR_FORBIDDEN' });
  expect(recorder.activeFor('r3')).toBeUndefined();

  const host = await joinWith('r3', 'Host', token({ room: 'r3', name: 'Host', role: 'host' }), 2);
  expect({ ok: host.ack.ok, canRecord: host.ack.canRecord }).toEqual({ ok: true, canRecord: true });
  expect((await host.p.request('record:start', {})).ok).toBe(true);
  const guestStop = (await guest.p.request('record:stop', {})) as { ok: boolean; error?: { code: string } };
  expect({ ok: guestStop.ok, code: guestStop.error?.code }).toEqual({ ok: false, code: 'REC_ERR_FORBIDDEN' });
  expect(recorder.activeFor('r3')).toBeDefined();
  expect((await host.p.request('record:stop', {})).ok).toBe(true);

  // REST: the bearer token is required; the right one works
  const url = `${server.url}/api/rooms/r3/recording`;
  const none = await fetch(url, { method: 'POST' });
  expect(none.status).toBe(401);
  expect(((await none.json()) as { error: { code: string } }).error.code).toBe('REC_ERR_UNAUTHORIZED');
  expect((await fetch(url, { method: 'POST', headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
  const ok = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' }, body: '{}' });
  expect(ok.status).toBe(201);
  // the server carried on through all of it
  expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
});

test('one seat per identity: joining again with the same token replaces the earlier participant', async () => {
  const tok = token({ room: 'seats', name: 'Guest', role: 'guest' });
  const first = await joinWith('seats', 'first', tok);
  expect(first.ack.ok).toBe(true);
  const notices: Array<{ code?: string }> = [];
  first.p.on('notice', (n) => notices.push(n));
  // one guest token tried for every seat of the room (16) and more
  for (let i = 0; i < 17; i++) expect((await joinWith('seats', `again${i}`, tok)).ack.ok).toBe(true);
  const room = server.conference.room('seats')!;
  expect(room.participants().map((x) => x.name)).toEqual(['Guest']);
  expect(notices.map((n) => n.code)).toEqual(['REC_ERR_REPLACED']);
  // the replaced page is out: its requests are refused, the newest one is the participant
  const stale = (await first.p.request('record:start', {})) as { ok: boolean; error?: { code: string } };
  expect(stale.error?.code).toBe('REC_ERR_NOT_JOINED');
  // another identity (sub) with the same display name is another seat
  const other = await joinWith('seats', 'other', token({ room: 'seats', name: 'Guest', role: 'guest', sub: 'user-2' }));
  expect(other.ack.ok).toBe(true);
  expect(room.size).toBe(2);
});
