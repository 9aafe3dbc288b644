import { setTimeout as sleep } from 'node:timers/promises';
import { MediaStreamTrack, RTCPeerConnection, RtpHeader, RtpPacket, type RTCRtpTransceiver } from 'werift';
import { audioCodecs, codecForForwarding, endForward, headerExtensions, peerConfig, reuseInactiveSection, videoCodecs, withoutDefaultStun } from '../../src/rtc/negotiation';
import { parseMediaSections } from '../../src/rtc/sdp';
import { Publication } from '../../src/rtc/Publication';
import { RTC_DEFAULTS } from '../../src/rtc/options';
import { enlargeRecvBuffers } from '../../src/rtc/udpBuffers';
import { logger } from '../../src/logger';
import '../../src/rtc/weriftFixes';

/**
 * What werift (0.25) does that Tessera relies on or corrects, with real werift connections over
 * loopback: the server's subscriber connection (`peerConfig(…, 'sub')`) offering to a werift
 * answerer as the headless participant does.
 */
const server = () => new RTCPeerConnection(peerConfig({ publicIp: null, rtcMinPort: null, rtcMaxPort: null, host: '127.0.0.1' }, 'sub'));
const client = () =>
  new RTCPeerConnection({ codecs: { audio: audioCodecs('sub'), video: videoCodecs('sub') }, headerExtensions: headerExtensions('sub'), iceUseIpv6: false, iceServers: [], iceAdditionalHostAddresses: ['127.0.0.1'], bundlePolicy: 'max-bundle' });

async function gathered(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState !== 'complete') await pc.iceGatheringStateChange.watch((s) => s === 'complete', 10_000);
}

/** One offer/answer round, the server offering; returns the offer the client got. */
async function negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection): Promise<string> {
  const offer = await offerer.createOffer();
  withoutDefaultStun(offerer);
  await offerer.setLocalDescription(offer);
  await gathered(offerer);
  const sdp = offerer.localDescription!.sdp;
  await answerer.setRemoteDescription({ type: 'offer', sdp });
  const answer = await answerer.createAnswer();
  withoutDefaultStun(answerer);
  await answerer.setLocalDescription(answer);
  await gathered(answerer);
  await offerer.setRemoteDescription(answerer.localDescription!);
  return sdp;
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A publication as Peer makes one, fed by hand: `send` plays the publisher's RTP. */
function publication(source: RTCPeerConnection, peerId: string, kind: 'audio' | 'video') {
  const t = source.addTransceiver(kind, { direction: 'recvonly' });
  const pub = new Publication({ peerId, mid: t.mid ?? '0', purpose: kind === 'audio' ? 'mic' : 'camera', kind, track: t.receiver.track, receiver: t.receiver, mimeType: kind === 'audio' ? 'audio/opus' : 'video/VP8', options: RTC_DEFAULTS, logger });
  const pt = kind === 'audio' ? 111 : 96;
  const send = (seq: number, timestamp: number, extensions: Array<{ id: number; payload: Buffer }> = []) =>
    t.receiver.track.onReceiveRtp.execute(new RtpPacket(new RtpHeader({ payloadType: pt, sequenceNumber: seq, timestamp, marker: true, ssrc: 4242, extensions, extension: extensions.length > 0 }), Buffer.from([0x10, 0, 0, 0])));
  return { pub, send };
}

type Received = { mid: string | null; ssrc: number; seq: number; ts: number; midExt: string | undefined };

describe('forwarding through werift 0.25', () => {
  let a: RTCPeerConnection;
  let b: RTCPeerConnection;
  let source: RTCPeerConnection;
  const received: Received[] = [];
  const tracksFired: string[] = [];
  const watched = new Set<MediaStreamTrack>();

  beforeEach(() => {
    a = server();
    b = client();
    source = new RTCPeerConnection({ iceServers: [] });
    received.length = 0;
    tracksFired.length = 0;
    b.onTrack.subscribe((track) => {
      const t = b.getTransceivers().find((x) => x.receiver.tracks.includes(track)) as RTCRtpTransceiver;
      tracksFired.push(t.mid!);
      if (watched.has(track)) return; // a section taken over keeps its track
      watched.add(track);
      track.onReceiveRtp.subscribe((rtp) => {
        const midId = t.headerExtensions.find((e) => e.uri.endsWith('sdes:mid'))?.id;
        received.push({ mid: t.mid, ssrc: rtp.header.ssrc, seq: rtp.header.sequenceNumber, ts: rtp.header.timestamp, midExt: rtp.header.extensions.find((e) => e.id === midId)?.payload.toString() });
      });
    });
  });

  afterEach(async () => {
    await Promise.allSettled([a.close(), b.close(), source.close()]);
  });

  /** A's camera forwarded to B's subscriber connection, connected. */
  async function forwardedCamera() {
    const cam = publication(source, 'A', 'video');
    const t = a.addTransceiver('video', { direction: 'sendonly' });
    t.codecs = codecForForwarding('video', 'video/VP8');
    cam.pub.addSubscriber('B', t.sender);
    await negotiate(a, b);
    await until(() => a.connectionState === 'connected' && b.connectionState === 'connected', 10_000, 'connected');
    return { cam, t };
  }

  test("the publisher's header extensions do not reach the subscriber: its mid extension is the subscriber's", async () => {
    const { cam, t } = await forwardedCamera();
    // The ids are each connection's own: Chrome offers abs-send-time as 2, werift gave our mid 2
    // here. A publisher's abs-send-time (3 bytes) with the id of the subscriber's mid:
    const midId = t.headerExtensions.find((e) => e.uri.endsWith('sdes:mid'))!.id;
    for (let i = 0; i < 20 && received.length === 0; i++) {
      cam.send(1000 + i, 90_000 * i, [{ id: midId, payload: Buffer.from([0x12, 0x34, 0x56]) }]);
      await sleep(50);
    }
    await until(() => received.length > 0, 5000, 'a forwarded packet');
    expect(received[0].midExt).toBe(t.mid);
    cam.pub.close();
  });

  test("the packets a subscriber's sender keeps for retransmission hold their mid's bytes, not a 64 KB slab of Node's buffer pool each", async () => {
    // Before day 38 every packet's mid extension was a fresh slice of the pool: the 128 packets a
    // sender keeps pinned whole 64 KB slabs, 16 MB of a server with 8 people meeting.
    const { cam, t } = await forwardedCamera();
    for (let i = 0; i < 200; i++) {
      cam.send(2000 + i, 3000 * i);
      if (i % 20 === 19) await sleep(10);
    }
    await until(() => received.length >= 150, 5000, 'forwarded packets');
    expect(received.every((r) => r.midExt === t.mid)).toBe(true);
    const midId = t.headerExtensions.find((e) => e.uri.endsWith('sdes:mid'))!.id;
    const kept = (t.sender as unknown as { rtpCache: Array<RtpPacket | undefined> }).rtpCache.filter((p): p is RtpPacket => !!p);
    expect(kept.length).toBe(128);
    const held = new Set(kept.map((p) => p.header.extensions.find((e) => e.id === midId)!.payload.buffer));
    const bytes = [...held].reduce((n, buffer) => n + buffer.byteLength, 0);
    expect(bytes).toBeLessThan(1024);
    cam.pub.close();
  });

  test("a departed publisher's sections stay bundled and inactive, and carry the next publisher as one continuing stream", async () => {
    const camA = publication(source, 'A', 'video');
    const micA = publication(source, 'A', 'audio');
    const video = a.addTransceiver('video', { direction: 'sendonly' });
    video.codecs = codecForForwarding('video', 'video/VP8');
    const audio = a.addTransceiver('audio', { direction: 'sendonly' });
    audio.codecs = codecForForwarding('audio', 'audio/opus');
    camA.pub.addSubscriber('B', video.sender);
    micA.pub.addSubscriber('B', audio.sender);
    await negotiate(a, b);
    await until(() => a.connectionState === 'connected' && b.connectionState === 'connected', 10_000, 'connected');
    let seqA = 1000;
    for (let i = 0; i < 40 && received.length < 5; i++) {
      camA.send(seqA++, 3000 * i);
      await sleep(25);
    }
    await until(() => received.length >= 5, 5000, "A's video");

    // A leaves: both forwards end; nothing else is in B's connection.
    camA.pub.close();
    micA.pub.close();
    endForward(video);
    endForward(audio);
    const leftOffer = await negotiate(a, b);
    // Still one BUNDLE group with both sections in it (Chrome refuses max-bundle without one).
    expect(parseMediaSections(leftOffer).map((s) => [s.mid, s.port, s.direction])).toEqual([[video.mid, 9, 'inactive'], [audio.mid, 9, 'inactive']]);
    expect(leftOffer).toContain(`a=group:BUNDLE ${video.mid} ${audio.mid}\r\n`);

    await sleep(300);
    // C joins: C's forwards take A's sections.
    const camC = publication(source, 'C', 'video');
    const t = reuseInactiveSection(a, 'video');
    expect(t).toBe(video);
    expect(reuseInactiveSection(a, 'video')).toBeNull(); // taken
    t!.codecs = codecForForwarding('video', 'video/VP8');
    camC.pub.addSubscriber('B', t!.sender);
    const joinOffer = await negotiate(a, b);
    expect(parseMediaSections(joinOffer).map((s) => [s.mid, s.direction])).toEqual([[video.mid, 'sendonly'], [audio.mid, 'inactive']]);
    expect(tracksFired).toEqual([video.mid, audio.mid, video.mid]); // the answerer was told of the new sender
    const before = received.length;
    const lastA = received[before - 1]; // A's last packet (it arrived long ago: A left before the renegotiation)
    for (let i = 0; i < 40 && received.length < before + 5; i++) {
      camC.send(50_000 + i, 777_777 + 3000 * i); // C's own numbering, far from A's
      await sleep(25);
    }
    await until(() => received.length >= before + 5, 5000, "C's video");
    const firstC = received[before];
    expect(firstC.mid).toBe(video.mid);
    expect(firstC.ssrc).toBe(lastA.ssrc);
    // one stream that paused: the next sequence number, and a timestamp advanced by the pause
    expect(firstC.seq).toBe((lastA.seq + 1) & 0xffff);
    const advanced = (firstC.ts - lastA.ts) >>> 0;
    expect(advanced).toBeGreaterThanOrEqual(90 * 300);
    expect(advanced).toBeLessThan(90 * 30_000);
    camC.pub.close();
  });
});

describe('werift 0.25 stops the transceivers it lets go', () => {
  // werift 0.24 dropped a recycled transceiver from its list without stopping it and marked a
  // removed section `stopped` without stopping it either: their RTCP timers ran for the life of
  // the process, and we stopped them ourselves. This holds werift to doing it.
  type T = ReturnType<RTCPeerConnection['getTransceivers']>[number];
  const running = (t: T) => !(t.receiver as unknown as { stopped: boolean }).stopped || !(t.sender as unknown as { stopped: boolean }).stopped;

  test('a section stopped and renegotiated, its m-line then taken by a new one, and every one at close', async () => {
    const a = new RTCPeerConnection({ iceServers: [] });
    const b = new RTCPeerConnection({ iceServers: [] });
    try {
      const first = a.addTransceiver('video', { direction: 'sendonly' });
      await negotiate(a, b);
      const remoteFirst = b.getTransceivers()[0];
      first.stop();
      await negotiate(a, b);
      expect(running(first)).toBe(false);
      expect(running(remoteFirst)).toBe(false); // the answerer's side of the removed section
      const second = a.addTransceiver('video', { direction: 'sendonly' });
      await negotiate(a, b);
      expect(a.getTransceivers()).toEqual([second]); // the stopped one's m-line was reused
      expect(running(second)).toBe(true);
      await a.close();
      await b.close();
      expect([...a.getTransceivers(), ...b.getTransceivers()].filter(running)).toEqual([]);
    } finally {
      await Promise.allSettled([a.close(), b.close()]);
    }
  });
});

test("werift's UDP sockets are found and their receive buffers enlarged", async () => {
  const pc = server();
  try {
    pc.addTransceiver('audio', { direction: 'sendonly' });
    withoutDefaultStun(pc);
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const sockets = () => pc.iceTransports.flatMap((t) => (t.connection as unknown as { protocols: Array<{ transport?: { socket?: import('node:dgram').Socket } }> }).protocols.map((p) => p.transport?.socket)).filter((s) => s !== undefined);
    expect(sockets().length).toBeGreaterThan(0);
    const before = sockets().map((s) => s.getRecvBufferSize());
    enlargeRecvBuffers(pc, 4 * 1024 * 1024, logger);
    const after = sockets().map((s) => s.getRecvBufferSize());
    // the kernel caps the request at net.core.rmem_max (and doubles it): larger than before, unless already at the cap
    for (let i = 0; i < after.length; i++) expect(after[i]).toBeGreaterThan(before[i]);
  } finally {
    await pc.close();
  }
});
