/**
 * What a recorder of calls owes the people in them: an audit trail, retention with legal hold,
 * erasure by person, and REST credentials with roles that rotate. Real HTTP, a real Recorder over
 * a real FileStorage (recordings placed in it as the recorder leaves them), an injected clock.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { Recorder } from '../../src/pipeline/Recorder';
import type { RecordingInfo } from '../../src/pipeline/types';
import type { AuditEvent } from '../../src/server/AuditLog';
import { TesseraServer } from '../../src/server/TesseraServer';
import { FileStorage } from '../../src/storage/FileStorage';

jest.setTimeout(60_000);

const ADMIN = 'admin-token-0123456789abcdef-0123456789';
const NEXT_ADMIN = 'next-admin-token-0123456789abcdef-012345';
const READER = 'read-token-0123456789abcdef-0123456789ab';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `tessera-trust-${process.pid}-`));
const dir = path.join(tmp, 'rec');
let server: TesseraServer;
let recorder: Recorder;

const DAY = 86_400_000;
const T0 = Date.parse('2026-03-01T00:00:00Z');

function store(id: string, roomId: string, names: string[], extra: Partial<RecordingInfo> = {}): void {
  fs.mkdirSync(path.join(dir, roomId), { recursive: true });
  fs.writeFileSync(path.join(dir, roomId, `${id}.mp4`), Buffer.alloc(1000, 7));
  const info: RecordingInfo = { id, roomId, status: 'available', startedAt: new Date(T0).toISOString(), layout: 'grid', location: { kind: 'file', key: `${roomId}/${id}.mp4` }, participants: names.map((name, i) => ({ id: `${id}-p${i}`, name, joinedAt: new Date(T0).toISOString() })), ...extra };
  fs.writeFileSync(path.join(dir, roomId, `${id}.json`), JSON.stringify(info));
}

beforeAll(async () => {
  store('rec_old', 'r1', ['Ann', 'Bob'], { retainUntil: new Date(T0 + 30 * DAY).toISOString() });
  store('rec_new', 'r1', ['Bob'], { retainUntil: new Date(T0 + 90 * DAY).toISOString() });
  store('rec_held', 'r2', ['ann'], { retainUntil: new Date(T0 + 30 * DAY).toISOString() });
  store('rec_ann', 'r3', ['Ann', 'Cy']);
  store('rec_cy', 'r3', ['Cy']);
  const config = loadConfig({ PORT: '0', RECORDINGS_DIR: dir, API_TOKEN: `${ADMIN},${NEXT_ADMIN}`, API_READ_TOKEN: READER });
  recorder = new Recorder({ config, storage: new FileStorage(dir), logger });
  await recorder.index.load();
  server = new TesseraServer({ config, recorder, logger });
  await server.listen(0, '127.0.0.1');
});

afterAll(async () => {
  await server?.close();
  recorder?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const call = async (method: string, p: string, token: string | null, body?: unknown) => {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${server.url}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
};

test('credentials: a read-only token reads; changes need an admin token; two admin tokens at once (rotation)', async () => {
  expect((await call('GET', '/api/recordings', READER)).status).toBe(200);
  expect((await call('GET', '/api/recordings/rec_new', READER)).status).toBe(200);
  const refused = await call('DELETE', '/api/recordings/rec_cy', READER);
  expect(refused.status).toBe(403);
  expect((refused.body.error as { code: string }).code).toBe('REC_ERR_FORBIDDEN');
  expect((await call('GET', '/api/audit', READER)).status).toBe(403);
  expect((await call('POST', '/api/erasure', READER, { name: 'Cy' })).status).toBe(403);
  expect((await call('GET', '/api/recordings', 'not-a-token-0123456789abcdef-0123456789')).status).toBe(401);
  for (const t of [ADMIN, NEXT_ADMIN]) expect((await call('GET', '/api/audit', t)).status).toBe(200);
  expect(fs.existsSync(path.join(dir, 'r3', 'rec_cy.mp4'))).toBe(true);
});

test('audit: downloads and deletions are logged with actor, role, source and time, beside the recordings', async () => {
  const media = await fetch(`${server.url}/api/recordings/rec_cy/media`, { headers: { authorization: `Bearer ${READER}` } });
  expect(media.status).toBe(200);
  await media.arrayBuffer();
  expect((await call('DELETE', '/api/recordings/rec_cy', NEXT_ADMIN)).status).toBe(204);
  const { body } = await call('GET', '/api/audit?recordingId=rec_cy', ADMIN);
  const events = body.events as AuditEvent[];
  expect(events.map((e) => [e.event, e.actor.role, e.roomId])).toEqual([['recording.downloaded', 'read', 'r3'], ['recording.deleted', 'admin', 'r3']]);
  for (const e of events) {
    expect(e.actor.source).toMatch(/127\.0\.0\.1/);
    expect(e.actor.id).toMatch(/^api:[0-9a-f]{8}$/);
    expect(Date.now() - Date.parse(e.at)).toBeLessThan(60_000);
  }
  expect(events[0].actor.id).not.toBe(events[1].actor.id); // two credentials, told apart
  // the trail is in storage, one JSON line per event, and never the token itself
  await server.audit.flushed();
  const file = fs.readFileSync(path.join(dir, '.audit', 'audit.jsonl'), 'utf8');
  expect(file.trim().split('\n').map((l) => (JSON.parse(l) as AuditEvent).recordingId).filter((id) => id === 'rec_cy')).toHaveLength(2);
  expect(file).not.toContain(READER);
});

test('retention with an injected clock; a held recording is neither expired nor deleted until released', async () => {
  expect((await call('PUT', '/api/recordings/rec_held/hold', ADMIN, { hold: true })).body).toMatchObject({ id: 'rec_held', legalHold: true });
  const deleting = await call('DELETE', '/api/recordings/rec_held', ADMIN);
  expect([deleting.status, (deleting.body.error as { code: string }).code]).toEqual([409, 'REC_ERR_HELD']);
  // day 29: nothing is due
  expect(await recorder.sweepRetention(T0 + 29 * DAY)).toEqual([]);
  // day 31: the 30-day one goes; the held one (also 30 days) stays; the 90-day one stays
  expect((await recorder.sweepRetention(T0 + 31 * DAY)).map((r) => r.id)).toEqual(['rec_old']);
  expect(fs.existsSync(path.join(dir, 'r1', 'rec_old.mp4'))).toBe(false);
  expect(fs.existsSync(path.join(dir, 'r1', 'rec_old.json'))).toBe(false);
  expect(fs.existsSync(path.join(dir, 'r2', 'rec_held.mp4'))).toBe(true);
  expect((await call('GET', '/api/recordings/rec_old', ADMIN)).status).toBe(404);
  // the hold survives a restart: it is in the manifest
  expect(JSON.parse(fs.readFileSync(path.join(dir, 'r2', 'rec_held.json'), 'utf8')).legalHold).toBe(true);
  await call('PUT', '/api/recordings/rec_held/hold', ADMIN, { hold: false });
  expect((await recorder.sweepRetention(T0 + 31 * DAY)).map((r) => r.id)).toEqual(['rec_held']);
  const expired = ((await call('GET', '/api/audit?recordingId=rec_old', ADMIN)).body.events as AuditEvent[]).map((e) => [e.event, e.actor.kind]);
  expect(expired).toEqual([['recording.expired', 'system']]);
  // a start request's retention is bounded
  for (const retentionDays of [0, 3651, 1.5, '7']) {
    expect((await call('POST', '/api/rooms/r9/recording', ADMIN, { retentionDays })).status).toBe(400);
  }
});

test('erasure finds every recording a person appears in, by name or participant id, deletes it and logs it', async () => {
  store('rec_ann2', 'r4', ['Ann']);
  store('rec_ann_held', 'r4', ['ANN'], {});
  await recorder.index.load();
  await call('PUT', '/api/recordings/rec_ann_held/hold', ADMIN, { hold: true });
  const { status, body } = await call('POST', '/api/erasure', ADMIN, { name: 'ann' });
  expect(status).toBe(200);
  expect({ erased: (body.erased as string[]).sort(), held: body.held }).toEqual({ erased: ['rec_ann', 'rec_ann2'], held: ['rec_ann_held'] });
  for (const [room, id] of [['r3', 'rec_ann'], ['r4', 'rec_ann2']]) expect(fs.existsSync(path.join(dir, room, `${id}.mp4`))).toBe(false);
  expect((await call('GET', '/api/recordings/rec_new', ADMIN)).status).toBe(200); // Bob's stays
  const byId = await call('POST', '/api/erasure', ADMIN, { participantId: 'rec_new-p0' });
  expect(byId.body.erased).toEqual(['rec_new']);
  const events = ((await call('GET', '/api/audit?recordingId=rec_ann2', ADMIN)).body.events as AuditEvent[]);
  expect(events.map((e) => [e.event, e.detail])).toEqual([['recording.erased', { name: 'ann' }]]);
  expect((await call('POST', '/api/erasure', ADMIN, {})).status).toBe(400);
});
