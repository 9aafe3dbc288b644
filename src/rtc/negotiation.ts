import {
  RTCRtpCodecParameters,
  RTCRtpHeaderExtensionParameters,
  useAbsSendTime,
  useFIR,
  useNACK,
  usePLI,
  useREMB,
  useSdesMid,
  useTransportWideCC,
  useTWCC,
  type PeerConfig,
  type RTCPeerConnection,
} from 'werift';
import type { Config } from '../config';
import { TesseraError } from '../errors';
import type { VideoCodec } from '../media/types';
import { SERVED_FAMILIES } from './candidates';
import type { RtcOptions } from './options';
import { isRejected, type MediaSection } from './sdp';

/**
 * Pure negotiation helpers: which codecs and header extensions Tessera's werift peers offer, the
 * ICE configuration derived from Config, and validation of what a client sends as signalling.
 *
 * Why the feedback list matters: werift only sends a PLI (`sendRtcpPLI`) when the codec
 * negotiated `nack pli`, only NACKs when it negotiated `nack`, and only answers Chrome with
 * transport-wide congestion control feedback when `transport-cc` is both a codec feedback and a
 * header extension. Without the latter Chrome never learns its bandwidth and stays at its start
 * bitrate.
 *
 * Direction matters too. Congestion feedback is only worth its cost where someone acts on it: a
 * publisher's encoder adapts to our transport-cc (`pub`). On what we forward (`sub`) nobody
 * does — the SFU relays one encoding as is — yet with transport-cc negotiated every subscriber
 * sends a feedback packet per few packets received, which werift parses in JavaScript (measured:
 * about a tenth of the server's CPU with six werift peers), and every forwarded packet carries
 * two extensions more. So `sub` keeps NACK/PLI/FIR (repair) and the mid, nothing else.
 */
export type PcRole = 'pub' | 'sub';

function videoFeedback(role: PcRole) {
  return role === 'pub' ? [useNACK(), usePLI(), useFIR(), useREMB(), useTWCC()] : [useNACK(), usePLI(), useFIR()];
}

export function videoCodecs(role: PcRole = 'pub'): RTCRtpCodecParameters[] {
  return [
    new RTCRtpCodecParameters({ mimeType: 'video/VP8', clockRate: 90000, payloadType: 96, rtcpFeedback: videoFeedback(role) }),
    new RTCRtpCodecParameters({
      mimeType: 'video/H264',
      clockRate: 90000,
      payloadType: 102,
      rtcpFeedback: videoFeedback(role),
      parameters: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
    }),
  ];
}

export function audioCodecs(role: PcRole = 'pub'): RTCRtpCodecParameters[] {
  return [
    new RTCRtpCodecParameters({
      mimeType: 'audio/opus',
      clockRate: 48000,
      channels: 2,
      payloadType: 111,
      rtcpFeedback: role === 'pub' ? [useTWCC()] : [],
      parameters: 'minptime=10;useinbandfec=1',
    }),
  ];
}

export function headerExtensions(role: PcRole = 'pub'): { audio: RTCRtpHeaderExtensionParameters[]; video: RTCRtpHeaderExtensionParameters[] } {
  if (role === 'sub') return { audio: [useSdesMid()], video: [useSdesMid()] };
  return {
    audio: [useSdesMid(), useAbsSendTime(), useTransportWideCC()],
    video: [useSdesMid(), useAbsSendTime(), useTransportWideCC()],
  };
}

/** The one codec a subscriber's transceiver may use to carry a publisher's track as is. */
export function codecForForwarding(kind: 'audio' | 'video', mimeType: string): RTCRtpCodecParameters[] {
  const list = kind === 'audio' ? audioCodecs('sub') : videoCodecs('sub');
  const match = list.filter((c) => c.mimeType.toLowerCase() === mimeType.toLowerCase());
  return match.length ? match : list;
}

export function videoCodecOf(mimeType: string | undefined): VideoCodec | null {
  const m = (mimeType ?? '').toLowerCase();
  if (m === 'video/vp8') return 'vp8';
  if (m === 'video/h264') return 'h264';
  return null;
}

/**
 * ICE addresses this server announces: every non-loopback interface (werift's default), plus
 * PUBLIC_IP (containers, NAT: the address clients can reach, mapped 1:1 to the same UDP port), plus
 * loopback when the server itself listens on loopback (development: browser on the same machine,
 * even with no other interface).
 */
export function peerConfig(config: Pick<Config, 'publicIp' | 'rtcMinPort' | 'rtcMaxPort' | 'host'>, role: PcRole = 'pub'): Partial<PeerConfig> {
  const additional: string[] = [];
  if (config.publicIp) additional.push(config.publicIp);
  if (/^(127\.|localhost$|::1$)/.test(config.host)) additional.push('127.0.0.1');
  return {
    codecs: { audio: audioCodecs(role), video: videoCodecs(role) },
    headerExtensions: headerExtensions(role),
    iceUseIpv4: SERVED_FAMILIES.ipv4,
    iceUseIpv6: SERVED_FAMILIES.ipv6,
    iceServers: [],
    icePortRange: config.rtcMinPort !== null && config.rtcMaxPort !== null ? [config.rtcMinPort, config.rtcMaxPort] : undefined,
    iceAdditionalHostAddresses: additional.length ? additional : undefined,
    bundlePolicy: 'max-bundle',
  };
}

// ---------------------------------------------------------------------------------------------
// Signalling messages (the shape is ours: the public interface leaves `signal` free)

export type TrackPurpose = 'camera' | 'mic' | 'screen';

export type SignalMessage =
  | { pc: 'pub'; type: 'offer'; sdp: string; tracks: Record<string, TrackPurpose> }
  | { pc: 'sub'; type: 'answer'; sdp: string }
  | { pc: PcRole; type: 'candidate'; candidate: { candidate: string; sdpMid?: string | null; sdpMLineIndex?: number | null } | null };

/** What the server sends: answers for `pub`, offers for `sub`. */
export type ServerSignal =
  | { pc: 'pub'; type: 'answer'; sdp: string }
  | { pc: 'sub'; type: 'offer'; sdp: string; sources: Record<string, { participantId: string; name: string; purpose: TrackPurpose }> };

function bad(message: string): TesseraError {
  return new TesseraError('REC_ERR_BAD_SIGNAL', message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Structural checks an SDP must pass before werift sees it (werift throws on odd input). */
export function validateSdp(sdp: unknown, opts: Pick<RtcOptions, 'maxSdpBytes' | 'maxMediaSections'>): string {
  if (typeof sdp !== 'string' || sdp.length === 0) throw bad('signal: sdp must be a non-empty string');
  if (Buffer.byteLength(sdp) > opts.maxSdpBytes) {
    throw new TesseraError('REC_ERR_PAYLOAD_TOO_LARGE', `signal: sdp is larger than ${opts.maxSdpBytes} bytes`);
  }
  if (!sdp.startsWith('v=0')) throw bad('signal: sdp must start with v=0');
  const lines = sdp.split(/\r?\n/).filter((l) => l.length);
  if (!lines.every((l) => /^[a-z]=/.test(l))) throw bad('signal: sdp has a line that is not <letter>=<value>');
  const media = lines.filter((l) => l.startsWith('m='));
  if (media.length === 0) throw bad('signal: sdp has no media section');
  if (media.length > opts.maxMediaSections) throw bad(`signal: sdp has more than ${opts.maxMediaSections} media sections`);
  for (const m of media) {
    if (!/^m=(audio|video|application) \d+ [A-Z/]+ [\w ]+$/.test(m)) throw bad(`signal: malformed media line ${JSON.stringify(m.slice(0, 80))}`);
  }
  if (!lines.some((l) => l.startsWith('a=ice-ufrag:'))) throw bad('signal: sdp has no ICE credentials');
  if (!lines.some((l) => l.startsWith('a=fingerprint:'))) throw bad('signal: sdp has no DTLS fingerprint');
  return sdp;
}

/** Parses and validates one client signal message; throws REC_ERR_BAD_SIGNAL with a clear reason. */
export function parseSignal(raw: unknown, opts: Pick<RtcOptions, 'maxSdpBytes' | 'maxMediaSections'>): SignalMessage {
  if (!isObject(raw)) throw bad('signal: expected an object');
  const { pc, type } = raw;
  if (pc !== 'pub' && pc !== 'sub') throw bad('signal: pc must be "pub" or "sub"');
  if (type === 'candidate') {
    const c = raw.candidate;
    if (c === null || c === undefined) return { pc, type, candidate: null };
    if (!isObject(c) || typeof c.candidate !== 'string' || c.candidate.length > 1024) throw bad('signal: candidate must be { candidate: string }');
    if (c.candidate !== '' && !/^(a=)?candidate:\S+ \d \S+ \d+ \S+ \d+ typ \w+/.test(c.candidate)) throw bad('signal: malformed ICE candidate');
    const sdpMid = typeof c.sdpMid === 'string' ? c.sdpMid : null;
    const sdpMLineIndex = typeof c.sdpMLineIndex === 'number' ? c.sdpMLineIndex : null;
    return { pc, type, candidate: { candidate: c.candidate, sdpMid, sdpMLineIndex } };
  }
  if (pc === 'pub' && type === 'offer') {
    const sdp = validateSdp(raw.sdp, opts);
    const tracks: Record<string, TrackPurpose> = {};
    if (raw.tracks !== undefined) {
      if (!isObject(raw.tracks)) throw bad('signal: tracks must map mid to "camera" | "mic" | "screen"');
      for (const [mid, purpose] of Object.entries(raw.tracks)) {
        if (purpose !== 'camera' && purpose !== 'mic' && purpose !== 'screen') throw bad(`signal: track ${mid} has unknown purpose`);
        if (mid.length > 32) throw bad('signal: mid too long');
        tracks[mid] = purpose;
      }
    }
    return { pc, type, sdp, tracks };
  }
  if (pc === 'sub' && type === 'answer') return { pc, type, sdp: validateSdp(raw.sdp, opts) };
  if (type === 'offer' || type === 'answer') {
    throw bad(`signal: the ${pc} connection takes ${pc === 'pub' ? 'offers' : 'answers'} from the client, not ${type}s`);
  }
  throw bad('signal: type must be "offer", "answer" or "candidate"');
}

/**
 * What a publish offer sends, by mid, with each track's purpose (labelled by the client; an
 * unlabelled audio track is the microphone, an unlabelled video track the camera). A participant
 * publishes at most one camera, one microphone and one screen: each accepted track is forwarded
 * to everyone and, while the room records, decoded by an FFmpeg of its own, so one offer with 63
 * video sections had taken the server from 3 to 68 FFmpeg processes.
 */
export function publishedTracks(sections: MediaSection[], labels: Record<string, TrackPurpose>): Map<string, { kind: 'audio' | 'video'; ssrc?: number; purpose: TrackPurpose }> {
  const out = new Map<string, { kind: 'audio' | 'video'; ssrc?: number; purpose: TrackPurpose }>();
  const taken = new Set<TrackPurpose>();
  for (const s of sections) {
    if (s.mid === null || isRejected(s) || (s.direction !== 'sendonly' && s.direction !== 'sendrecv') || (s.kind !== 'audio' && s.kind !== 'video')) continue;
    const purpose: TrackPurpose = labels[s.mid] ?? (s.kind === 'audio' ? 'mic' : 'camera');
    if ((purpose === 'mic') !== (s.kind === 'audio')) throw bad(`signal: track ${s.mid} is ${s.kind} but labelled ${purpose}`);
    if (taken.has(purpose)) throw bad(`signal: a participant publishes at most one camera, one microphone and one screen (a second ${purpose} in track ${s.mid})`);
    taken.add(purpose);
    out.set(s.mid, { kind: s.kind, ssrc: s.ssrc, purpose });
  }
  return out;
}

/**
 * Call before setLocalDescription (gathering starts there). werift's ICE agent asks a STUN
 * server for a server-reflexive candidate even when given none (`iceServers: []`): it falls back
 * to stun.l.google.com:19302. So every connection of a self-hosted recorder would contact Google,
 * and where that name does not resolve or the packet gets no answer (an air-gapped cluster, a
 * pod without egress, a network namespace without DNS) gathering waits out werift's 5 s timeout:
 * measured here, a participant took 5.4 s to publish, every join, every renegotiation. The
 * server's reachable addresses are its interfaces and PUBLIC_IP; it needs no STUN.
 */
export function withoutDefaultStun(pc: RTCPeerConnection): void {
  for (const t of pc.iceTransports) (t.connection as { stunServer?: unknown }).stunServer = undefined;
}

type Transceiver = ReturnType<RTCPeerConnection['getTransceivers']>[number];

/** When each forward's sender last carried a publisher (see `reuseInactiveSection`). */
const idleSince = new WeakMap<Transceiver, number>();

/**
 * End a forward on a subscriber connection: its section turns inactive at the next offer and
 * waits there for the next forward of its kind (`reuseInactiveSection`). The sender is left
 * running, not stopped: it is the one the next forward sends through.
 */
export function endForward(t: Transceiver): void {
  t.setDirection('inactive');
  idleSince.set(t, Date.now());
}

/**
 * The section of a departed publisher's forward, for the next forward of `kind`: a subscriber
 * connection must not grow by a section per departure. werift (0.25) recycles only a *stopped*
 * section's m-line (port 0, then a new mid), and we do not stop forwards: a stopped section leaves
 * the BUNDLE group, and when the last other person leaves every section would be stopped, an offer
 * with no BUNDLE group at all, which Chrome refuses under max-bundle ("max-bundle is used but no
 * bundle group found"), so the one who stayed would never hear of anyone joining later. An
 * inactive section stays bundled (werift writes it with port 9). So the next forward takes the
 * inactive section itself: same mid, same sender and SSRC, direction back to `sendonly` (the
 * answerer's transceiver fires `track` again, as for any direction change). The sender carries
 * on its sequence numbers and timestamps (`replaceRTP`), advanced by the time it was idle, so the
 * receiver sees one stream that paused rather than a stream whose numbers jumped backwards (its
 * jitter buffer would drop them as old). Only sections whose inactive direction has been
 * negotiated are taken: the receiver must have seen the old publisher go. Returns null when there
 * is none; the caller then adds a transceiver.
 */
export function reuseInactiveSection(pc: RTCPeerConnection, kind: 'audio' | 'video'): Transceiver | null {
  const t = pc.getTransceivers().find((x) => x.kind === kind && !x.stopping && !x.stopped && x.direction === 'inactive' && x.currentDirection === 'inactive' && idleSince.has(x));
  if (!t) return null;
  const clockRate = t.codecs[0]?.clockRate ?? (kind === 'audio' ? 48000 : 90000);
  const idleMs = Date.now() - idleSince.get(t)!;
  idleSince.delete(t);
  t.sender.replaceRTP({ sequenceNumber: 0, timestamp: 0 }, true, Math.max(1, Math.round((idleMs * clockRate) / 1000)));
  t.setDirection('sendonly');
  return t;
}

/**
 * Answer a client's offer in the client's order of video codecs. werift (0.25) orders an
 * answer's codecs by its own configuration (VP8 first), and a browser sends the first codec of
 * the answer: a page that prefers H.264 (`&codec=h264`, or a browser whose hardware encodes only
 * H.264) would be made to send VP8. The order of the offer's first video section decides; codecs
 * the offer lacks keep their place after it. Call before setRemoteDescription(offer).
 */
export function preferOfferedVideoCodecs(pc: RTCPeerConnection, offerSdp: string): void {
  const video = /^m=video [^\r\n]*$/m.exec(offerSdp);
  if (!video) return;
  const section = offerSdp.slice(video.index).split(/\r?\nm=/)[0];
  const names = [...section.matchAll(/^a=rtpmap:\d+ ([^/\s]+)\//gm)].map((m) => m[1].toLowerCase());
  const rank = (c: RTCRtpCodecParameters) => {
    const i = names.indexOf(c.mimeType.split('/')[1].toLowerCase());
    return i < 0 ? names.length : i;
  };
  const codecs = pc.config.codecs.video;
  if (codecs) pc.config.codecs.video = [...codecs].sort((a, b) => rank(a) - rank(b));
}
