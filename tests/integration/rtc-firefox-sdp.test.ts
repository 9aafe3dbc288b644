/**
 * What Firefox sends, with werift peers standing in for the browser (fast, no browser): an offer
 * whose sections after the first carry port 0 and `a=bundle-only` (JSEP max-bundle), and host
 * candidates hidden behind mDNS `.local` names the server cannot resolve. The server publishes
 * and forwards every section, and both connections come up on addresses learnt from the peer's
 * checks (peer-reflexive). The browser end to end is e2e-firefox.
 */
import { randomUUID } from 'node:crypto';
import type { WeriftParticipant } from '../../src/rtc/WeriftParticipant';
import { parseMediaSections } from '../../src/rtc/sdp';
import type { TesseraServer } from '../../src/server/TesseraServer';
import { FakeRecorder, type RecordingProbe } from '../helpers/rtc-fakeRecorder';
import { participant, startServer, until } from '../helpers/rtc-harness';

jest.setTimeout(60_000);

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

/** Firefox's shape of an offer: every bundled section after the first is port 0 + a=bundle-only. */
function bundleOnly(sdp: string): string {
  let section = -1;
  return sdp
    .split('\r\n')
    .flatMap((line) => {
      const m = /^m=(\w+) \d+ (.*)$/.exec(line);
      if (!m) return [line];
      section++;
      return section === 0 ? [line] : [`m=${m[1]} 0 ${m[2]}`, 'a=bundle-only'];
    })
    .join('\r\n');
}

/** Every host candidate's address replaced by a random mDNS name (RFC 8828 mode 2), as Firefox does. */
function mdnsNames(sdp: string): string {
  const names = new Map<string, string>();
  return sdp.replace(/^(a=candidate:\S+ \d \S+ \d+ )(\S+)( \d+ typ host)/gm, (_, a: string, ip: string, b: string) => {
    if (!names.has(ip)) names.set(ip, `${randomUUID()}.local`);
    return `${a}${names.get(ip)}${b}`;
  });
}

const framesFrom = (p: WeriftParticipant, other: WeriftParticipant) => p.received.get(`${other.participantId}:camera`)?.frames ?? 0;
const audioFrom = (p: WeriftParticipant, other: WeriftParticipant) => p.received.get(`${other.participantId}:mic`)?.audioPackets ?? 0;

test('an offer with bundle-only sections and only mDNS host candidates: published, forwarded, recorded; both connections come up', async () => {
  const sent: string[] = [];
  const fox = await participant(server.url, 'fx', 'Fox', 1, {
    rewriteSdp: (sdp, pc) => {
      const out = mdnsNames(pc === 'pub' ? bundleOnly(sdp) : sdp);
      sent.push(out);
      return out;
    },
  });
  const red = await participant(server.url, 'fx', 'Red', 2);
  open.push(fox, red);
  expect(await fox.join()).toMatchObject({ ok: true });
  expect(await red.join()).toMatchObject({ ok: true });

  // The shapes are what Firefox sends: the video section of the offer is port 0 + bundle-only,
  // and no candidate the server got carries an address.
  const offer = parseMediaSections(sent[0]);
  expect(offer.map((s) => s.kind).sort()).toEqual(['audio', 'video']);
  expect(offer[0]).toMatchObject({ port: 9, bundleOnly: false });
  expect(offer[1]).toMatchObject({ port: 0, bundleOnly: true });
  const candidates = sent.flatMap((s) => s.split('\r\n').filter((l) => l.startsWith('a=candidate:')));
  expect(candidates.length).toBeGreaterThan(0);
  expect(candidates.every((l) => l.split(' ')[4].endsWith('.local'))).toBe(true);

  // Published and forwarded both ways (so both of Fox's connections are up).
  await until(() => framesFrom(red, fox) >= 15 && audioFrom(red, fox) >= 50 && framesFrom(fox, red) >= 15 && audioFrom(fox, red) >= 50, 30_000, 'media both ways');
  const room = server.conference.room('fx')!;
  expect(room.publicationsOf(fox.participantId!).map((x) => x.purpose).sort()).toEqual(['camera', 'mic']);

  // Recorded.
  expect(await red.request('record:start', {})).toMatchObject({ ok: true });
  const probe = recorder.activeFor('fx') as RecordingProbe;
  await until(() => (probe.stats.get(`${fox.participantId}:camera`)?.frames ?? 0) >= 10 && (probe.stats.get(`${fox.participantId}:camera`)?.audio ?? 0) >= 25, 15_000, "Fox's frames and audio in the recording");
  expect(await red.request('record:stop', {})).toMatchObject({ ok: true });
});

test('a trickled mDNS candidate is skipped (acknowledged, not an error); an unresolvable name never fails the connection', async () => {
  const fox = await participant(server.url, 'fx2', 'Fox', 1, { rewriteSdp: (sdp) => mdnsNames(sdp) });
  open.push(fox);
  expect(await fox.join()).toMatchObject({ ok: true });
  const ack = await fox.request('signal', { pc: 'pub', type: 'candidate', candidate: { candidate: `candidate:1 1 UDP 2122252543 ${randomUUID()}.local 50000 typ host`, sdpMid: '0', sdpMLineIndex: 0 } });
  expect(ack).toEqual({ ok: true });
  const red = await participant(server.url, 'fx2', 'Red', 2);
  open.push(red);
  expect(await red.join()).toMatchObject({ ok: true });
  await until(() => framesFrom(red, fox) >= 15 && framesFrom(fox, red) >= 15, 30_000, 'media both ways');
});
