/**
 * Individual tracks beside the composite (`tracks: true`), with werift participants through the
 * real SFU and pipeline: a VP8 camera, an H.264 camera that leaves and comes back, and a camera
 * with a screen share. Every track is a file of its own that decodes cleanly, lasts what the
 * manifest says, shows its participant's colour and carries their tone, and lines up with the
 * composite MP4 by the manifest's `start`.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { logger } from '../../src/logger';
import { makeSyntheticClip, participantStyle } from '../../src/media/SyntheticClip';
import type { Manifest, RecordingInfo } from '../../src/pipeline/types';
import type { WeriftParticipant } from '../../src/rtc/WeriftParticipant';
import { TesseraServer } from '../../src/server/TesseraServer';
import type { TrackInfo } from '../../src/tracks/TrackWriter';
import { FFPROBE, allFrames, audioSamples, beepEdgesMs, colourShare, decodeErrors, frameAt, meanColour, colourDistance, medianNearestOffset, toneShare } from '../helpers/media';
import { FFMPEG, participant, sleep, startRecordingServer, until } from '../helpers/rtc-harness';

jest.setTimeout(120_000);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-tracks-'));
const recDir = path.join(tmp, 'rec');
let server: TesseraServer;
let closeServer: () => Promise<void> = async () => undefined;
const peers: WeriftParticipant[] = [];

beforeAll(async () => {
  ({ server, close: closeServer } = await startRecordingServer(recDir));
});

afterAll(async () => {
  await Promise.all(peers.map((p) => p.close()));
  await closeServer();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Times (ms) of the last packet of a file's first stream, and where its media ends. */
function packetSpan(file: string): { first: number; last: number; count: number } {
  const out = execFileSync(FFPROBE, ['-v', 'error', '-select_streams', '0', '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', file], { encoding: 'utf8' });
  const ts = out.split('\n').filter(Boolean).map((l) => Number(l) * 1000);
  return { first: ts[0], last: ts[ts.length - 1], count: ts.length };
}

test('tracks: true — one clean file per camera, screen and microphone, with its participant in it, lined up with the composite', async () => {
  const room = 'tracks-room';
  const a = await participant(server.url, room, 'A', 1);
  const b = await participant(server.url, room, 'B', 2, { codec: 'h264' });
  const screenClip = await makeSyntheticClip(FFMPEG, { index: 5, codec: 'vp8', seconds: 2, width: 640, height: 360, fps: 15 }, logger);
  const c = await participant(server.url, room, 'C', 3, { screenClip });
  peers.push(a, b, c);
  for (const p of [a, b, c]) await p.join();
  await until(() => server.conference.room(room)?.participants().filter((p) => p.publishing.length >= 2).length === 3, 20_000, 'all publishing');

  const start = await fetch(`${server.url}/api/rooms/${room}/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tracks: true }) });
  expect(start.status).toBe(201);
  const started = (await start.json()) as RecordingInfo;
  await sleep(4000);
  // B leaves and comes back: a new connection, so new tracks.
  await b.leave();
  await sleep(1000);
  const b2 = await participant(server.url, room, 'B', 2, { codec: 'h264' });
  peers.push(b2);
  await b2.join();
  await sleep(4000);
  const stop = await fetch(`${server.url}/api/rooms/${room}/recording`, { method: 'DELETE' });
  const rec = (await stop.json()) as RecordingInfo;
  expect({ status: rec.status, error: rec.error }).toEqual({ status: 'available', error: undefined });

  const manifest = JSON.parse(fs.readFileSync(path.join(recDir, room, `${started.id}.json`), 'utf8')) as Manifest;
  const tracks = manifest.tracks as TrackInfo[];
  const byName = (name: string, kind: string) => tracks.filter((t) => t.name === name && t.kind === kind);
  // eslint-disable-next-line no-console
  console.log('tracks', JSON.stringify(tracks.map((t) => ({ n: t.name, k: t.kind, c: t.codec, start: t.start, end: t.end, bytes: t.bytes }))));
  expect({
    aCam: byName('A', 'camera').map((t) => t.codec),
    aMic: byName('A', 'microphone').length,
    bCam: byName('B', 'camera').map((t) => t.codec),
    bMic: byName('B', 'microphone').length,
    cCam: byName('C', 'camera').length,
    cScreen: byName('C', 'screen').length,
    cMic: byName('C', 'microphone').length,
    states: [...new Set(tracks.map((t) => t.state))],
  }).toEqual({ aCam: ['vp8'], aMic: 1, bCam: ['h264', 'h264'], bMic: 2, cCam: 1, cScreen: 1, cMic: 1, states: ['complete'] });

  const composite = path.join(recDir, room, `${started.id}.mp4`);
  const compositePcm = audioSamples(composite);
  const style = { A: 1, B: 2, C: 3 } as Record<string, number>;
  for (const t of tracks) {
    const file = path.join(recDir, t.location.key);
    expect({ file: t.location.key, errors: decodeErrors(file), bytes: fs.statSync(file).size }).toEqual({ file: t.location.key, errors: '', bytes: t.bytes });
    // Its length is the manifest's: the last packet lies within one packet of `end`.
    const span = packetSpan(file);
    expect(span.first).toBe(0);
    expect(Math.abs(t.start + span.last - t.end!)).toBeLessThanOrEqual(t.codec === 'opus' ? 25 : 70);
    const i = t.kind === 'screen' ? 5 : style[t.name];
    const want = participantStyle(i);
    if (t.kind === 'camera' || t.kind === 'screen') {
      const img = frameAt(file, Math.max(0, (span.last / 1000) / 2));
      // The centre of the picture is the participant's colour (the busy patch is in the top band).
      const centre = meanColour(img, { x: img.w * 0.25, y: img.h * 0.45, w: img.w * 0.5, h: img.h * 0.4 });
      expect({ file: t.location.key, close: colourDistance(centre, want.rgb) < 60 }).toEqual({ file: t.location.key, close: true });
    } else {
      const pcm = audioSamples(file);
      expect({ file: t.location.key, tone: toneShare(pcm, want.toneHz) > 0.5 }).toEqual({ file: t.location.key, tone: true });
      // Lined up with the composite: its beeps, placed at `start`, fall where the composite's are.
      const trackEdges = beepEdgesMs(pcm, want.toneHz).map((e) => e + t.start);
      const compositeEdges = beepEdgesMs(compositePcm, want.toneHz);
      const lag = medianNearestOffset(trackEdges, compositeEdges, 200);
      // eslint-disable-next-line no-console
      console.log(`${t.location.key}: composite − track ${lag.medianMs} ms over ${lag.pairs} beeps; track edges ${JSON.stringify(trackEdges.map(Math.round))}, composite ${JSON.stringify(compositeEdges.map(Math.round))}`);
      expect(lag.pairs).toBeGreaterThanOrEqual(3);
      // A track placed late (its first packets' arrival taken for its start: up to ~130 ms) puts
      // the composite's beeps before the track's. The composite is later by its own latency: each
      // voice waits as long as its pictures (lip sync), and with decoded tiles (B's H.264 puts
      // every tile through a decoder) the composite is 3-52 ms after the tracks here; B's short
      // first track, made in the recording's first seconds while the decoders start, 48-78 ms
      // idle and up to 129 in CI rehearsals (docs/tracks.md, docs/workers.md day 22).
      expect(lag.medianMs).toBeGreaterThanOrEqual(-67); // a frame at 15 fps
      expect(lag.medianMs).toBeLessThanOrEqual(200); // three
    }
  }
  // A camera appears in the composite shortly after its track starts: the composite waits for the
  // first decoded picture (the steady-state alignment is the audio's, above; the composite keeps
  // its own pictures and sound in sync). Cameras in the screen share's strip are small: 0.4 %.
  const { frames, fps } = allFrames(composite, 8);
  // (At the recording's start every camera waits for the worker's decoders: only a joiner's delay says something.)
  for (const t of tracks.filter((x) => x.kind === 'camera' && x.start > 1000)) {
    const hex = participantStyle(style[t.name]).hex;
    const from = Math.max(0, Math.floor((t.start / 1000) * fps) - 2);
    const first = frames.findIndex((f, k) => k >= from && colourShare(f, hex) > 0.004);
    const lagMs = (first / fps) * 1000 - t.start;
    // eslint-disable-next-line no-console
    console.log(`${t.location.key}: first in the composite ${Math.round(lagMs)} ms after its track's start`);
    expect(first).toBeGreaterThanOrEqual(0);
    expect(lagMs).toBeGreaterThanOrEqual(-1000 / fps);
    expect(lagMs).toBeLessThanOrEqual(500);
  }

  // Deleting the recording deletes its tracks.
  const del = await fetch(`${server.url}/api/recordings/${started.id}`, { method: 'DELETE' });
  expect(del.status).toBe(204);
  expect(fs.existsSync(path.join(recDir, room, `${started.id}.tracks`))).toBe(false);
});

test('tracks must be a boolean', async () => {
  const room = 'tracks-bad';
  const a = await participant(server.url, room, 'A', 1);
  peers.push(a);
  await a.join();
  const res = await fetch(`${server.url}/api/rooms/${room}/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tracks: 'yes' }) });
  expect(res.status).toBe(400);
  expect(((await res.json()) as { error: { code: string } }).error.code).toBe('REC_ERR_BAD_REQUEST');
  const ack = (await a.request('record:start', { tracks: 1 })) as { ok: boolean; error?: { code: string } };
  expect({ ok: ack.ok, code: ack.error?.code }).toEqual({ ok: false, code: 'REC_ERR_BAD_REQUEST' });
  expect(server.conference.room(room)?.recordingId ?? null).toBeNull();
});
