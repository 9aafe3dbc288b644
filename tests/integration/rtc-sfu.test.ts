/**
 * The SFU and its recording tap with real werift peers (no recording pipeline: a probe stands in
 * for the Recorder and counts what the WebRtcSources deliver).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type { EncodedVideoFrame } from '../../src/media/types';
import { ivfFileHeader, ivfFrameHeader } from '../../src/media/ivf';
import type { WeriftParticipant } from '../../src/rtc/WeriftParticipant';
import type { TesseraServer } from '../../src/server/TesseraServer';
import { FakeRecorder, type RecordingProbe } from '../helpers/rtc-fakeRecorder';
import { FFMPEG, participant, sleep, startServer, until } from '../helpers/rtc-harness';

jest.setTimeout(90_000);

let server: TesseraServer;
let recorder: FakeRecorder;
const open: WeriftParticipant[] = [];

beforeEach(async () => {
  recorder = new FakeRecorder();
  server = await startServer(recorder);
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((p) => p.close()));
  await server.close();
});

async function joined(roomId: string, name: string, index: number, extra = {}): Promise<WeriftParticipant> {
  const p = await participant(server.url, roomId, name, index, extra);
  open.push(p);
  const ack = await p.join();
  expect(ack).toMatchObject({ ok: true, roomId });
  return p;
}

const framesFrom = (p: WeriftParticipant, other: WeriftParticipant) => p.received.get(`${other.participantId}:camera`)?.frames ?? 0;
const audioFrom = (p: WeriftParticipant, other: WeriftParticipant) => p.received.get(`${other.participantId}:mic`)?.audioPackets ?? 0;

/** Decodes VP8 frames with FFmpeg; returns its error lines (none = clean). */
function decodeErrors(frames: EncodedVideoFrame[]): string[] {
  const parts = [ivfFileHeader(320, 180)];
  frames.forEach((f, i) => parts.push(ivfFrameHeader(f.data.length, BigInt(i)), f.data));
  const r = spawnSync(FFMPEG, ['-hide_banner', '-v', 'error', '-f', 'ivf', '-i', 'pipe:0', '-f', 'null', '-'], { input: Buffer.concat(parts) });
  return r.stderr.toString().split('\n').filter((l) => l.trim());
}

test('every participant receives every other (VP8 and H.264); the recording taps who is there', async () => {
  const a = await joined('sfu', 'A', 1);
  const b = await joined('sfu', 'B', 2, { codec: 'h264' });
  const c = await joined('sfu', 'C', 3);
  const all = [a, b, c];
  await until(() => all.every((x) => all.every((y) => x === y || (framesFrom(x, y) >= 15 && audioFrom(x, y) >= 50))), 30_000, 'full mesh of media through the SFU').catch((e: Error) => {
    const names = new Map(all.map((p, i) => [p.participantId, 'ABC'[i]]));
    const dump = all.map((x, i) => `${'ABC'[i]} got ${JSON.stringify([...x.received].map(([k, v]) => [names.get(k.split(':')[0]) + ':' + k.split(':')[1], v]))}`);
    throw new Error(`${e.message}\n${dump.join('\n')}`);
  });

  const t0 = Date.now();
  const ack = await a.request('record:start', {});
  expect(ack).toMatchObject({ ok: true, recording: { roomId: 'sfu', status: 'recording' } });
  const probe = recorder.activeFor('sfu') as RecordingProbe;
  expect(probe.sources.size).toBe(3);
  await until(() => [...probe.stats.values()].every((s) => s.frames >= 10 && s.audio >= 25), 15_000, 'frames from every source');
  const firstKey = Math.max(...[...probe.stats.values()].map((s) => s.firstKeyframeAt! - t0));
  // eslint-disable-next-line no-console
  console.log(`record:start → first keyframe from every source: ${firstKey} ms`);
  for (const s of probe.stats.values()) expect(s.keyframes).toBeGreaterThanOrEqual(1);
  await until(() => all.every((x) => x.recording?.status === 'recording'), 5000, 'everyone told');

  const d = await joined('sfu', 'D', 4);
  await until(() => probe.sources.size === 4 && (probe.stats.get(`${d.participantId}:camera`)?.frames ?? 0) >= 10, 15_000, 'late joiner in the recording');
  expect(d.recording?.status).toBe('recording'); // late joiner was told on join

  const cId = c.participantId!;
  await c.leave();
  await until(() => probe.removed.includes(`${cId}:camera`), 5000, 'leaver removed from the recording');

  const stop = await b.request('record:stop', {});
  expect(stop).toMatchObject({ ok: true, recording: { status: 'available' } });
  await until(() => [a, b, d].every((x) => x.recording?.status === 'available'), 5000, 'everyone told it stopped');
  // media keeps flowing to D from A after all that
  const before = framesFrom(d, a);
  await sleep(1000);
  expect(framesFrom(d, a)).toBeGreaterThan(before);
});

test('a participant whose media the server lost is taken out and joins again by itself: the recording and the others get it back', async () => {
  const a = await joined('again', 'A', 1);
  const b = await joined('again', 'B', 2);
  await until(() => framesFrom(b, a) >= 15, 20_000, 'A reaches B');
  expect((await b.request('record:start', {})).ok).toBe(true);
  const probe = recorder.activeFor('again') as RecordingProbe;
  const notices: string[] = [];
  a.on('notice', (n) => notices.push(`${n.code}: ${n.message}`));
  const firstId = a.participantId!;
  server.conference.room('again')!.peer(firstId)!.debugFail(); // as when ICE/DTLS fails
  await until(() => a.rejoins === 1 && a.participantId !== firstId, 10_000, 'A joined again');
  expect(notices).toEqual(['REC_ERR_BAD_SIGNAL: WebRTC pub connection failed (ICE/DTLS); reconnecting']);
  // One A in the room (the old one was taken out), and the recording taps the new one.
  expect(server.conference.room('again')!.participants().map((p) => p.name).sort()).toEqual(['A', 'B']);
  await until(() => probe.sources.has(`${a.participantId}:camera`) && !probe.sources.has(`${firstId}:camera`), 10_000, 'the recording taps the new A, not the old');
  const frames: EncodedVideoFrame[] = [];
  probe.sources.get(`${a.participantId}:camera`)!.on('video', (f) => frames.push(f));
  await until(() => frames.length >= 15, 10_000, "the recording gets the new A's video");
  // B, who stayed, receives the new A: its answer keeps the old A's sections as inactive ones.
  await until(() => framesFrom(b, a) >= 15 && audioFrom(b, a) >= 50, 20_000, 'the new A reaches B');
  // Someone joining now receives the new A.
  const c = await joined('again', 'C', 3);
  await until(() => framesFrom(c, a) >= 15 && audioFrom(c, a) >= 50, 20_000, 'the new A reaches C');
});

test('people who come and go are freed: nothing of a departed participant stays in the server while others stay', async () => {
  // A long meeting sees many joins and leaves; what the server keeps of each must go when they
  // do. In a child process of its own (see churn-child.ts for why).
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(__dirname, '../helpers/churn-child.ts'), '4'], { encoding: 'utf8', timeout: 80_000, env: { ...process.env, LOG_LEVEL: 'silent' } });
  expect(r.stderr.split('\n').filter((l) => /Error|failed/.test(l))).toEqual([]);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { departed: number; reachable: number; lateReachesStay: boolean };
  expect(out).toEqual({ departed: 4, reachable: 0, lateReachesStay: true });
});

test('5% loss on a publisher: NACK/PLI keep the recorded frames decodable', async () => {
  const lossy = await joined('lossy', 'Lossy', 1, { outboundLoss: 0.05 });
  const viewer = await joined('lossy', 'Viewer', 2);
  expect((await viewer.request('record:start', {})).ok).toBe(true);
  const probe = recorder.activeFor('lossy') as RecordingProbe;
  const src = probe.sources.get(`${lossy.participantId}:camera`)!;
  const frames: EncodedVideoFrame[] = [];
  src.on('video', (f) => frames.push(f));
  await sleep(8000);
  const seconds = 8;
  const expected = 15 * seconds;
  // eslint-disable-next-line no-console
  console.log(`5% loss: ${frames.length}/${expected} frames recorded, ${frames.filter((f) => f.keyframe).length} keyframes, PLIs answered ${lossy.keyframeRequests}`);
  const st = lossy.senderStats();
  // eslint-disable-next-line no-console
  console.log(`5% loss: sender sent ${st.packets} video packets, got ${st.nacks} NACKs, retransmitted ${st.retransmitted}`);
  expect(st.retransmitted).toBeGreaterThan(st.packets * 0.02); // the loss was real and NACK repaired it
  expect(frames.length).toBeGreaterThan(expected * 0.7);
  expect(frames[0].keyframe).toBe(true);
  expect(decodeErrors(frames)).toEqual([]);
  // the viewer (through the SFU, NACKed per subscriber) also gets nearly everything
  expect(framesFrom(viewer, lossy)).toBeGreaterThan(expected * 0.7);
});

test('bad input gets clear errors; the server and other rooms carry on', async () => {
  const a = await joined('calm', 'A', 1);
  const b = await joined('calm', 'B', 2);
  await until(() => framesFrom(b, a) >= 10, 20_000, 'calm room media');

  const bad = await participant(server.url, 'x', 'bad', 3, { publish: false });
  open.push(bad);
  const err = (r: { ok: boolean; error?: { code: string } } & object) => (r.ok ? 'ok' : r.error!.code);
  // before join
  expect(err(await bad.request('signal', { pc: 'pub', type: 'offer', sdp: 'v=0' }))).toBe('REC_ERR_NOT_JOINED');
  expect(err(await bad.request('record:start', {}))).toBe('REC_ERR_NOT_JOINED');
  // invalid room ids, junk join payloads
  for (const roomId of ['', 'a b', 'x'.repeat(65), '../etc', 42]) {
    expect(err(await bad.request('join', { roomId, name: 'n' }))).toBe('REC_ERR_INVALID_ROOM_ID');
  }
  expect(err(await bad.request('join', 'nonsense'))).toBe('REC_ERR_BAD_REQUEST');
  // unknown room for REST
  const post = await fetch(`${server.url}/api/rooms/nobody-here/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  expect(post.status).toBe(404);
  expect((await post.json()).error.code).toBe('REC_ERR_ROOM_EMPTY');
  const badId = await fetch(`${server.url}/api/rooms/bad%20id/recording`, { method: 'POST' });
  expect(badId.status).toBe(400);
  const tooBig = await fetch(`${server.url}/api/rooms/calm/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ layout: 'x'.repeat(40_000) }) });
  expect(tooBig.status).toBe(413);
  expect((await fetch(`${server.url}/r/bad%20room`)).status).toBe(400);

  // joined now: malformed, out-of-order, oversized signalling
  expect((await bad.request('join', { roomId: 'junk', name: 'bad' })).ok).toBe(true);
  expect(err(await bad.request('signal', { pc: 'pub', type: 'offer', sdp: 'v=0\r\nm=video banana\r\n' }))).toBe('REC_ERR_BAD_SIGNAL');
  expect(err(await bad.request('signal', { pc: 'sub', type: 'answer', sdp: 'v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:x\r\na=fingerprint:sha-256 00\r\n' }))).toBe('REC_ERR_BAD_SIGNAL'); // no offer out
  expect(err(await bad.request('signal', { pc: 'pub', type: 'answer', sdp: 'v=0' }))).toBe('REC_ERR_BAD_SIGNAL');
  expect(err(await bad.request('signal', { pc: 'pub', type: 'candidate', candidate: { candidate: 'candidate:1 1 udp' } }))).toBe('REC_ERR_BAD_SIGNAL');
  expect(err(await bad.request('signal', { pc: 'pub', type: 'offer', sdp: 'v=0\r\n' + 'a=x\r\n'.repeat(20_000) }))).toBe('REC_ERR_PAYLOAD_TOO_LARGE');
  expect(err(await bad.request('record:stop', {}))).toBe('REC_ERR_NOT_RECORDING');
  expect(err(await bad.request('record:start', { layout: 'no such layout!' }))).toBe('REC_ERR_UNKNOWN_LAYOUT');
  expect(err(await bad.request('join', { roomId: 'junk', name: 'again' }))).toBe('REC_ERR_BAD_REQUEST');
  // a message beyond socket.io's maxHttpBufferSize closes only that socket
  const huge = await participant(server.url, 'x', 'huge', 4, { publish: false });
  open.push(huge);
  await huge.request('signal', { blob: 'x'.repeat(1024 * 1024) }, 3000).catch(() => undefined);

  // junk RTP: a publisher whose every 5th video payload is random bytes
  const junk = await joined('junk-rtp', 'Junk', 5, { corruptVideoEvery: 5 });
  const watcher = await joined('junk-rtp', 'Watcher', 6);
  expect((await watcher.request('record:start', {})).ok).toBe(true);
  await sleep(3000);
  expect(junk.participantId).toBeTruthy();

  // the calm room never noticed
  const before = framesFrom(b, a);
  await sleep(1500);
  expect(framesFrom(b, a)).toBeGreaterThan(before + 10);
  const health = await fetch(`${server.url}/healthz`);
  expect(health.status).toBe(200);
});
