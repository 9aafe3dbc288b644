/**
 * The SFU and the real recording pipeline together, with werift peers (no browser): a VP8
 * publisher behind 5% outbound packet loss and an H.264 publisher, recorded through the socket.io
 * Record toggle. The MP4 must show both, clean, for the whole recording: NACK repairs the loss,
 * PLI recovers what NACK cannot. Also measures Record → first composite frame in the file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { logger } from '../../src/logger';
import { makeSyntheticClip, participantStyle } from '../../src/media/SyntheticClip';
import type { Manifest, RecordingInfo } from '../../src/pipeline/types';
import type { WeriftParticipant } from '../../src/rtc/WeriftParticipant';
import type { TesseraServer } from '../../src/server/TesseraServer';
import { allFrames, colourDistance, decodeErrors, hexRgb, colourShare } from '../helpers/media';
import { FFMPEG, participant, sleep, startRecordingServer, until } from '../helpers/rtc-harness';

jest.setTimeout(120_000);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-rtcrec-'));
let server: TesseraServer;
let closeServer: () => Promise<void> = async () => undefined;
const peers: WeriftParticipant[] = [];

beforeAll(async () => {
  ({ server, close: closeServer } = await startRecordingServer(path.join(tmp, 'rec')));
});

afterAll(async () => {
  await Promise.all(peers.map((p) => p.close()));
  await closeServer();
  fs.rmSync(tmp, { recursive: true, force: true });
});


test('5% loss on a VP8 publisher and an H.264 publisher: both clean in the MP4 from the first second to the last', async () => {
  const room = 'lossy-rec';
  const lossy = await participant(server.url, room, 'Lossy', 1, { outboundLoss: 0.05 });
  const h264 = await participant(server.url, room, 'H264', 2, { codec: 'h264' });
  peers.push(lossy, h264);
  await lossy.join();
  await h264.join();
  await until(() => server.conference.room(room)?.participants().filter((p) => p.publishing.length >= 2).length === 2, 20_000, 'both publishing');

  const clickAt = Date.now();
  const ack = (await lossy.request('record:start', {})) as { ok: boolean; recording?: RecordingInfo };
  expect(ack.ok).toBe(true);
  await sleep(10_000);
  const stop = (await h264.request('record:stop', {})) as { ok: boolean; recording: RecordingInfo };
  expect({ ok: stop.ok, status: stop.recording.status, error: stop.recording.error }).toEqual({ ok: true, status: 'available', error: undefined });
  const rec = stop.recording;

  const st = lossy.senderStats();
  // eslint-disable-next-line no-console
  console.log(`5% loss: sender sent ${st.packets} video packets, got ${st.nacks} NACKs, retransmitted ${st.retransmitted}, answered ${lossy.keyframeRequests} PLIs`);
  expect(st.retransmitted).toBeGreaterThan(st.packets * 0.02); // the loss was real and NACK repaired it

  const file = path.join(tmp, 'lossy.mp4');
  const media = await fetch(`${server.url}/api/recordings/${rec.id}/media`);
  expect(media.status).toBe(200);
  fs.writeFileSync(file, Buffer.from(await media.arrayBuffer()));
  if (process.env.TESSERA_E2E_KEEP) fs.copyFileSync(file, process.env.TESSERA_E2E_KEEP);
  expect(decodeErrors(file)).toBe('');

  const { frames, fps } = allFrames(file, 8);
  const shares = frames.map((f) => [1, 2].map((i) => colourShare(f, participantStyle(i).hex)));
  // Each tile of the two-up grid is about a third of the canvas; the busy patch and scaling take
  // some. A corrupt decode (smeared blocks after a loss) or a name card shows far less colour.
  const firsts = [0, 1].map((k) => shares.findIndex((s) => s[k] > 0.1));
  const start = Date.parse(rec.startedAt);
  // eslint-disable-next-line no-console
  console.log(`Record click → recording started ${start - clickAt} ms; first frame with each participant: ${firsts.map((f) => Math.round(start - clickAt + (f / fps) * 1000)).join(' ms, ')} ms after the click`);
  for (const f of firsts) expect(f).toBeGreaterThanOrEqual(0);
  const from = Math.max(...firsts);
  const bad = shares.slice(from).map((s, i) => ({ t: +((from + i) / fps).toFixed(2), s })).filter(({ s }) => s[0] < 0.1 || s[1] < 0.1);
  // eslint-disable-next-line no-console
  if (bad.length) console.log('frames missing a participant', JSON.stringify(bad.slice(0, 20)));
  expect(bad.length).toBe(0);
  expect(frames.length - from).toBeGreaterThan(fps * 8);
});

test('a screen share joining mid-recording switches the composite to the screenshare layout', async () => {
  const room = 'share-rec';
  const a = await participant(server.url, room, 'A', 1);
  const b = await participant(server.url, room, 'B', 2);
  peers.push(a, b);
  await a.join();
  await b.join();
  await until(() => server.conference.room(room)?.participants().filter((p) => p.publishing.length >= 2).length === 2, 20_000, 'both publishing');
  expect((await a.request('record:start', {})).ok).toBe(true);
  await sleep(4000);
  const screenClip = await makeSyntheticClip(FFMPEG, { index: 5, codec: 'vp8', seconds: 2, width: 640, height: 360, fps: 15 }, logger);
  const sharer = await participant(server.url, room, 'Sharer', 3, { screenClip });
  peers.push(sharer);
  await sharer.join();
  await sleep(5000);
  const stop = (await a.request('record:stop', {})) as { ok: boolean; recording: RecordingInfo };
  expect({ ok: stop.ok, status: stop.recording.status }).toEqual({ ok: true, status: 'available' });
  // The manifest beside the MP4 records the switch: grid while two cameras, then screenshare.
  const manifest = JSON.parse(fs.readFileSync(path.join(tmp, 'rec', room, `${stop.recording.id}.json`), 'utf8')) as Manifest;
  expect(manifest.layouts.map((l) => l.preset).filter((p, i, all) => p !== all[i - 1])).toEqual(['grid', 'screenshare']);

  const file = path.join(tmp, 'share.mp4');
  fs.writeFileSync(file, Buffer.from(await (await fetch(`${server.url}/api/recordings/${stop.recording.id}/media`)).arrayBuffer()));
  if (process.env.TESSERA_E2E_KEEP) fs.copyFileSync(file, process.env.TESSERA_E2E_KEEP);
  expect(decodeErrors(file)).toBe('');
  const { frames, fps } = allFrames(file, 8);
  const share = (f: Buffer, i: number): number => colourShare(f, participantStyle(i).hex);
  // Before the share (seconds 2–3.5): the grid, A and B each about a third of the canvas, no screen.
  for (const f of frames.slice(2 * fps, Math.round(3.5 * fps))) {
    expect([share(f, 1) > 0.15, share(f, 2) > 0.15, share(f, 5) < 0.01]).toEqual([true, true, true]);
  }
  // The last 1.5 s: the screen takes the stage (most of the canvas), the cameras a narrow strip.
  const last = frames.slice(-Math.round(1.5 * fps));
  for (const f of last) {
    const got = { screen: share(f, 5), a: share(f, 1), b: share(f, 2), sharerCam: share(f, 3) };
    expect({ stage: got.screen > 0.4, strip: [got.a, got.b, got.sharerCam].every((x) => x > 0.005 && x < 0.1) }).toEqual({ stage: true, strip: true });
  }
});
