/**
 * A seeded signalling fuzz: 10,000 messages from 24 sockets — garbage shapes, wrong types, huge
 * strings, mutated SDPs, hostile candidates, unknown events, binary — while another room records
 * through the real pipeline. The server must keep answering other rooms, its memory must stay
 * bounded from round to round, and the recording must end `available` and decode cleanly.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { io, type Socket } from 'socket.io-client';
import { RTCPeerConnection } from 'werift';
import { participantStyle } from '../../src/media/SyntheticClip';
import type { RecordingInfo } from '../../src/pipeline/types';
import type { WeriftParticipant } from '../../src/rtc/WeriftParticipant';
import type { TesseraServer } from '../../src/server/TesseraServer';
import { allFrames, colourShare, decodeErrors } from '../helpers/media';
import { participant, sleep, startRecordingServer, until } from '../helpers/rtc-harness';

jest.setTimeout(300_000);

v8.setFlagsFromString('--expose_gc');
const gc = vm.runInNewContext('gc') as () => void;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `tessera-fuzz-${process.pid}-`));
let server: TesseraServer;
let closeServer: () => Promise<void> = async () => undefined;
const peers: WeriftParticipant[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  ({ server, close: closeServer } = await startRecordingServer(path.join(tmp, 'rec')));
});

afterAll(async () => {
  for (const s of sockets) s.close();
  await Promise.all(peers.map((p) => p.close()));
  await closeServer();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** mulberry32: the same seed, the same 10,000 messages. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('10,000 seeded hostile messages beside a live recording: the server answers, memory stays bounded, the recording is clean', async () => {
  // the live recording in its own room
  const red = await participant(server.url, 'live', 'Red', 1);
  const green = await participant(server.url, 'live', 'Green', 2);
  peers.push(red, green);
  await red.join();
  await green.join();
  await until(() => server.conference.room('live')?.participants().filter((p) => p.publishing.length >= 2).length === 2, 20_000, 'both publishing');
  expect((await red.request('record:start', {})).ok).toBe(true);

  // material for mutations: a real offer
  const pc = new RTCPeerConnection({});
  pc.addTransceiver('video', { direction: 'sendonly' });
  pc.addTransceiver('audio', { direction: 'sendonly' });
  await pc.setLocalDescription(await pc.createOffer());
  const realSdp = pc.localDescription!.sdp;
  await pc.close();

  const rand = rng(0x7e55e7a);
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T,>(xs: readonly T[]): T => xs[int(xs.length)];
  const str = (max: number) => Array.from({ length: int(max) }, () => String.fromCharCode(int(0x2fff))).join('');
  const junk = (depth = 0): unknown => {
    switch (int(depth > 2 ? 6 : 9)) {
      case 0: return null;
      case 1: return int(2) === 0;
      case 2: return rand() * 1e12 - 5e11;
      case 3: return str(40);
      case 4: return 'x'.repeat(int(200_000)); // up to most of a socket.io message
      case 5: return NaN;
      case 6: return Array.from({ length: int(5) }, () => junk(depth + 1));
      case 7: return Object.fromEntries(Array.from({ length: int(5) }, () => [pick(['roomId', 'name', 'token', 'pc', 'type', 'sdp', 'candidate', 'tracks', 'layout', 'accept', 'consent', '__proto__', 'constructor', str(8)]), junk(depth + 1)]));
      default: return Buffer.from(str(64));
    }
  };
  const mutateSdp = (): string => {
    const lines = realSdp.split('\r\n');
    switch (int(6)) {
      case 0: return lines.slice(0, int(lines.length)).join('\r\n'); // truncated
      case 1: return lines.map((l) => (rand() < 0.1 ? str(30) : l)).join('\r\n'); // lines replaced
      case 2: { // many media sections
        const m = lines.findIndex((l) => l.startsWith('m=video'));
        const section = lines.slice(m, lines.findIndex((l, i) => i > m && l.startsWith('m=')));
        return [...lines, ...Array.from({ length: int(80) }, () => section).flat()].join('\r\n');
      }
      case 3: return lines.map((l) => l.replace(/\d+/g, () => String(int(1e10)))).join('\r\n'); // numbers
      case 4: return realSdp; // valid: the server answers it
      default: return lines.filter(() => rand() > 0.2).join('\r\n');
    }
  };
  const candidate = () => pick([
    `candidate:1 1 udp 2122260223 ${pick(['127.0.0.1', '10.0.0.1', 'localhost', 'x.local', '::1', '0.0.0.0', '255.255.255.255', '224.0.0.1', str(20)])} ${int(70000)} typ ${pick(['host', 'srflx', 'relay', 'prflx', str(5)])}`,
    str(300),
    '',
  ]);
  const message = (): [string, unknown] => {
    const roomId = pick([`fuzz${int(6)}`, str(10), 'a'.repeat(65), '../etc', junk()]);
    switch (int(12)) {
      case 0: case 1: return ['join', pick([{ roomId, name: pick([str(20), junk()]), token: junk() }, junk()])];
      case 2: case 3: case 4: return ['signal', { pc: pick(['pub', 'sub', junk()]), type: 'offer', sdp: mutateSdp(), tracks: pick([{ 0: 'camera', 1: 'mic' }, { 0: 'screen', 1: 'screen' }, junk()]) }];
      case 5: return ['signal', { pc: pick(['pub', 'sub']), type: 'candidate', candidate: { candidate: candidate(), sdpMid: pick(['0', '1', junk()]), sdpMLineIndex: pick([0, 1, 99, junk()]) } }];
      case 6: return ['signal', junk()];
      case 7: return ['record:start', pick([{}, { layout: pick(['grid', 'speaker', str(10), junk()]) }, { consent: pick(['required', junk()]) }, junk()])];
      case 8: return ['record:stop', junk()];
      case 9: return ['consent', pick([{ accept: int(2) === 0 }, junk()])];
      case 10: return ['leave', junk()];
      default: return [pick(['__proto__', 'constructor', 'connect', 'disconnect', 'error', 'newListener', str(12)]), junk()];
    }
  };

  const RESERVED = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);
  const KNOWN = new Set(['join', 'signal', 'record:start', 'record:stop', 'consent', 'leave']);
  const SOCKETS = 24;
  const ROUNDS = 5;
  const PER_ROUND = 2000;
  const heap: number[] = [];
  let sent = 0;
  let answered = 0;
  let reconnects = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const roundStart = Date.now();
    const connect = () => new Promise<Socket>((resolve, reject) => {
      const s = io(server.url, { transports: ['websocket'], reconnection: false, forceNew: true });
      sockets.push(s);
      s.once('connect', () => resolve(s));
      s.once('connect_error', reject);
    });
    const conns = await Promise.all(Array.from({ length: SOCKETS }, connect));
    let left = PER_ROUND;
    await Promise.all(conns.map(async (first, k) => {
      let s = first;
      while (left > 0) {
        left--;
        const [event, payload] = message();
        sent++;
        if (!s.connected) {
          // the server closes a socket whose message passed the size limit: come back, as a client would
          reconnects++;
          s.close();
          s = conns[k] = await connect();
        }
        // unknown events are never acknowledged: waiting for one would only measure the timeout
        if (RESERVED.has(event) || !KNOWN.has(event) || int(4) === 0) {
          // no acknowledgement asked for; reserved names go as a raw packet (the client refuses them)
          (s as unknown as { packet(p: object): void }).packet({ type: 2, nsp: '/', data: [event, payload] });
          continue;
        }
        try {
          await s.timeout(5000).emitWithAck(event, payload);
          answered++;
        } catch {
          /* no answer (unknown event, a dropped socket) */
        }
      }
    }));
    for (const s of conns) s.close();
    // other rooms are answered all along: health, the API, and a join in yet another room
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.url}/api/recordings?limit=5`)).status).toBe(200);
    const probe = await participant(server.url, `other${round}`, 'Probe', 3, { publish: false });
    expect((await probe.join()).ok).toBe(true);
    await probe.close();
    const fuzzRooms = [...Array(6).keys()].map((i) => `fuzz${i}`);
    await until(() => fuzzRooms.every((id) => !server.conference.room(id)), 10_000, 'the fuzz rooms to empty').catch((err: unknown) => {
      // Seen once (day 29; a join run after its socket had closed, fixed on day 30 — see
      // security.test.ts 10.): which rooms stayed, with how many peers and what recording.
      // eslint-disable-next-line no-console
      console.log(`fuzz round ${round}: rooms left ${JSON.stringify(fuzzRooms.filter((id) => server.conference.room(id)).map((id) => ({ id, peers: server.conference.room(id)?.size, recording: server.conference.recordingState(id)?.status ?? null })))}`);
      throw err;
    });
    await sleep(500);
    gc();
    heap.push(process.memoryUsage().heapUsed);
    // eslint-disable-next-line no-console
    console.log(`fuzz round ${round}: ${Date.now() - roundStart} ms, recording ${red.recording?.status}`);
  }
  // eslint-disable-next-line no-console
  console.log(`fuzz: ${sent} messages, ${answered} acknowledged, ${reconnects} sockets closed by the server (oversized messages); heap after each round (MB): ${heap.map((h) => (h / 1e6).toFixed(1)).join(', ')}`);
  expect(sent).toBe(ROUNDS * PER_ROUND);
  expect(answered).toBeGreaterThan(sent / 2);
  // bounded: after the first round (lazy initialisation), later rounds add no more than noise
  expect(heap[ROUNDS - 1] - heap[1]).toBeLessThan(25e6);
  expect(server.conference.room('live')?.size).toBe(2);

  expect(red.recording?.status).toBe('recording');
  const stop = (await red.request('record:stop', {})) as { ok: boolean; recording: RecordingInfo; error?: unknown };
  if (!stop.ok) throw new Error(`record:stop refused: ${JSON.stringify(stop.error)}`);
  expect({ ok: stop.ok, status: stop.recording.status, error: stop.recording.error }).toEqual({ ok: true, status: 'available', error: undefined });
  const file = path.join(tmp, 'live.mp4');
  fs.writeFileSync(file, Buffer.from(await (await fetch(`${server.url}/api/recordings/${stop.recording.id}/media`)).arrayBuffer()));
  expect(decodeErrors(file)).toBe('');
  const { frames, fps } = allFrames(file, 8);
  const missing = frames.slice(fps).filter((f) => colourShare(f, participantStyle(1).hex) < 0.1 || colourShare(f, participantStyle(2).hex) < 0.1);
  expect(missing.length).toBeLessThan(frames.length * 0.05);
});
