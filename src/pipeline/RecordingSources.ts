import { VideoDecoder } from './VideoDecoder';
import { AudioDecoder } from './AudioDecoder';
import { PictureDelay } from './audio';
import { FrameTicks } from './FrameTicks';
import { SourceVideo } from './DirectFeed';
import { renderNameCard, renderCodedNameCard, solidFrame, PLACEHOLDER_COLOUR, type CodedCards } from './placeholder';
import type { TileContent } from './TileContent';
import type { Config } from '../config';
import type { Logger } from '../logger';
import type { EncodedVideoFrame, MediaSource, OpusPacket, VideoCodec } from '../media/types';

/** Decoded tile sizes: cameras are small (cheap to decode and scale), screens keep detail. */
export const TILE_SIZE = { camera: { w: 640, h: 360 }, screen: { w: 1280, h: 720 } } as const;
/**
 * A new direct epoch replays up to this many of a source's frames (from its last keyframe) into
 * its decoder rather than wait for a keyframe: a few ms of decoding per frame against a keyframe
 * request's round trip (and a sender's bandwidth spike). 2 s of a 30-fps camera (the churn
 * test's re-flow took 1.07 s in a CI rehearsal with 1 s, as its clips' 2 s groups were often
 * too long), and more of a slower sender (a screen share at 5 a second: 12 s). Counted in the
 * sender's frames, since decoding them is the cost, and not in the recording's: at
 * `VIDEO_FPS=15` that was 30 frames, 1 s of a 30-fps camera (day 33).
 */
export const GOP_REPLAY_FRAMES = 60;
/** While shedding (short of CPU) only this many are replayed: 4 × 60 frames cost a switch seconds in 0.25 cores. */
export const GOP_REPLAY_FRAMES_SHEDDING = 10;
/**
 * How much later than the quickest of its recent frames a source's frame may arrive and still be
 * shown at its own tick (FrameTicks): the worker's arrival jitter (the server's event loop, the
 * socket, this loop) is a few ms; a recording does not see the latency.
 */
export const FRAME_MARGIN_MS = 20;
/** Keyframe requests for one source, at most one per this. */
const KEYFRAME_ASK_MS = 300;

/** One source in the recording: its decoders, its name card, its video as direct epochs see it. */
export interface SourceState {
  source: MediaSource;
  video: VideoDecoder;
  audio: AudioDecoder;
  card: Buffer;
  /** The card as a keyframe of each codec, for direct epochs' inputs (null until encoded). */
  codedCards: CodedCards;
  /** Its video as direct epochs see it: codec, liveness, frames since the last keyframe, keyframe asks. */
  tile: SourceVideo;
  /** How long its pictures wait for their tick: its audio is mixed as much later (lip sync). */
  pictureDelay: PictureDelay;
  /** Which tick shows each of its frames (by RTP time). */
  frameTicks: FrameTicks;
  unsubscribe: () => void;
}

export interface RecordingSourcesOptions {
  config: Readonly<Config>;
  ffmpegPath: string;
  logger: Logger;
  fps: number;
  /** The clock a source's quietness is judged on (see RecordingOptions.quietNow). */
  quietNow: () => number;
  /** What each tile shows: told of joins and leaves; the waiting tile's cards go there. */
  content: TileContent;
  /** A frame the source's tile took, for the direct epochs that show it. */
  onFrame: (s: SourceState, f: EncodedVideoFrame) => void;
  /** The tick a decoded tile's frame is for (undefined before the clock starts): VideoDecoder.take. */
  frameTick: (s: SourceState, f: EncodedVideoFrame) => number | undefined;
  /**
   * A source's codec is known from its frames: its first good frame (of its negotiated codec, or
   * the first frame at all), or a change (a Safari participant's first H.264 frame after a VP8
   * guess, a renegotiation). A newcomer's layout may start; its tiles' inputs may need a new epoch.
   */
  onCodecChange: (s: SourceState) => void;
  /** A source's decoder was restarted. */
  onRestart: () => void;
  /** A source closed by itself (its participant left): the recording removes it. */
  onClose: (sourceId: string) => void;
}

/**
 * The recording's inputs: per source, the video decoder (raw tiles) or its video as direct epochs
 * take it, the Opus decoder and its jitter buffer, and the name card in the forms the epochs take;
 * the tile order (join order). Routing frames into epochs and deciding layouts is the recording's.
 */
export class RecordingSources {
  #o: RecordingSourcesOptions;
  #map = new Map<string, SourceState>();
  #order: string[] = [];
  /** Repeats/drops of sources that already left (their decoders are gone). */
  #goneRepeated = 0;
  #goneDropped = 0;
  /**
   * Epochs decode the participants' VP8 and H.264 themselves (config.directDecode); else every
   * source goes through a decoder process and epochs take raw tiles. Until day 24 the first H.264
   * frame switched every source to decoder processes (docs/workers.md).
   */
  readonly direct: boolean;

  constructor(o: RecordingSourcesOptions) {
    this.#o = o;
    this.direct = o.config.directDecode;
  }

  get(id: string): SourceState | undefined {
    return this.#map.get(id);
  }

  has(id: string): boolean {
    return this.#map.has(id);
  }

  /** Source ids in tile order (the order they joined). */
  get order(): readonly string[] {
    return this.#order;
  }

  /** Source ids in the order they were added (the mixer's). */
  ids(): string[] {
    return [...this.#map.keys()];
  }

  add(source: MediaSource): SourceState {
    const { config, ffmpegPath, quietNow } = this.#o;
    const log = this.#o.logger.child({ sourceId: source.id });
    const size = TILE_SIZE[source.kind];
    const video = new VideoDecoder({ ffmpegPath, width: size.w, height: size.h, logger: log.child({ proc: 'vdec' }), stallMs: config.stallTimeoutMs, requestKeyframe: () => source.requestKeyframe(), quietNow,
      // A decoded tile's picture delay: from its frame's arrival, through the decoder, to the
      // tick that shows it (what a direct epoch notes in #routeVp8, plus the decoder's latency).
      onShown: (ms) => state.pictureDelay.note(ms) });
    const audio = new AudioDecoder({ logger: log.child({ proc: 'adec' }) });
    video.on('restart', this.#o.onRestart);
    audio.on('restart', this.#o.onRestart);
    const onVideo = (f: EncodedVideoFrame) => this.#onVideo(state, f);
    const onAudio = (p: OpusPacket) => audio.push(p);
    const onClose = () => this.#o.onClose(source.id);
    source.on('video', onVideo);
    source.on('audio', onAudio);
    source.once('close', onClose);
    const state: SourceState = {
      source,
      video,
      audio,
      card: solidFrame(size.w, size.h, PLACEHOLDER_COLOUR),
      codedCards: { vp8: null, h264: null },
      tile: new SourceVideo({ gopFrames: GOP_REPLAY_FRAMES, askEveryMs: KEYFRAME_ASK_MS, request: () => source.requestKeyframe(), now: quietNow, codec: source.videoCodec }),
      // Half a tick until its frames are seen (and for sources whose pictures come from a decoder).
      pictureDelay: new PictureDelay(500 / this.#o.fps),
      frameTicks: new FrameTicks({ fps: this.#o.fps, marginMs: FRAME_MARGIN_MS }),
      unsubscribe: () => {
        source.off('video', onVideo);
        source.off('audio', onAudio);
        source.off('close', onClose);
      },
    };
    this.#map.set(source.id, state);
    this.#o.content.rejoined(source.id);
    this.#order.push(source.id);
    source.requestKeyframe();
    this.#renderCard(state);
    return state;
  }

  /** Removes a source and closes its decoders; undefined if it was not here. */
  remove(id: string): SourceState | undefined {
    const s = this.#map.get(id);
    if (!s) return undefined;
    this.#goneRepeated += s.video.framesRepeated;
    this.#goneDropped += s.video.framesDropped;
    this.#map.delete(id);
    this.#order = this.#order.filter((x) => x !== id);
    // Before its decoder closes: a tile still showing it keeps its last picture for a while.
    this.#o.content.depart(id, s);
    this.#close(s);
    return s;
  }

  /** Closes every source (the recording's end). */
  closeAll(): void {
    for (const s of this.#map.values()) this.#close(s);
    this.#map.clear();
    this.#order = [];
  }

  /** Tile pictures repeated (none new in time) and dropped (too many), over every source so far. */
  frameCounts(): { repeated: number; dropped: number } {
    let repeated = this.#goneRepeated, dropped = this.#goneDropped;
    for (const s of this.#map.values()) {
      repeated += s.video.framesRepeated;
      dropped += s.video.framesDropped;
    }
    return { repeated, dropped };
  }

  /** Per-source diagnostics (decoder and jitter-buffer counters), for logs and tests. */
  debug(): object[] {
    return [...this.#map.entries()].map(([id, s]) => ({
      id,
      vDecoded: s.video.framesDecoded,
      vRestarts: s.video.restarts,
      aRestarts: s.audio.restarts,
      aQueuedMs: Math.round(s.audio.buffer.queuedMs),
      aUnderruns: s.audio.buffer.underruns,
      aDroppedMs: Math.round(s.audio.buffer.droppedBytes / 96),
      aPaddedMs: Math.round(s.audio.buffer.paddedBytes / 96),
      vDelayMs: Math.round(s.pictureDelay.ms),
      vTimingResets: s.frameTicks.resets,
      vLate: s.frameTicks.late,
      vRefused: s.tile.refused,
    }));
  }

  /** The waiting tile's card (nobody in the room), in the form the epochs take (VP8 for direct ones). */
  renderWaitingCard(): void {
    const { config, ffmpegPath, logger, content } = this.#o;
    const text = 'Waiting for participants';
    if (this.direct) void renderCodedNameCard(ffmpegPath, TILE_SIZE.camera, text, config.fontFile, 'vp8', logger).then((card) => (content.waitingVp8 = card));
    else void renderNameCard(ffmpegPath, TILE_SIZE.camera, text, config.fontFile, logger).then((card) => (content.waitingCard = card));
  }

  #onVideo(s: SourceState, f: EncodedVideoFrame): void {
    if (!this.direct) {
      s.tile.decoded(f.codec);
      s.video.push(f, this.#o.frameTick(s, f));
      return;
    }
    const before = s.tile.codec;
    const first = s.tile.lastVideoAt === -Infinity;
    const data = s.tile.take(f.codec, f.data, f.keyframe);
    if (s.tile.codec !== before) {
      this.#o.logger.info({ sourceId: s.source.id, codec: s.tile.codec, before }, 'a source\'s video codec');
      // Its card was asked for in its negotiated codec (VP8 if none) when it joined.
      if (before !== null || s.tile.codec !== 'vp8') this.#renderCard(s);
      this.#o.onCodecChange(s);
    } else if (first && data) this.#o.onCodecChange(s); // its negotiated codec, confirmed by its first good frame
    if (data) this.#o.onFrame(s, data === f.data ? f : { ...f, data });
  }

  /**
   * A source's name card, in the form the epochs take: a keyframe of its codec for direct epochs
   * (VP8 until it sends anything), a raw frame for raw tiles. Rendered in the background (batched,
   * see placeholder.ts); the plain card stands in until then.
   */
  #renderCard(s: SourceState): void {
    const { config, ffmpegPath } = this.#o;
    const size = TILE_SIZE[s.source.kind];
    const text = s.source.kind === 'screen' ? `${s.source.name} (screen)` : s.source.name;
    const log = this.#o.logger.child({ sourceId: s.source.id });
    if (this.direct) {
      const codec: VideoCodec = s.tile.codec ?? 'vp8';
      void renderCodedNameCard(ffmpegPath, size, text, config.fontFile, codec, log).then((card) => (s.codedCards[codec] = card));
    } else void renderNameCard(ffmpegPath, size, text, config.fontFile, log).then((card) => (s.card = card));
  }

  #close(s: SourceState): void {
    s.unsubscribe();
    s.video.close();
    s.audio.close();
  }
}
