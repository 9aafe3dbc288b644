import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { io, type Socket } from 'socket.io-client';
import { MediaStreamTrack, RTCPeerConnection, RtpHeader, RtpPacket, type RTCRtpTransceiver } from 'werift';
import type { Logger } from '../logger';
import type { SyntheticClip } from '../media/SyntheticClip';
import type { EncodedVideoFrame } from '../media/types';
import type { RecordingInfo } from '../pipeline/types';
import type { ClientToServerEvents, ServerToClientEvents } from '../server/events';
import { FrameAssembler } from './FrameAssembler';
import { audioCodecs, headerExtensions, videoCodecs, withoutDefaultStun, type ServerSignal } from './negotiation';
import { RTC_DEFAULTS } from './options';
import { packetize } from './packetize';
import { enlargeRecvBuffers } from './udpBuffers';
import './weriftFixes'; // before any connection exists (see the file)

export interface ParticipantEvents {
  /** A whole frame received from another participant (assembled like the recorder does). */
  frame: [{ participantId: string; purpose: string; frame: EncodedVideoFrame }];
  audio: [{ participantId: string; bytes: number }];
  recording: [RecordingInfo | null];
  participants: [{ id: string; name: string }[]];
  notice: [{ level: string; code?: string; message: string }];
  /** The room's recording asks for consent: answer with request('consent', { accept }). */
  'consent:request': [{ roomId: string; recordingId: string }];
  close: [];
}

export interface WeriftParticipantInit {
  url: string;
  roomId: string;
  name: string;
  clip: SyntheticClip;
  logger: Logger;
  token?: string;
  /** Drop this fraction of everything we send (werift's debug knob): tests of NACK/PLI. */
  outboundLoss?: number;
  /** Publish video and audio (default true); false makes a receive-only participant. */
  publish?: boolean;
  /** Replace every Nth video payload by random bytes (tests: junk RTP must not hurt the server). */
  corruptVideoEvery?: number;
  /** Also publish this clip as a screen share (same codec as `clip`). */
  screenClip?: SyntheticClip;
  /** Rewrite the SDP we send (tests: shape it as a browser would, e.g. Firefox's bundle-only
   * sections and mDNS host candidates). */
  rewriteSdp?: (sdp: string, pc: 'pub' | 'sub') => string;
}

type Ack = { ok: true; [k: string]: unknown } | { ok: false; error: { code: string; message: string } };

/**
 * A headless WebRTC participant built on werift: joins through socket.io like the page does,
 * publishes a synthetic clip (colour + tone) as real RTP, answers keyframe requests by restarting
 * the clip at its keyframe, and assembles what it receives so tests can count frames.
 */
export class WeriftParticipant extends EventEmitter<ParticipantEvents> {
  readonly #init: WeriftParticipantInit;
  readonly #log: Logger;
  readonly #socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  #pub: RTCPeerConnection | null = null;
  #sub: RTCPeerConnection | null = null;
  #sources: Record<string, { participantId: string; purpose: string }> = {};
  #timers: NodeJS.Timeout[] = [];
  #closed = false;
  #videoTrack = new MediaStreamTrack({ kind: 'video' });
  #audioTrack = new MediaStreamTrack({ kind: 'audio' });
  #frameIndex = 0;
  #screenTrack = new MediaStreamTrack({ kind: 'video' });
  #screenIndex = 0;
  #seenTracks = new Set<string>();
  participantId: string | null = null;
  recording: RecordingInfo | null = null;
  readonly received = new Map<string, { frames: number; keyframes: number; audioPackets: number }>();
  keyframeRequests = 0;
  /** Times the server lost our media and we joined again (see Notice.rejoin). */
  rejoins = 0;
  #rejoining = false;
  #videoSender: { nackCount: number; retransmittedPacketsSent: number; packetCount: number } | null = null;

  /** What our video sender did: packets, NACKs received, retransmissions sent; connection states. */
  senderStats(): { packets: number; nacks: number; retransmitted: number; pub: string; sub: string } {
    const s = this.#videoSender;
    return { packets: s?.packetCount ?? 0, nacks: s?.nackCount ?? 0, retransmitted: s?.retransmittedPacketsSent ?? 0, pub: this.#pub?.connectionState ?? 'none', sub: this.#sub?.connectionState ?? 'none' };
  }

  constructor(init: WeriftParticipantInit) {
    super();
    this.#init = init;
    this.#log = init.logger.child({ participant: init.name });
    this.#socket = io(init.url, { transports: ['websocket'], reconnection: false, forceNew: true });
    this.#socket.on('signal', (msg) => {
      this.#onSignal(msg as ServerSignal).catch((err: unknown) => {
        if (!this.#closed) this.#log.warn({ err }, 'signal handling failed'); // closing: an offer in flight
      });
    });
    this.#socket.on('recording:state', (s) => {
      this.recording = s.recording;
      this.emit('recording', s.recording);
    });
    this.#socket.on('participants', (list) => this.emit('participants', list));
    this.#socket.on('consent:request', (r) => this.emit('consent:request', r));
    this.#socket.on('notice', (n) => {
      this.emit('notice', n);
      if (n.rejoin) void this.#rejoin(n.message);
    });
  }

  request(event: keyof ClientToServerEvents, payload: unknown, timeoutMs = 30_000): Promise<Ack> {
    return (this.#socket.timeout(timeoutMs) as unknown as { emitWithAck: (e: string, p: unknown) => Promise<Ack> }).emitWithAck(event, payload);
  }

  async join(): Promise<Ack> {
    if (!this.#socket.connected) {
      await new Promise<void>((resolve, reject) => {
        this.#socket.once('connect', () => resolve());
        this.#socket.once('connect_error', reject);
      });
    }
    const ack = await this.request('join', { roomId: this.#init.roomId, name: this.#init.name, token: this.#init.token });
    if (!ack.ok) return ack;
    this.participantId = ack.participantId as string;
    if (this.#init.publish !== false) await this.#publish();
    return ack;
  }

  async #publish(): Promise<void> {
    const { clip } = this.#init;
    const video = videoCodecs().filter((c) => c.mimeType.toLowerCase() === (clip.codec === 'vp8' ? 'video/vp8' : 'video/h264'));
    const pc = new RTCPeerConnection({
      codecs: { audio: audioCodecs(), video },
      headerExtensions: headerExtensions(),
      iceUseIpv6: false,
      bundlePolicy: 'max-bundle',
      // werift (0.24, 0.25) drops a packet when `outboundPacketLoss / 100 < Math.random()`, i.e. the knob is
      // the percentage *kept*: 95 means 5% loss (SRTP/SRTCP only; DTLS and STUN are untouched)
      debug: this.#init.outboundLoss ? { outboundPacketLoss: 100 - this.#init.outboundLoss * 100 } : {},
    });
    this.#pub = pc;
    const vt = pc.addTransceiver(this.#videoTrack, { direction: 'sendonly' });
    const at = pc.addTransceiver(this.#audioTrack, { direction: 'sendonly' });
    const st = this.#init.screenClip ? pc.addTransceiver(this.#screenTrack, { direction: 'sendonly' }) : null;
    st?.sender.onPictureLossIndication.subscribe(() => {
      this.#screenIndex = 0;
    });
    this.#videoSender = vt.sender as unknown as { nackCount: number; retransmittedPacketsSent: number; packetCount: number }; // private counters in werift's typings
    vt.sender.onPictureLossIndication.subscribe(() => {
      this.keyframeRequests++;
      this.#frameIndex = 0; // the clip starts with its keyframe
    });
    const offer = await pc.createOffer();
    withoutDefaultStun(pc);
    await pc.setLocalDescription(offer);
    if (pc.iceGatheringState !== 'complete') await pc.iceGatheringStateChange.watch((s) => s === 'complete', 10_000);
    enlargeRecvBuffers(pc, RTC_DEFAULTS.udpRecvBufferBytes, this.#log);
    const rewrite = this.#init.rewriteSdp ?? ((sdp: string) => sdp);
    const ack = await this.request('signal', { pc: 'pub', type: 'offer', sdp: rewrite(pc.localDescription!.sdp, 'pub'), tracks: { [vt.mid!]: 'camera', [at.mid!]: 'mic', ...(st ? { [st.mid!]: 'screen' } : {}) } });
    if (!ack.ok) throw new Error(`publish refused: ${ack.error.code} ${ack.error.message}`);
    // werift drops RTP written before DTLS is up, so a clip started now loses its opening
    // keyframe and the server sees nothing decodable until it asks (PLI) and we answer: over a
    // second on a loaded machine. A browser's encoder starts with a keyframe on a live transport.
    const state = (): string => pc.connectionState;
    if (state() !== 'connected') {
      await pc.connectionStateChange.watch((s) => s === 'connected' || s === 'failed', 15_000).catch(() => undefined);
      if (state() !== 'connected') throw new Error(`publish: media connection ${pc.connectionState} 15 s after the answer (ICE/DTLS)`);
    }
    if (this.#closed) return;
    pc.connectionStateChange.subscribe((s) => {
      if (s === 'failed' && this.#pub === pc && !this.#closed) void this.#rejoin('our media connection failed');
    });
    this.#startSending();
  }

  /** Send `clip` on `track` in real time; `index` reads and advances the clip position (PLI resets it). */
  #videoLoop(track: MediaStreamTrack, clip: SyntheticClip, ssrc: number, index: { get: () => number; set: (i: number) => void }, t0: number): NodeJS.Timeout {
    const ptV = 96;
    let vSeq = Math.floor(Math.random() * 65536);
    const vTs0 = Math.floor(Math.random() * 2 ** 31);
    let sentFrames = 0;
    return setInterval(() => {
      const due = Math.floor(((Date.now() - t0) * clip.fps) / 1000);
      while (sentFrames <= due && !this.#closed) {
        const i = index.get();
        const frame = clip.videoFrames[i % clip.videoFrames.length];
        index.set((i + 1) % clip.videoFrames.length);
        const ts = (vTs0 + Math.round((sentFrames * 90000) / clip.fps)) >>> 0;
        const payloads = packetize(clip.codec, frame);
        payloads.forEach((p, k) => {
          const n = this.#init.corruptVideoEvery;
          if (n && (vSeq % n) === 0) p = randomBytes(p.length);
          const header = new RtpHeader({ payloadType: ptV, sequenceNumber: vSeq, timestamp: ts, marker: k === payloads.length - 1, ssrc });
          vSeq = (vSeq + 1) & 0xffff;
          track.writeRtp(new RtpPacket(header, p));
        });
        sentFrames++;
      }
    }, Math.floor(1000 / clip.fps / 2));
  }

  #startSending(): void {
    const { clip, screenClip } = this.#init;
    let aSeq = Math.floor(Math.random() * 65536);
    const t0 = Date.now();
    const aTs0 = Math.floor(Math.random() * 2 ** 31);
    const vTimer = this.#videoLoop(this.#videoTrack, clip, 1, { get: () => this.#frameIndex, set: (i) => (this.#frameIndex = i) }, t0);
    if (screenClip) this.#timers.push(this.#videoLoop(this.#screenTrack, screenClip, 3, { get: () => this.#screenIndex, set: (i) => (this.#screenIndex = i) }, t0));
    let sentAudio = 0;
    const aTimer = setInterval(() => {
      const due = Math.floor((Date.now() - t0) / 20);
      while (sentAudio <= due && !this.#closed) {
        const p = clip.opusPackets[sentAudio % clip.opusPackets.length];
        const header = new RtpHeader({ payloadType: 111, sequenceNumber: aSeq, timestamp: (aTs0 + sentAudio * 960) >>> 0, marker: false, ssrc: 2 });
        aSeq = (aSeq + 1) & 0xffff;
        this.#audioTrack.writeRtp(new RtpPacket(header, p));
        sentAudio++;
      }
    }, 10);
    this.#timers.push(vTimer, aTimer);
  }

  async #onSignal(msg: ServerSignal): Promise<void> {
    if (this.#closed) return;
    this.#log.debug({ pc: msg.pc, type: msg.type }, 'signal');
    if (msg.pc === 'pub' && msg.type === 'answer') {
      await this.#pub?.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
      return;
    }
    if (msg.pc === 'sub' && msg.type === 'offer') {
      if (!this.#sub) {
        this.#sub = new RTCPeerConnection({ codecs: { audio: audioCodecs('sub'), video: videoCodecs('sub') }, headerExtensions: headerExtensions('sub'), iceUseIpv6: false, bundlePolicy: 'max-bundle' });
      }
      this.#sources = { ...this.#sources, ...msg.sources };
      await this.#sub.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
      // A section the server reused for another publisher keeps its transceiver, its track and
      // its SSRC (see reuseInactiveSection); `#sources` says whose it is now.
      for (const t of this.#sub.getTransceivers()) for (const track of t.receiver.tracks) this.#watch(t, track);
      const answer = await this.#sub.createAnswer();
      withoutDefaultStun(this.#sub);
      await this.#sub.setLocalDescription(answer);
      if (this.#sub.iceGatheringState !== 'complete') await this.#sub.iceGatheringStateChange.watch((s) => s === 'complete', 10_000);
      enlargeRecvBuffers(this.#sub, RTC_DEFAULTS.udpRecvBufferBytes, this.#log);
      const rewrite = this.#init.rewriteSdp ?? ((sdp: string) => sdp);
      const ack = await this.request('signal', { pc: 'sub', type: 'answer', sdp: rewrite(this.#sub.localDescription!.sdp, 'sub') });
      if (!ack.ok) this.#log.warn({ error: ack.error }, 'answer refused');
    }
  }

  #watch(t: RTCRtpTransceiver, track: MediaStreamTrack): void {
    if (this.#seenTracks.has(track.uuid)) return;
    this.#seenTracks.add(track.uuid);
    let assembler: { codec: 'vp8' | 'h264'; frames: FrameAssembler } | null = null;
    const who = () => (t.mid ? this.#sources[t.mid] : undefined);
    const stats = () => {
      const w = who();
      const key = w ? `${w.participantId}:${w.purpose}` : `unknown:${t.mid}`;
      let s = this.received.get(key);
      if (!s) this.received.set(key, (s = { frames: 0, keyframes: 0, audioPackets: 0 }));
      return s;
    };
    track.onReceiveRtp.subscribe((rtp) => {
      if (this.#closed) return;
      if (t.kind === 'audio') {
        stats().audioPackets++;
        const w = who();
        if (w) this.emit('audio', { participantId: w.participantId, bytes: rtp.payload.length });
        return;
      }
      const codecName = t.codecs.find((c) => c.payloadType === rtp.header.payloadType)?.mimeType.toLowerCase();
      const codec = codecName === 'video/h264' ? 'h264' : 'vp8';
      // A section the server reuses may carry the next publisher in another codec.
      if (assembler?.codec !== codec) assembler = { codec, frames: new FrameAssembler(codec, { latencyMs: RTC_DEFAULTS.jitterLatencyMs, maxPackets: RTC_DEFAULTS.jitterMaxPackets, maxFrameBytes: RTC_DEFAULTS.maxFrameBytes }) };
      const out = assembler.frames.push({ sequenceNumber: rtp.header.sequenceNumber, timestamp: rtp.header.timestamp, marker: rtp.header.marker, payload: rtp.payload }, Date.now());
      if (out.needKeyframe && rtp.header.ssrc) t.receiver.sendRtcpPLI(rtp.header.ssrc).catch(() => undefined);
      for (const frame of out.frames) {
        const s = stats();
        s.frames++;
        if (frame.keyframe) s.keyframes++;
        const w = who();
        if (w) this.emit('frame', { participantId: w.participantId, purpose: w.purpose, frame });
      }
    });
  }

  /**
   * Join again with fresh connections after the server dropped our media, as the page does: a
   * new participant id, new tracks and timers, the same socket and `received` counters.
   */
  async #rejoin(reason: string): Promise<void> {
    if (this.#closed || this.#rejoining) return;
    this.#rejoining = true;
    this.rejoins++;
    this.#log.warn({ reason }, 'media lost; joining again');
    try {
      for (const t of this.#timers) clearInterval(t);
      this.#timers = [];
      const old = [this.#pub, this.#sub];
      this.#pub = null;
      this.#sub = null;
      this.#sources = {};
      this.#videoTrack = new MediaStreamTrack({ kind: 'video' });
      this.#audioTrack = new MediaStreamTrack({ kind: 'audio' });
      this.#screenTrack = new MediaStreamTrack({ kind: 'video' });
      this.#frameIndex = 0;
      this.#screenIndex = 0;
      await Promise.all(old.map((pc) => pc?.close().catch(() => undefined)));
      if (this.#closed) return;
      // The server has normally taken us out already; if only our side failed, leave first.
      await this.request('leave', {}, 5000).catch(() => undefined);
      const ack = await this.join();
      if (!ack.ok) this.#log.warn({ error: ack.error }, 'joining again was refused');
      else this.#log.warn({ participantId: this.participantId }, 'joined again');
    } catch (err) {
      this.#log.warn({ err }, 'joining again failed');
    } finally {
      this.#rejoining = false;
    }
  }

  async leave(): Promise<void> {
    if (this.#socket.connected) await this.request('leave', {}, 5000).catch(() => undefined);
    await this.close();
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    this.#socket.disconnect();
    await Promise.all([this.#pub, this.#sub].map((pc) => pc?.close().catch(() => undefined)));
    this.emit('close');
    this.removeAllListeners();
  }
}
