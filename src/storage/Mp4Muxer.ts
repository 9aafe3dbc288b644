import { AppendOnlyStreamTarget, EncodedAudioPacketSource, EncodedPacket, EncodedVideoPacketSource, Mp4OutputFormat, Output } from 'mediabunny';
import { Mp4Splitter } from '../pipeline/Mp4Splitter';
import { audioSpecificConfig } from '../media/adts';
import { avcCodecString } from '../media/annexb';
import type { Mp4Segment } from './Sink';

export const AUDIO_RATE = 48000;
const AAC_FRAME = 1024;

/**
 * The recording's MP4, made in the server from the worker's encoded media: H.264 access units
 * (Annex B, one per video tick) and AAC frames (by sample position), into fragmented MP4 with
 * mediabunny, cut into init + whole fragments for the sink (Mp4Splitter). A fragment starts at
 * a keyframe, so every whole-fragment prefix plays.
 *
 * It outlives the recording's workers: a worker that dies loses only what it had not yet sent,
 * and the next one's media simply continues the same tracks (its first picture is an IDR with
 * the same parameter sets, since every worker uses the same x264 settings). Media that would go
 * back in time (a continuing worker's first ticks) is dropped, and after a gap video waits for a
 * keyframe. A tick without a picture of its own extends the previous picture (timestamps carry
 * wall time, so a freeze or shed ticks never shorten the file).
 */
export class Mp4Muxer {
  #output: Output;
  #video = new EncodedVideoPacketSource('avc');
  #audio = new EncodedAudioPacketSource('aac');
  #splitter = new Mp4Splitter();
  #started: Promise<void>;
  #chain: Promise<void> = Promise.resolve();
  #pending: Array<() => Promise<void>> = [];
  #draining = false;
  #fps: number;
  #size: { width: number; height: number };
  #lastTick = -1;
  #firstTick = -1;
  #endTick = 0;
  #held: { tick: number; au: Buffer; key: boolean } | null = null;
  #audioEnd = 0;
  #needKey = true;
  #videoCount = 0;
  #audioCount = 0;
  #finalized = false;
  #error: Error | null = null;
  /** Per mediabunny track: how many of its written fragments #forgetWrittenSamples has cut. */
  #forgotten = new Map<object, number>();

  constructor(o: { fps: number; width: number; height: number; fragmentMs: number; onSegment: (s: Mp4Segment) => void }) {
    this.#fps = o.fps;
    this.#size = { width: o.width, height: o.height };
    const onSegment = o.onSegment;
    this.#output = new Output({
      format: new Mp4OutputFormat({ fastStart: 'fragmented', minimumFragmentDuration: o.fragmentMs / 1000 }),
      target: new AppendOnlyStreamTarget(
        new WritableStream<Uint8Array>({
          write: (chunk) => {
            for (const s of this.#splitter.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) onSegment(s);
            this.#forgetWrittenSamples();
          },
          close: () => {
            for (const s of this.#splitter.end()) onSegment(s);
          },
        }),
      ),
    });
    this.#output.addVideoTrack(this.#video, { frameRate: o.fps });
    this.#output.addAudioTrack(this.#audio);
    this.#started = this.#output.start();
  }

  /** The last video tick taken (-1 before the first). */
  get lastTick(): number {
    return this.#lastTick;
  }

  /**
   * The tick of the first picture taken (-1 before it). Above 0 only when the start went wrong
   * (the first epoch hung and was replaced): the MP4 shows that picture from t = 0.
   */
  get firstTick(): number {
    return this.#firstTick;
  }

  /** Sample position where the audio taken so far ends. */
  get audioEnd(): number {
    return this.#audioEnd;
  }

  /** Video ticks the MP4 holds (the last picture lasts one tick, or to finalize's end). */
  get ticks(): number {
    return Math.max(this.#lastTick + 1, this.#endTick);
  }

  /** The first error from the muxer (media it refused), if any. */
  get error(): Error | null {
    return this.#error;
  }

  /** Continuing after a worker died: video waits for the new worker's first keyframe. */
  expectKeyframe(): void {
    this.#needKey = true;
  }

  video(tick: number, au: Buffer, key: boolean): void {
    if (this.#finalized || tick <= this.#lastTick) return;
    if (this.#needKey && !key) return;
    this.#needKey = false;
    if (this.#firstTick < 0) this.#firstTick = tick;
    this.#lastTick = tick;
    this.#addHeld(tick);
    this.#held = { tick, au, key };
  }

  /**
   * The last picture is held until the next one (or the end) says how long it lasts: a
   * recording whose last ticks composed nothing new (shed for lack of CPU, an epoch that did
   * not start in time) still ends at its last tick, not at its last picture.
   */
  #addHeld(until: number): void {
    const h = this.#held;
    if (!h) return;
    this.#held = null;
    const first = this.#videoCount++ === 0;
    const meta = first ? { decoderConfig: { codec: avcCodecString(h.au) ?? 'avc1.640028', codedWidth: this.#size.width, codedHeight: this.#size.height } } : undefined;
    // The video starts at t = 0 whenever its first picture came. A video track that starts later
    // than the audio is read by FFmpeg's MP4 reader (ffprobe, Chromium) as longer by its start:
    // a 14.8-s call whose first picture came at 4.8 s was reported as 19.6 s long.
    const from = first ? 0 : h.tick;
    const packet = new EncodedPacket(h.au, h.key ? 'key' : 'delta', from / this.#fps, Math.max(1, until - from) / this.#fps);
    this.#queue(() => this.#video.add(packet, meta));
  }

  /**
   * Resolves once every picture and AAC frame taken so far has been through mediabunny (the
   * last picture aside: it is held until the next says how long it lasts). Packets go to it
   * asynchronously, so at any moment some are on their way; a measurement of what the muxer
   * keeps waits for this first.
   */
  async settled(): Promise<void> {
    for (let c = this.#chain; ; c = this.#chain) {
      await c;
      if (c === this.#chain) return;
    }
  }

  audio(pos: number, frame: Buffer): void {
    if (this.#finalized || pos < this.#audioEnd) return;
    this.#audioEnd = pos + AAC_FRAME;
    const first = this.#audioCount++ === 0;
    const meta = first ? { decoderConfig: { codec: 'mp4a.40.2', numberOfChannels: 1, sampleRate: AUDIO_RATE, description: audioSpecificConfig(2, AUDIO_RATE, 1) } } : undefined;
    const packet = new EncodedPacket(frame, 'key', pos / AUDIO_RATE, AAC_FRAME / AUDIO_RATE);
    this.#queue(() => this.#audio.add(packet, meta));
  }

  /**
   * Write the last fragment; after this, every segment has been handed on. Never throws.
   * `endTick`: where the video ends (the recording's last tick + 1); by default one tick after
   * the last picture.
   */
  async finalize(endTick?: number): Promise<void> {
    if (this.#finalized) return this.#chain;
    this.#finalized = true;
    if (this.#held && endTick !== undefined) this.#endTick = endTick;
    this.#addHeld(Math.max(this.#lastTick + 1, this.#endTick));
    this.#chain = this.#chain.then(async () => {
      try {
        if (this.#videoCount === 0 && this.#audioCount === 0) await this.#output.cancel();
        else await this.#output.finalize();
      } catch (err) {
        this.#error ??= err as Error;
      }
    });
    return this.#chain;
  }

  /**
   * mediabunny keeps every written fragment with its whole list of samples (their data already
   * dropped) until the end, where the closing `mfra` box reads only each fragment's first sample
   * (its time) besides the fragment's own offset. That is about 150 bytes of heap for each of a
   * recording's ~77 packets a second: 40 MB an hour of call in the server (measured: the heap
   * grew 8.2 MB in 11 minutes, 52,878 such objects). Cut each written fragment's list to its
   * first sample. This reaches into mediabunny's muxer (1.61: `_muxer.trackDatas[].
   * finalizedChunks[].samples`); if a version lays it out otherwise, nothing is cut, and the
   * muxer's memory test in tests/unit says so.
   */
  #forgetWrittenSamples(): void {
    type Chunk = { samples?: unknown[] };
    const muxer = (this.#output as unknown as { _muxer?: { trackDatas?: Array<{ finalizedChunks?: Chunk[] }> } })._muxer;
    for (const track of muxer?.trackDatas ?? []) {
      const chunks = track.finalizedChunks;
      if (!Array.isArray(chunks)) continue;
      for (let i = this.#forgotten.get(track) ?? 0; i < chunks.length; i++) {
        const samples = chunks[i].samples;
        if (Array.isArray(samples) && samples.length > 1) samples.length = 1;
      }
      this.#forgotten.set(track, chunks.length);
    }
  }

  /**
   * Packets go to mediabunny one at a time, in order (each add is async). One drain loop takes
   * whatever is queued meanwhile, instead of a promise chain link per packet: the server muxes
   * every recording's ~80 packets a second, and the links were a fifth of its muxing cost.
   */
  #queue(fn: () => Promise<void>): void {
    this.#pending.push(fn);
    if (this.#draining) return;
    this.#draining = true;
    this.#chain = this.#chain.then(() => this.#drain());
  }

  async #drain(): Promise<void> {
    try {
      await this.#started;
    } catch (err) {
      // The output never started: nothing queued can be added.
      this.#error ??= err as Error;
      this.#pending = [];
    }
    for (let fn = this.#pending.shift(); fn; fn = this.#pending.shift()) {
      try {
        await fn();
      } catch (err) {
        this.#error ??= err as Error;
      }
    }
    this.#draining = false;
  }
}
