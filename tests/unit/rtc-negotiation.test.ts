import { parseSignal, validateSdp, peerConfig, preferOfferedVideoCodecs, videoCodecs } from '../../src/rtc/negotiation';
import { announcedCandidatesOnly, bundleOnlyAsBundled, isMdnsCandidate, isRejected, parseMediaSections, withoutMdnsCandidates } from '../../src/rtc/sdp';
import { RTC_DEFAULTS } from '../../src/rtc/options';
import { PacketStatus, RTCPeerConnection, RecvDelta, RtcpPacketConverter, RtcpTransportLayerFeedback, RunLengthChunk, TransportWideCC } from 'werift';
import { applyWeriftFixes } from '../../src/rtc/weriftFixes';

const SDP = [
  'v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0 1',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0', 'a=mid:0', 'a=sendonly', 'a=ice-ufrag:abcd', 'a=ice-pwd:abcdefghijklmnopqrstuvwx',
  'a=fingerprint:sha-256 00:11', 'a=rtpmap:111 opus/48000/2', 'a=ssrc:1111 cname:x',
  'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:1', 'a=recvonly', 'a=rtpmap:96 VP8/90000',
  '',
].join('\r\n');

describe('negotiation', () => {
  test('valid offer parses with its track purposes', () => {
    const m = parseSignal({ pc: 'pub', type: 'offer', sdp: SDP, tracks: { '0': 'mic' } }, RTC_DEFAULTS);
    expect(m).toMatchObject({ pc: 'pub', type: 'offer', tracks: { '0': 'mic' } });
    const secs = parseMediaSections(SDP);
    expect(secs.map((s) => [s.kind, s.mid, s.direction, s.ssrc])).toEqual([['audio', '0', 'sendonly', 1111], ['video', '1', 'recvonly', undefined]]);
  });

  test.each([
    [null, /expected an object/],
    [{ pc: 'x', type: 'offer' }, /pc must be/],
    [{ pc: 'pub', type: 'answer', sdp: SDP }, /takes offers/],
    [{ pc: 'sub', type: 'offer', sdp: SDP }, /takes answers/],
    [{ pc: 'pub', type: 'offer', sdp: 'hello' }, /v=0/],
    [{ pc: 'pub', type: 'offer', sdp: 'v=0\r\nnonsense' }, /not <letter>=<value>/],
    [{ pc: 'pub', type: 'offer', sdp: SDP.replace(/a=fingerprint.*\r\n/, '') }, /fingerprint/],
    [{ pc: 'pub', type: 'offer', sdp: SDP, tracks: { '0': 'tv' } }, /unknown purpose/],
    [{ pc: 'pub', type: 'candidate', candidate: { candidate: 'garbage' } }, /malformed ICE candidate/],
    [{ pc: 'pub', type: 'bye' }, /type must be/],
  ])('refuses %j', (msg, re) => {
    expect(() => parseSignal(msg, RTC_DEFAULTS)).toThrow(re);
  });

  test('oversized SDP is REC_ERR_PAYLOAD_TOO_LARGE', () => {
    const big = SDP + 'a=x:' + 'y'.repeat(RTC_DEFAULTS.maxSdpBytes) + '\r\n';
    expect(() => validateSdp(big, RTC_DEFAULTS)).toThrow(expect.objectContaining({ code: 'REC_ERR_PAYLOAD_TOO_LARGE' }));
  });

  test('ICE config: port range, PUBLIC_IP and loopback announced; PLI/NACK/TWCC negotiated', () => {
    const pc = peerConfig({ publicIp: '203.0.113.7', rtcMinPort: 40000, rtcMaxPort: 40100, host: '127.0.0.1' });
    expect(pc.icePortRange).toEqual([40000, 40100]);
    expect(pc.iceAdditionalHostAddresses).toEqual(['203.0.113.7', '127.0.0.1']);
    const fb = pc.codecs!.video![0].rtcpFeedback.map((f) => `${f.type}${f.parameter ? ' ' + f.parameter : ''}`);
    expect(fb).toEqual(expect.arrayContaining(['nack', 'nack pli', 'ccm fir', 'transport-cc']));
    expect(pc.headerExtensions!.video!.map((h) => h.uri)).toContain('http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01');
    expect(peerConfig({ publicIp: null, rtcMinPort: null, rtcMaxPort: null, host: '0.0.0.0' }).iceAdditionalHostAddresses).toBeUndefined();
  });

  test('what we forward (sub) keeps repair feedback but no congestion feedback nobody acts on', () => {
    const pc = peerConfig({ publicIp: null, rtcMinPort: null, rtcMaxPort: null, host: '127.0.0.1' }, 'sub');
    const fb = pc.codecs!.video!.flatMap((c) => c.rtcpFeedback.map((f) => `${f.type}${f.parameter ? ' ' + f.parameter : ''}`));
    expect(fb).toEqual(expect.arrayContaining(['nack', 'nack pli', 'ccm fir']));
    expect(fb).not.toContain('transport-cc');
    expect(pc.codecs!.audio!.flatMap((c) => c.rtcpFeedback)).toEqual([]);
    expect([...pc.headerExtensions!.video!, ...pc.headerExtensions!.audio!].map((h) => h.uri)).toEqual(['urn:ietf:params:rtp-hdrext:sdes:mid', 'urn:ietf:params:rtp-hdrext:sdes:mid']);
  });
});

describe('Firefox offers: bundle-only sections and mDNS host candidates', () => {
  // The shape of Firefox's max-bundle offer (JSEP §5.2.1): the section after the first is port 0
  // with a=bundle-only; host candidates carry random `.local` names (RFC 8828).
  const FIREFOX = [
    'v=0', 'o=mozilla...THIS_IS_SDPARTA-99.0 1 0 IN IP4 0.0.0.0', 's=-', 't=0 0', 'a=sendrecv', 'a=fingerprint:sha-256 00:11', 'a=group:BUNDLE 0 1', 'a=ice-options:trickle',
    'm=audio 9 UDP/TLS/RTP/SAVPF 109', 'c=IN IP4 0.0.0.0',
    'a=candidate:0 1 UDP 2122187007 a22ec9bd-2c2c-48e9-957b-8c78e8be2cfb.local 41394 typ host',
    'a=candidate:1 1 UDP 2122252543 10.0.0.7 55691 typ host',
    'a=candidate:2 1 TCP 2105458943 a22ec9bd-2c2c-48e9-957b-8c78e8be2cfb.local 9 typ host tcptype active',
    'a=sendrecv', 'a=end-of-candidates', 'a=ice-pwd:3cdf69a9c5cb5311150eacaedcce0161', 'a=ice-ufrag:d008d8d2', 'a=mid:0', 'a=rtpmap:109 opus/48000/2', 'a=ssrc:3264070692 cname:{x}',
    'm=video 0 UDP/TLS/RTP/SAVPF 120', 'c=IN IP4 0.0.0.0', 'a=bundle-only', 'a=sendrecv', 'a=mid:1', 'a=rtpmap:120 VP8/90000', 'a=ssrc:4134656503 cname:{x}',
    'm=video 0 UDP/TLS/RTP/SAVPF 120', 'c=IN IP4 0.0.0.0', 'a=sendonly', 'a=mid:2', 'a=rtpmap:120 VP8/90000',
    '',
  ].join('\r\n');

  test('a port-0 section with a=bundle-only is bundled, not rejected; port 0 alone is rejected', () => {
    const s = parseMediaSections(FIREFOX);
    expect(s.map((x) => [x.mid, x.port, x.bundleOnly, x.direction, x.ssrc])).toEqual([
      ['0', 9, false, 'sendrecv', 3264070692],
      ['1', 0, true, 'sendrecv', 4134656503],
      ['2', 0, false, 'sendonly', undefined],
    ]);
    expect(s.map(isRejected)).toEqual([false, false, true]);
    expect(parseSignal({ pc: 'pub', type: 'offer', sdp: FIREFOX }, RTC_DEFAULTS)).toMatchObject({ pc: 'pub', type: 'offer' });
  });

  test('werift answers the bundle-only section as accepted once it is given port 9; the rejected one stays rejected', async () => {
    const answered = async (offer: string) => {
      const pc = new RTCPeerConnection({ ...peerConfig({ publicIp: null, rtcMinPort: null, rtcMaxPort: null, host: '127.0.0.1' }), iceAdditionalHostAddresses: undefined });
      try {
        await pc.setRemoteDescription({ type: 'offer', sdp: offer });
        return parseMediaSections((await pc.createAnswer()).sdp).map((x) => [x.mid, x.port > 0, x.direction]);
      } finally {
        await pc.close();
      }
    };
    const fixed = bundleOnlyAsBundled(FIREFOX);
    expect(parseMediaSections(fixed).map((x) => x.port)).toEqual([9, 9, 0]);
    expect(fixed.replace('m=video 9 UDP/TLS/RTP/SAVPF 120\r\nc=IN IP4 0.0.0.0\r\na=bundle-only', 'm=video 0 UDP/TLS/RTP/SAVPF 120\r\nc=IN IP4 0.0.0.0\r\na=bundle-only')).toBe(FIREFOX);
    expect(await answered(fixed)).toEqual([['0', true, 'recvonly'], ['1', true, 'recvonly'], ['2', false, 'inactive']]);
    // werift alone reads the camera's section as rejected
    expect((await answered(FIREFOX))[1]).toEqual(['1', false, 'inactive']);
    expect(bundleOnlyAsBundled(SDP)).toBe(SDP);
  });

  test('mDNS candidates are dropped from an SDP, address candidates kept, line endings kept', () => {
    const { sdp, skipped } = withoutMdnsCandidates(FIREFOX);
    expect(skipped).toBe(2);
    const candidates = sdp.split('\r\n').filter((l) => l.startsWith('a=candidate:'));
    expect(candidates).toEqual(['a=candidate:1 1 UDP 2122252543 10.0.0.7 55691 typ host']);
    expect(sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate:'))).toEqual(FIREFOX.split('\r\n').filter((l) => !l.startsWith('a=candidate:')));
    expect(withoutMdnsCandidates(SDP)).toEqual({ sdp: SDP, skipped: 0 });
    const lf = FIREFOX.replace(/\r\n/g, '\n');
    expect(withoutMdnsCandidates(lf).sdp).not.toContain('\r');
  });

  test('a trickled candidate is recognised as mDNS by its address, with or without "a="', () => {
    expect(isMdnsCandidate('candidate:0 1 UDP 2122187007 a22ec9bd-2c2c-48e9-957b-8c78e8be2cfb.local 41394 typ host')).toBe(true);
    expect(isMdnsCandidate('a=candidate:0 1 UDP 2122187007 host-x.local. 41394 typ host')).toBe(true);
    expect(isMdnsCandidate('candidate:1 1 UDP 2122252543 10.0.0.7 55691 typ host')).toBe(false);
    expect(isMdnsCandidate('candidate:1 1 UDP 1686052607 203.0.113.9 55691 typ srflx raddr 0.0.0.0 rport 0')).toBe(false);
    expect(isMdnsCandidate('')).toBe(false);
  });
});

describe('announcedCandidatesOnly (PUBLIC_IP)', () => {
  const sdp = ['v=0', 'o=- 1 0 IN IP4 0.0.0.0', 's=-', 't=0 0', 'm=audio 41700 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 10.78.0.2', 'a=mid:0',
    'a=candidate:1 1 udp 2130706431 10.78.0.2 41700 typ host', 'a=candidate:2 1 udp 2130706431 198.51.100.7 41700 typ host', 'a=end-of-candidates'].join('\r\n') + '\r\n';

  test('keeps only the public address candidates, everything else as is', () => {
    const out = announcedCandidatesOnly(sdp, '198.51.100.7');
    expect(out).toContain('a=candidate:2 1 udp 2130706431 198.51.100.7 41700 typ host\r\n');
    expect(out).not.toContain('10.78.0.2 41700 typ host');
    expect(out.replace(/a=candidate:[^\r]*\r\n/g, '')).toBe(sdp.replace(/a=candidate:[^\r]*\r\n/g, ''));
  });

  test('without PUBLIC_IP, or with no candidate on it, the SDP is unchanged', () => {
    expect(announcedCandidatesOnly(sdp, null)).toBe(sdp);
    expect(announcedCandidatesOnly(sdp, '203.0.113.9')).toBe(sdp);
  });
});

describe('werift fixes', () => {
  test('transport-cc feedback is padded to 32 bits and parses back whole', () => {
    applyWeriftFixes();
    for (const n of [1, 2, 3, 4, 5, 6, 7]) {
      // n received packets, small deltas (1 byte each): the body ends off a 32-bit boundary for most n
      const fb = new TransportWideCC({
        senderSsrc: 1, mediaSourceSsrc: 2, baseSequenceNumber: 100, packetStatusCount: n, referenceTime: 5, fbPktCount: 1,
        packetChunks: [new RunLengthChunk({ packetStatus: PacketStatus.TypeTCCPacketReceivedSmallDelta, runLength: n })],
        recvDeltas: Array.from({ length: n }, (_, k) => new RecvDelta({ type: PacketStatus.TypeTCCPacketReceivedSmallDelta, delta: 250 * (k + 1) })),
      });
      const buf = new RtcpTransportLayerFeedback({ feedback: fb }).serialize();
      expect({ n, aligned: buf.length % 4 }).toEqual({ n, aligned: 0 });
      expect(((buf.readUInt16BE(2) + 1) * 4)).toBe(buf.length); // the header's length is the packet's
      const [back] = RtcpPacketConverter.deSerialize(buf) as RtcpTransportLayerFeedback[];
      const parsed = back.feedback as TransportWideCC;
      // every delta survives (µs; werift's serialize rewrites its own objects, so compare to the inputs)
      expect(parsed.recvDeltas.map((d) => d.delta)).toEqual(Array.from({ length: n }, (_, k) => 250 * (k + 1)));
    }
  });
});

describe('the answer keeps the offerer’s order of video codecs (werift 0.25 puts its own first)', () => {
  const firstVideoCodec = (sdp: string) => /^a=rtpmap:\d+ ([^/]+)\//m.exec(sdp.slice(sdp.indexOf('m=video')))![1];

  test.each([['H264'], ['VP8']])('an offer preferring %s is answered with it first', async (preferred) => {
    const offerer = new RTCPeerConnection({ iceServers: [], codecs: { video: [...videoCodecs()].sort((a) => (a.mimeType.endsWith(preferred) ? -1 : 1)) } });
    const server = new RTCPeerConnection({ ...peerConfig({ publicIp: null, rtcMinPort: null, rtcMaxPort: null, host: '127.0.0.1' }) });
    try {
      offerer.addTransceiver('video', { direction: 'sendonly' });
      await offerer.setLocalDescription(await offerer.createOffer());
      const offer = offerer.localDescription!.sdp;
      expect(firstVideoCodec(offer)).toBe(preferred);
      preferOfferedVideoCodecs(server, offer);
      await server.setRemoteDescription({ type: 'offer', sdp: offer });
      await server.setLocalDescription(await server.createAnswer());
      expect(firstVideoCodec(server.localDescription!.sdp)).toBe(preferred);
    } finally {
      await Promise.allSettled([offerer.close(), server.close()]);
    }
  });
});
