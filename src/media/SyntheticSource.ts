import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import type { MediaSource, MediaSourceEvents, SourceKind, VideoCodec } from './types';
import type { SyntheticClip } from './SyntheticClip';

/**
 * A participant without WebRTC: plays a SyntheticClip in real time through the MediaSource seam,
 * exactly as a WebRTC source would deliver it (whole frames, RTP timestamps). Tests switch its
 * camera and microphone off, or make it send garbage, to exercise the pipeline's isolation.
 */
export class SyntheticSource extends EventEmitter<MediaSourceEvents> implements MediaSource {
  readonly id: string;
  readonly participantId: string;
  readonly name: string;
  readonly kind: SourceKind;
  videoEnabled = true;
  audioEnabled = true;
  /** Send random bytes instead of video frames (a broken or hostile sender). */
  garbage = false;
  keyframeRequests = 0;
  /** How long it takes to answer a keyframe request (a browser's PLI answer comes 0.1–0.3 s later, or more). */
  keyframeDelayMs = 0;
  /**
   * Cut this many of the next keyframes sent to a listener to their first 20 bytes (still
   * flagged as keyframes): a keyframe the decoder rejects outright and puts out nothing for.
   * (Cut to a quarter, a VP8 keyframe still decodes, concealed, to a wrong picture.)
   */
  truncateKeyframes = 0;
  /**
   * Cut this many of the next inter frames sent to a listener to their first 8 bytes: a frame
   * damaged in the middle of a group, which the frames after it still predict from.
   */
  damageFrames = 0;
  /** performance.now() when it last sent a keyframe (-Infinity: none yet): a test can time an event against its group. */
  lastKeyframeAt = -Infinity;
  #clip: SyntheticClip;
  #timers = new Map<string, NodeJS.Timeout>();
  #offset = 0;
  #audioOffset = 0;
  #closed = false;
  #frame = 0;
  #packet = 0;
  #pendingKeyframe = false;

  /**
   * `startFrame`: where in its clip it starts (a multiple of 3, see #sendVideo; 0, the default,
   * is the clip's keyframe): a sender whose first frames reach the recording mid-group.
   */
  constructor(opts: { id: string; name: string; clip: SyntheticClip; kind?: SourceKind; participantId?: string; startFrame?: number }) {
    super();
    const start = opts.startFrame ?? 0;
    if (start % 3 !== 0 || start < 0 || start >= opts.clip.videoFrames.length) throw new Error(`startFrame must be a multiple of 3 within the clip: ${start}`);
    this.#offset = start;
    this.#audioOffset = (start / 3) * 5;
    this.id = opts.id;
    this.participantId = opts.participantId ?? opts.id;
    this.name = opts.name;
    this.kind = opts.kind ?? 'camera';
    this.#clip = opts.clip;
  }

  get videoCodec(): VideoCodec {
    return this.#clip.codec;
  }

  /** Start sending in real time (drift-free: frame k is due at start + k / fps). */
  start(): this {
    const t0 = performance.now();
    const fps = this.#clip.fps;
    const tick = (name: string, due: () => number, fn: () => void) => {
      const loop = () => {
        if (this.#closed) return;
        while (performance.now() >= due()) fn();
        this.#timers.set(name, setTimeout(loop, Math.max(1, due() - performance.now())));
      };
      loop();
    };
    tick('video', () => t0 + (this.#frame * 1000) / fps, () => this.#sendVideo());
    tick('audio', () => t0 + this.#packet * 20, () => this.#sendAudio());
    return this;
  }

  requestKeyframe(): void {
    this.keyframeRequests++;
    if (this.keyframeDelayMs <= 0) this.#pendingKeyframe = true;
    else if (!this.#closed) {
      const key = `keyframe ${this.keyframeRequests}`;
      this.#timers.set(key, setTimeout(() => {
        this.#timers.delete(key);
        this.#pendingKeyframe = true;
      }, this.keyframeDelayMs));
    }
  }

  #sendVideo(): void {
    const n = this.#frame++;
    if (!this.videoEnabled) return;
    const frames = this.#clip.videoFrames;
    let i = (n + this.#offset) % frames.length;
    if (this.#pendingKeyframe && i === 0) this.#pendingKeyframe = false;
    if (this.#pendingKeyframe && i % 3 === 0) {
      // A real sender answers PLI with a keyframe; the clip has one at its start: jump there,
      // and jump the audio by the same time so lip sync is kept (3 frames = 100 ms = 5 packets,
      // hence jumps happen on frame indices that are multiples of 3: at most 2 frames' wait).
      const skip = frames.length - i;
      this.#offset += skip;
      this.#audioOffset += (skip / 3) * 5;
      this.#pendingKeyframe = false;
      i = 0;
    }
    // H.264 garbage behind a well-formed NAL unit header (a non-IDR slice): it passes the worker's
    // header checks and reaches the decoder inside the epoch, which must report it.
    const junk = () => {
      const bytes = crypto.randomBytes(200 + (n % 800));
      return this.#clip.codec === 'h264' ? Buffer.concat([Buffer.from([0, 0, 0, 1, 0x41]), bytes]) : bytes;
    };
    let data = this.garbage ? junk() : frames[i];
    if (i === 0 && !this.garbage && this.truncateKeyframes > 0 && this.listenerCount('video') > 0) {
      this.truncateKeyframes--;
      data = data.subarray(0, Math.min(20, data.length));
    }
    if (i !== 0 && !this.garbage && this.damageFrames > 0 && this.listenerCount('video') > 0) {
      this.damageFrames--;
      data = data.subarray(0, Math.min(8, data.length));
    }
    if (i === 0 && !this.garbage) this.lastKeyframeAt = performance.now();
    this.emit('video', { codec: this.#clip.codec, data, rtpTimestamp: (n * 90000) / this.#clip.fps >>> 0, keyframe: i === 0 && !this.garbage });
  }

  #sendAudio(): void {
    const n = this.#packet++;
    if (!this.audioEnabled) return;
    const packets = this.#clip.opusPackets;
    this.emit('audio', { data: packets[(n + this.#audioOffset) % packets.length], rtpTimestamp: (n * 960) >>> 0 });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    this.emit('close');
  }
}
