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
const everAdded = new WeakMap<RTCPeerConnection, Set<Transceiver>>();

/**
 * werift stops a sender's or receiver's RTCP loop with `rtcpCancel.abort()`; the AbortError it
 * keeps as the signal's reason captured the stack, and until that stack is read V8 keeps every
 * call site's `this` reachable. A stopped forward stays in its subscriber's connection (the
 * section turns inactive and, having sent, is never recycled), so each departed participant's
 * Peer, connections and all, stayed in memory while anyone they had met stayed: measured, 24 of
 * 24 departed Peers still reachable after 24 joins and leaves. Reading the stack once turns it
 * into a string and lets them go.
 */
export function releaseAbortStack(part: { stop(): void }): void {
  const reason = (part as unknown as { rtcpCancel?: AbortController }).rtcpCancel?.signal.reason as { stack?: unknown } | undefined;
  void reason?.stack;
}

function stopTransceiver(t: Transceiver): void {
  t.receiver.stop();
  t.sender.stop();
  releaseAbortStack(t.receiver);
  releaseAbortStack(t.sender);
}

/**
 * Call on every new connection: werift 0.24.4 leaves transceivers running that it no longer
 * owns. A new transceiver takes the list slot of an inactive one (a departed publisher's section
 * reused for the next one), and the one replaced is simply dropped from the list; and a section
 * a description removes is marked `stopped` without stopping it, which `close()` then skips.
 * Either way its receiver's or sender's RTCP report loop (a timer every 0.5–1.5 s) runs for as
 * long as the process: a leak per screen share or departure on a long-lived server, and a test
 * run that never exited (CI timed out after every test had passed). This stops a transceiver as
 * soon as it leaves the list, and `closePeerConnection` stops every one the connection ever had.
 */
export function guardTransceivers(pc: RTCPeerConnection): void {
  const all = new Set<Transceiver>(pc.getTransceivers());
  everAdded.set(pc, all);
  pc.onTransceiverAdded.subscribe((t) => {
    all.add(t);
    const current = new Set(pc.getTransceivers());
    for (const old of all) {
      if (current.has(old)) continue;
      stopTransceiver(old);
      all.delete(old);
    }
  });
  // Sections a description removed: werift has marked them `stopped` by the time it is stable.
  const ended = new WeakSet<Transceiver>();
  pc.signalingStateChange.subscribe((state) => {
    if (state !== 'stable') return;
    for (const t of pc.getTransceivers()) {
      if (!t.stopped || ended.has(t)) continue;
      ended.add(t);
      stopTransceiver(t);
    }
  });
}

/**
 * Call before `addTransceiver` on a subscriber connection: the next forward of `kind` takes the
 * section of a departed one. werift recycles an inactive section only if its transceiver never
 * sent (`usedForSender`), which a forward always has, so every departure left a section behind
 * for as long as the subscriber stayed; after about 32 departures the answer passed the
 * 64-section limit and the subscriber never received anyone new. A section negotiated inactive
 * may carry a new sender under the same mid (as `replaceTrack` and a direction change would; the
 * answerer's transceiver fires `track` again). werift picks the first inactive section it may
 * recycle, of any kind, so every other one is marked as not recyclable: a video section must
 * never be turned into an audio one. The transceiver replaced is stopped by `guardTransceivers`.
 */
export function reuseInactiveSection(pc: RTCPeerConnection, kind: 'audio' | 'video'): void {
  let chosen = false;
  for (const t of pc.getTransceivers() as Array<Transceiver & { usedForSender: boolean }>) {
    if (t.currentDirection !== 'inactive') continue;
    const take: boolean = !chosen && t.kind === kind && t.direction === 'inactive';
    t.usedForSender = !take;
    chosen ||= take;
  }
}

/** Close a connection so that nothing of it keeps running (see `guardTransceivers`). */
export async function closePeerConnection(pc: RTCPeerConnection): Promise<void> {
  try {
    await pc.close();
  } finally {
    for (const t of new Set([...pc.getTransceivers(), ...(everAdded.get(pc) ?? [])])) stopTransceiver(t);
  }
}
