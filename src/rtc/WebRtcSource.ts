import { EventEmitter } from 'node:events';
import type { MediaStreamTrack, RtpPacket } from 'werift';
import type { Logger } from '../logger';
import type { MediaSource, MediaSourceEvents, SourceKind, VideoCodec } from '../media/types';
import { metrics } from '../metrics';
import { FrameAssembler, type AssemblerOutput } from './FrameAssembler';
import type { RtcOptions } from './options';

export interface WebRtcSourceInit {
  id: string;
  participantId: string;
  name: string;
  kind: SourceKind;
  options: RtcOptions;
  logger: Logger;
  /** Sends a PLI to the publisher (rate limiting is the caller's). */
  sendPli: (reason: string) => void;
}

/**
 * A participant's camera (video + microphone) or screen share as the recording pipeline sees it:
 * whole VP8 frames / H.264 access units out of our jitter buffer and depacketizer, Opus packets
 * as they arrive (the pipeline conceals loss). Tracks attach and detach while it lives (a
 * participant may publish audio first, a camera later); the source lives until the participant
 * leaves, the share stops or the recording ends.
 */
export class WebRtcSource extends EventEmitter<MediaSourceEvents> implements MediaSource {
  readonly id: string;
  readonly participantId: string;
  readonly name: string;
  readonly kind: SourceKind;
  /** The codec of the video track last attached (negotiated; MediaSource.videoCodec). */
  videoCodec: VideoCodec | null = null;
  readonly #opts: RtcOptions;
  readonly #log: Logger;
  readonly #sendPli: (reason: string) => void;
  #closed = false;
  #video: { track: MediaStreamTrack; assembler: FrameAssembler; unsubscribe: () => void } | null = null;
  #audio: { track: MediaStreamTrack; unsubscribe: () => void; lastSeq: number | null } | null = null;
  #timer: NodeJS.Timeout;
  #lastPliAt = 0;

  constructor(init: WebRtcSourceInit) {
    super();
    this.id = init.id;
    this.participantId = init.participantId;
    this.name = init.name;
    this.kind = init.kind;
    this.#opts = init.options;
    this.#sendPli = init.sendPli;
    this.#log = init.logger.child({ sourceId: init.id, kind: init.kind });
    const tick = Math.max(10, Math.floor(this.#opts.jitterLatencyMs / 3));
    this.#timer = setInterval(() => this.#poll(), tick);
    this.#timer.unref();
  }

  get closed(): boolean {
    return this.#closed;
  }

  attachVideo(track: MediaStreamTrack, codec: VideoCodec): void {
    if (this.#closed) return;
    this.detachVideo();
    this.videoCodec = codec;
    const assembler = new FrameAssembler(codec, {
      latencyMs: this.#opts.jitterLatencyMs,
      maxPackets: this.#opts.jitterMaxPackets,
      maxFrameBytes: this.#opts.maxFrameBytes,
    });
    const { unSubscribe } = track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
      if (this.#closed) return;
      try {
        this.#handle(assembler.push({ sequenceNumber: rtp.header.sequenceNumber, timestamp: rtp.header.timestamp, marker: rtp.header.marker, payload: rtp.payload }, Date.now()));
      } catch (err) {
        this.#log.warn({ err }, 'video packet rejected');
      }
    });
    this.#video = { track, assembler, unsubscribe: unSubscribe };
    this.#log.debug({ codec }, 'video attached');
  }

  detachVideo(): void {
    if (!this.#video) return;
    this.#video.unsubscribe();
    this.#video = null;
  }

  attachAudio(track: MediaStreamTrack): void {
    if (this.#closed) return;
    this.detachAudio();
    const state = { track, unsubscribe: () => {}, lastSeq: null as number | null };
    const { unSubscribe } = track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
      if (this.#closed || rtp.payload.length === 0) return;
      const seq = rtp.header.sequenceNumber;
      if (state.lastSeq !== null) {
        const d = (seq - state.lastSeq + 65536) % 65536;
        if (d === 0 || d > 32768) return; // duplicate or late: the decoder already concealed it
      }
      state.lastSeq = seq;
      this.#emit('audio', { data: rtp.payload, rtpTimestamp: rtp.header.timestamp >>> 0 });
    });
    state.unsubscribe = unSubscribe;
    this.#audio = state;
  }

  detachAudio(): void {
    if (!this.#audio) return;
    this.#audio.unsubscribe();
    this.#audio = null;
  }

  hasVideo(): boolean {
    return this.#video !== null;
  }

  /**
   * A decoder starting (or still waiting, once a second) asks for a keyframe. Not throttled: the
   * keyframe answering a request made just before — this source's own loss or resync request, or
   * the tap of a recording that had not yet taken the source in (a participant who consents a
   * moment after the start) — may have gone by before this decoder existed, and a dropped ask cost
   * the decoder's re-ask interval (a participant absent for the first 1.2 s of the file).
   */
  requestKeyframe(): void {
    this.#pli('decoder', true);
  }

  #pli(reason: string, force = false): void {
    if (this.#closed || !this.#video) return;
    const now = Date.now();
    if (!force && now - this.#lastPliAt < this.#opts.pliMinIntervalMs) return;
    this.#lastPliAt = now;
    metrics.rtcKeyframeRequests.inc({ reason });
    try {
      this.#sendPli(reason);
    } catch (err) {
      this.#log.warn({ err }, 'PLI failed');
    }
  }

  #poll(): void {
    if (this.#closed || !this.#video) return;
    const a = this.#video.assembler;
    this.#handle(a.poll(Date.now()));
    // still waiting for a keyframe: ask again (the first PLI or the keyframe may have been lost)
    if (!a.synced && Date.now() - this.#lastPliAt >= this.#opts.pliRetryMs) this.#pli('resync');
  }

  #handle(out: AssemblerOutput): void {
    if (out.discarded) metrics.rtcFramesDiscarded.inc({ reason: 'loss' }, out.discarded);
    if (out.needKeyframe) this.#pli('loss');
    for (const f of out.frames) this.#emit('video', f);
  }

  #emit<K extends keyof MediaSourceEvents>(event: K, ...args: MediaSourceEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: MediaSourceEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.#log.error({ err, event }, 'source listener threw');
    }
  }

  /** The participant left, the share stopped or the recording ended. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.detachVideo();
    this.detachAudio();
    this.#emit('close');
    this.removeAllListeners();
  }
}
