/**
 * REST lookups read the storage's recordings index, not every manifest; listings are paged; a
 * room cannot keep more than TESSERA_MAX_RECORDINGS_PER_ROOM recordings. Real HTTP, a real
 * Recorder over a real FileStorage (counting its scans), a real werift participant.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { Recorder } from '../../src/pipeline/Recorder';
import type { RecordingInfo } from '../../src/pipeline/types';
import type { WeriftParticipant } from '../../src/rtc/WeriftParticipant';
import { TesseraServer } from '../../src/server/TesseraServer';
import { FileStorage } from '../../src/storage/FileStorage';
import { FFMPEG, participant } from '../helpers/rtc-harness';

jest.setTimeout(60_000);

/** The real file storage; counts how often every manifest is read. */
class CountingStorage extends FileStorage {
  scans = 0;
  override async listManifests(): Promise<object[]> {
    this.scans++;
    return super.listManifests();
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `tessera-index-${process.pid}-`));
let server: TesseraServer;
let recorder: Recorder;
let storage: CountingStorage;
const people: WeriftParticipant[] = [];

beforeAll(async () => {
  const dir = path.join(tmp, 'rec');
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  for (let i = 0; i < 30; i++) {
    const room = i < 25 ? 'busy' : 'other';
    const id = `rec_${String(i).padStart(3, '0')}`;
    fs.mkdirSync(path.join(dir, room), { recursive: true });
    const info: RecordingInfo = { id, roomId: room, status: 'available', startedAt: new Date(t0 + i * 60_000).toISOString(), layout: 'grid', location: { kind: 'file', key: `${room}/${id}.mp4` }, participants: [] };
    fs.writeFileSync(path.join(dir, room, `${id}.json`), JSON.stringify(info));
  }
  execFileSync(FFMPEG, ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x90:rate=10', '-t', '1', '-c:v', 'libx264', '-movflags', 'frag_keyframe+empty_moov', path.join(dir, 'other', 'rec_029.mp4')]);
  const config = loadConfig({ PORT: '0', RECORDINGS_DIR: dir, TESSERA_MAX_RECORDINGS_PER_ROOM: '25' });
  storage = new CountingStorage(dir);
  recorder = new Recorder({ config, storage, logger });
  await recorder.index.load();
  server = new TesseraServer({ config, recorder, logger });
  await server.listen(0, '127.0.0.1');
});

afterAll(async () => {
  await Promise.all(people.map((p) => p.close()));
  await server?.close();
  recorder?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const getJson = async (p: string) => {
  const res = await fetch(`${server.url}${p}`);
  return { status: res.status, body: (await res.json()) as { recordings: RecordingInfo[]; nextCursor?: string; error?: { code: string } } };
};

test('pages of the index, newest first; lookups and Range requests never scan the storage', async () => {
  const seen: string[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 3; page++) {
    const { status, body } = await getJson(`/api/recordings?limit=10${cursor ? `&cursor=${cursor}` : ''}`);
    expect(status).toBe(200);
    expect(body.recordings).toHaveLength(10);
    seen.push(...body.recordings.map((r) => r.id));
    cursor = body.nextCursor;
    expect(cursor === undefined).toBe(page === 2);
  }
  expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => `rec_${String(29 - i).padStart(3, '0')}`));
  expect((await getJson('/api/recordings?roomId=other')).body.recordings.map((r) => r.id)).toEqual(['rec_029', 'rec_028', 'rec_027', 'rec_026', 'rec_025']);
  expect((await getJson('/api/recordings?limit=0')).status).toBe(400);
  expect((await getJson('/api/recordings?cursor=..')).status).toBe(400);
  expect((await getJson('/api/recordings?cursor=abc')).status).toBe(400); // well-formed, meaningless
  for (const id of seen) expect((await getJson(`/api/recordings/${id}`)).body).toMatchObject({ id });
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${server.url}/api/recordings/rec_029/media`, { headers: { range: 'bytes=0-9' } });
    expect(res.status).toBe(206);
    await res.arrayBuffer();
  }
  for (let i = 0; i < 5; i++) expect((await getJson(`/api/recordings/rec_missing${i}`)).status).toBe(404);
  expect(storage.scans).toBe(1); // the load at start, nothing per request
});

test('a room keeping TESSERA_MAX_RECORDINGS_PER_ROOM recordings cannot start another', async () => {
  const p = await participant(server.url, 'busy', 'Someone', 1, { publish: false });
  people.push(p);
  expect((await p.join()).ok).toBe(true);
  const res = await fetch(`${server.url}/api/rooms/busy/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  expect(res.status).toBe(409);
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe('REC_ERR_ROOM_LIMIT');
  expect(body.error.message).toMatch(/25 recordings/);
  expect(recorder.activeCount).toBe(0);
  // deleting one frees a place (the index follows the delete)
  expect((await fetch(`${server.url}/api/recordings/rec_000`, { method: 'DELETE' })).status).toBe(204);
  expect(recorder.index.countForRoom('busy')).toBe(24);
  expect((await getJson('/api/recordings/rec_000')).status).toBe(404);
});
