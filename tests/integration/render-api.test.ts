/**
 * The re-render as a REST job, end to end on a real server: three werift participants, one
 * sharing a screen, recorded with tracks through the REST API, then
 * `POST /api/recordings/:id/renders` → 202 `rendering`, listed under the recording while it runs,
 * `available` with its MP4 served (Range too) once done — with the speaker layout, then the
 * screenshare layout (the share on the stage) — and gone with the recording. Bad input: an unknown recording, an unknown layout, a
 * malformed body, a second render while one runs, a recording made without tracks.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { logger } from '../../src/logger';
import { makeSyntheticClip, participantStyle } from '../../src/media/SyntheticClip';
import { Recorder } from '../../src/pipeline/Recorder';
import type { RecordingInfo, RenderInfo } from '../../src/pipeline/types';
import type { WeriftParticipant } from '../../src/rtc/WeriftParticipant';
import type { TesseraServer } from '../../src/server/TesseraServer';
import { allFrames, colourShare, decodeErrors, probe } from '../helpers/media';
import { FFMPEG, participant, sleep, startRecordingServer, until } from '../helpers/rtc-harness';

jest.setTimeout(120_000);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-renderapi-'));
let server: TesseraServer;
let closeServer: () => Promise<void> = async () => undefined;
const peers: WeriftParticipant[] = [];
const room = 'render-room';

beforeAll(async () => {
  ({ server, close: closeServer } = await startRecordingServer(path.join(tmp, 'rec'), { TESSERA_X264_PRESET: 'ultrafast' }));
  // Blue also shares a screen (participant 5's colour, magenta).
  const screenClip = await makeSyntheticClip(FFMPEG, { index: 5, codec: 'vp8', seconds: 2, width: 640, height: 360, fps: 15 }, logger);
  for (const [name, i] of [['Red', 1], ['Green', 2], ['Blue', 3]] as const) {
    const p = await participant(server.url, room, name, i, i === 3 ? { screenClip } : {});
    peers.push(p);
    await p.join();
  }
  await until(() => server.conference.room(room)?.participants().filter((p) => p.publishing.length >= 2).length === 3, 20_000, 'all publishing');
  await until(() => server.conference.room(room)?.participants().some((p) => p.publishing.length >= 3) ?? false, 20_000, 'the screen share');
});

afterAll(async () => {
  await Promise.all(peers.map((p) => p.close()));
  await closeServer();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const api = (p: string, init?: RequestInit) => fetch(`${server.url}/api${p}`, init);
const post = (p: string, body: unknown) => api(p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
async function error(res: Response): Promise<[number, string]> {
  return [res.status, ((await res.json()) as { error: { code: string } }).error.code];
}

async function record(ms: number, tracks: boolean): Promise<RecordingInfo> {
  const started = await post(`/rooms/${room}/recording`, { tracks });
  expect(started.status).toBe(201);
  await sleep(ms);
  const stopped = await api(`/rooms/${room}/recording`, { method: 'DELETE' });
  const info = (await stopped.json()) as RecordingInfo;
  expect(info.status).toBe('available');
  return info;
}

test('a render job: 202 rendering, listed while it runs, then available and served; one at a time; gone with the recording', async () => {
  const rec = await record(5000, true);
  const manifest = JSON.parse(fs.readFileSync(path.join(tmp, 'rec', rec.location.key.replace(/\.mp4$/, '.json')), 'utf8')) as { tracks: { kind: string }[] };
  expect(manifest.tracks.map((t) => t.kind).sort()).toEqual(['camera', 'camera', 'camera', 'microphone', 'microphone', 'microphone', 'screen']);

  // Bad input first (none of it starts anything).
  expect(await error(await post('/recordings/rec_nope/renders', { layout: 'grid' }))).toEqual([404, 'REC_ERR_NOT_FOUND']);
  expect(await error(await post(`/recordings/${rec.id}/renders`, { layout: 'mosaic' }))).toEqual([400, 'REC_ERR_UNKNOWN_LAYOUT']);
  expect(await error(await post(`/recordings/${rec.id}/renders`, { layout: 'a b' }))).toEqual([400, 'REC_ERR_UNKNOWN_LAYOUT']);
  expect(await error(await post(`/recordings/${rec.id}/renders`, {}))).toEqual([400, 'REC_ERR_BAD_REQUEST']);
  expect(await error(await post(`/recordings/${rec.id}/renders`, ['grid']))).toEqual([400, 'REC_ERR_BAD_REQUEST']);

  const t0 = Date.now();
  const res = await post(`/recordings/${rec.id}/renders`, { layout: 'speaker' });
  expect(res.status).toBe(202);
  const render = (await res.json()) as RenderInfo;
  expect(render).toMatchObject({ id: 'speaker-1', layout: 'speaker', status: 'rendering', location: { kind: 'file', key: expect.stringMatching(new RegExp(`^${room}/${rec.id}\\.renders/speaker-1\\.mp4$`)) } });
  // One render at a time per server.
  expect(await error(await post(`/recordings/${rec.id}/renders`, { layout: 'grid' }))).toEqual([503, 'REC_ERR_CAPACITY']);
  const listed = (await (await api(`/recordings/${rec.id}`)).json()) as RecordingInfo;
  expect(listed.renders?.map((r) => [r.id, r.status])).toEqual([['speaker-1', 'rendering']]);
  expect(await error(await api(`/recordings/${rec.id}/renders/speaker-1/media`))).toEqual([404, 'REC_ERR_NOT_FOUND']);

  let done: RenderInfo | undefined;
  while (!done || done.status === 'rendering') {
    if (Date.now() - t0 > 60_000) throw new Error('the render did not finish within 60 s');
    await sleep(250);
    done = ((await (await api(`/recordings/${rec.id}`)).json()) as RecordingInfo).renders?.find((r) => r.id === 'speaker-1');
  }
  // eslint-disable-next-line no-console
  console.log(`render job: ${rec.durationMs} ms of media available ${Date.now() - t0} ms after the POST`);
  expect(done).toMatchObject({ status: 'available', durationMs: rec.durationMs, bytes: expect.any(Number) });
  expect(done.error).toBeUndefined();

  const media = await api(`/recordings/${rec.id}/renders/speaker-1/media`);
  expect(media.status).toBe(200);
  expect(media.headers.get('content-type')).toBe('video/mp4');
  const file = path.join(tmp, 'render.mp4');
  fs.writeFileSync(file, Buffer.from(await media.arrayBuffer()));
  expect(fs.statSync(file).size).toBe(done.bytes);
  expect(decodeErrors(file)).toBe('');
  const p = probe(file);
  expect({ w: p.width, h: p.height, fps: p.frameRate }).toEqual({ w: 640, h: 360, fps: 15 });
  expect(Math.abs(p.videoDuration * 1000 - rec.durationMs!)).toBeLessThanOrEqual(1000 / 15);
  // Everyone is in it (the stage and the strip) once their video arrived.
  const { frames } = allFrames(file, 4);
  const last = frames[frames.length - 8];
  expect([1, 2, 3, 5].map((i) => colourShare(last, participantStyle(i).hex) > 0.005)).toEqual([true, true, true, true]);

  const part = await api(`/recordings/${rec.id}/renders/speaker-1/media`, { headers: { range: 'bytes=100-199' } });
  expect(part.status).toBe(206);
  expect(part.headers.get('content-range')).toBe(`bytes 100-199/${done.bytes}`);
  expect(Buffer.from(await part.arrayBuffer()).equals(fs.readFileSync(file).subarray(100, 200))).toBe(true);

  // The same recording with the screenshare layout: the werift share on the stage, the cameras in the strip.
  expect((await post(`/recordings/${rec.id}/renders`, { layout: 'screenshare' })).status).toBe(202);
  let shared: RenderInfo | undefined;
  for (const t1 = Date.now(); !shared || shared.status === 'rendering'; await sleep(250)) {
    if (Date.now() - t1 > 60_000) throw new Error('the screenshare render did not finish within 60 s');
    shared = ((await (await api(`/recordings/${rec.id}`)).json()) as RecordingInfo).renders?.find((r) => r.id === 'screenshare-1');
  }
  expect(shared.status).toBe('available');
  const shareFile = path.join(tmp, 'share.mp4');
  fs.writeFileSync(shareFile, Buffer.from(await (await api(`/recordings/${rec.id}/renders/screenshare-1/media`)).arrayBuffer()));
  const s = allFrames(shareFile, 8);
  for (const f of s.frames.slice(-Math.round(1.5 * s.fps))) {
    const got = [5, 1, 2, 3].map((i) => colourShare(f, participantStyle(i).hex));
    expect({ stage: got[0] > 0.4, strip: got.slice(1).every((x) => x > 0.005 && x < 0.1) }).toEqual({ stage: true, strip: true });
  }

  // Deleting the recording deletes its renders, and stops one in progress (which then stores nothing).
  const rendersDir = path.join(tmp, 'rec', room, `${rec.id}.renders`);
  expect(fs.existsSync(path.join(rendersDir, 'speaker-1.mp4'))).toBe(true);
  expect((await post(`/recordings/${rec.id}/renders`, { layout: 'grid' })).status).toBe(202);
  expect((await api(`/recordings/${rec.id}`, { method: 'DELETE' })).status).toBe(204);
  expect((server.conference.recorder as Recorder).renders.running).toBe(0); // stopped, its slot free
  expect(fs.existsSync(rendersDir)).toBe(false);
  await sleep(3000);
  expect(fs.existsSync(rendersDir)).toBe(false);
  expect(fs.readdirSync(path.join(tmp, 'rec', room)).filter((f) => f.startsWith(rec.id))).toEqual([]);
  expect(await error(await post(`/recordings/${rec.id}/renders`, { layout: 'grid' }))).toEqual([404, 'REC_ERR_NOT_FOUND']);
  expect(await error(await api(`/recordings/${rec.id}/renders/speaker-1/media`))).toEqual([404, 'REC_ERR_NOT_FOUND']);
});

test('a recording made without tracks cannot be re-rendered: 409 REC_ERR_NO_TRACKS', async () => {
  const rec = await record(2000, false);
  expect(await error(await post(`/recordings/${rec.id}/renders`, { layout: 'grid' }))).toEqual([409, 'REC_ERR_NO_TRACKS']);
});
