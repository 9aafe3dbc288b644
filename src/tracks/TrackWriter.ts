import { AppendOnlyStreamTarget, EncodedAudioPacketSource, EncodedPacket, EncodedVideoPacketSource, MkvOutputFormat, Output, WebMOutputFormat } from 'mediabunny';
import { avcCodecString, avcPictureSize } from '../media/annexb';
import { vp8KeyframeInfo } from '../media/ivf';
import { opusPacketSamples } from '../media/opus';
import type { EncodedVideoFrame, OpusPacket, RecordingLocation } from '../media/types';

export type TrackKind = 'camera' | 'screen' | 'microphone' | 'screen-audio';
export type TrackCodec = 'vp8' | 'h264' | 'opus';

/**
 * Where one track's bytes go (a file, or an S3 object by multipart upload). Bytes come in order
 * and only ever at the end: a Matroska stream written append-only, so any prefix of it is a
 * readable file up to its last whole block.
 */
export interface TrackTarget {
  readonly location: RecordingLocation;
  write(data: Buffer): void;
  /** Every byte was written: make the file or object complete. Resolves to its size. */
  finish(): Promise<number>;
  /** Give up, keeping what is stored (a file as it is; an upload's parts for recovery). Never throws. */
  abort(reason: Error): Promise<void>;
}

/** What a track is, known before its first byte. */
export type TrackMeta = Pick<TrackInfo, 'id' | 'participantId' | 'name' | 'sourceId' | 'kind' | 'codec'>;

/** One track as the manifest lists it. Times are ms on the recording's clock (0 = the MP4's start). */
export interface TrackInfo {
  id: string;
  participantId: string;
  name: string;
  /** The room's source it came from (a camera or a screen share, with the camera's microphone). */
  sourceId: string;
  kind: TrackKind;
  codec: TrackCodec;
  container: 'webm' | 'mkv';
  /** Wall clock of the track's first media. */
  startedAt: string;
  endedAt?: string;
  /** Where the track's time 0 lies on the recording's clock (ms from the MP4's start; < 0 = before it). */
  start: number;
  /** Where its last media ends on the recording's clock. */
  end?: number;
  location: RecordingLocation;
  bytes?: number;
  /** Frames (video) or packets (audio) written. */
  packets: number;
  width?: number;
  height?: number;
  /** `complete`: finished; `incomplete`: cut short (a failure or crash), readable up to its end. */
  state: 'recording' | 'complete' | 'incomplete';
}

/** A timestamp further than this from the packet's arrival re-anchors the track (a sender reset its RTP clock). */
const MAX_DRIFT_MS = 2000;
/**
 * Over its first seconds a track's place on the wall clock is refined (the earliest its packets
 * imply); after that it is fixed, so a sender's clock drift cannot move it.
 */
const SETTLE_S = 5;
/** Bytes are handed to the target in pieces of this size, or this often (see #buffer). */
const FLUSH_BYTES = 64 * 1024;
const FLUSH_MS = 500;
/** Packets wait at most this long before they go to the muxer (see #drainQueue). */
const QUEUE_MS = 100;

/**
 * One participant's track written as it arrives, without re-encoding: VP8 or H.264 frames, or
 * Opus packets, into Matroska (WebM for VP8 and Opus) with mediabunny, append-only (clusters of
 * about a second; no seek index rewritten at the end, so the file streams to its target and a
 * crash leaves a readable prefix).
 *
 * Timestamps: each packet is placed by its RTP timestamp from the track's first (the sender's
 * own cadence, not network jitter); the manifest places the track's time 0 on the recording's
 * clock. A pause (mute, camera off) keeps the RTP clock running, so the gap is carried in the
 * timestamps: one file per source, however often it pauses. A jump of the RTP clock (more than
 * 2 s away from the arrival time) goes on from the arrival time.
 */
export class TrackWriter {
  readonly info: TrackInfo;
  #target: TrackTarget;
  #output: Output | null = null;
  #video: EncodedVideoPacketSource | null = null;
  #audio: EncodedAudioPacketSource | null = null;
  #chain: Promise<void> = Promise.resolve();
  #clock: number;
  #t0Wall = 0;
  /** The RTP timestamp (unwrapped) and wall time a track's time is counted from. */
  #anchor: { rtp: number; wall: number } | null = null;
  /** The file time at #anchor.rtp (0, until a jump of the RTP clock re-anchors). */
  #anchorTs = 0;
  #lastRtp = 0;
  #unwrapped = 0;
  #lastTs = -1;
  #endTs = 0;
  #ended = false;
  #error: Error | null = null;

  /** Video waits for a keyframe (after a pause: what follows may refer to pictures never sent). */
  #needKey = false;
  #lastVideoRtp: number | null = null;
  #askKey: () => void;
  #askedAt = -Infinity;
  #started = false;
  #queue: { packet: EncodedPacket; meta?: object }[] = [];
  #queueTimer: NodeJS.Timeout | null = null;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #flushedAt = 0;

  constructor(o: TrackMeta & { target: TrackTarget; requestKeyframe?: () => void }) {
    this.#target = o.target;
    this.#askKey = o.requestKeyframe ?? (() => undefined);
    this.#clock = o.codec === 'opus' ? 48000 : 90000;
    const container = o.codec === 'h264' ? 'mkv' : 'webm';
    this.info = { id: o.id, participantId: o.participantId, name: o.name, sourceId: o.sourceId, kind: o.kind, codec: o.codec, container, startedAt: '', start: 0, location: o.target.location, packets: 0, state: 'recording' };
  }

  /** The first error (media the muxer refused, or the target's), if any. */
  get error(): Error | null {
    return this.#error;
  }

  /** Wall-clock ms of the track's time 0 (0 before its first media). */
  get startWall(): number {
    return this.#t0Wall;
  }

  video(f: EncodedVideoFrame, arrival = Date.now()): void {
    if (this.#ended) return;
    if (!this.#output) {
      // A track starts at a keyframe, with the size the container header must state. (A source
      // that starts sending mid-stream — consent given later — is asked for one.)
      if (!f.keyframe) {
        this.#askKeyframe(arrival);
        return;
      }
      const size = f.codec === 'vp8' ? vp8KeyframeInfo(f.data) : avcPictureSize(f.data);
      if (!size) return;
      this.#open();
      this.info.width = size.width;
      this.info.height = size.height;
      const source = new EncodedVideoPacketSource(f.codec === 'vp8' ? 'vp8' : 'avc');
      this.#video = source;
      this.#output!.addVideoTrack(source);
      this.#startOutput();
      const codec = f.codec === 'vp8' ? 'vp8' : (avcCodecString(f.data) ?? 'avc1.42e01f');
      this.#lastVideoRtp = f.rtpTimestamp;
      this.#add(f.data, f.keyframe, this.#timestamp(f.rtpTimestamp, arrival), 0, { decoderConfig: { codec, codedWidth: size.width, codedHeight: size.height } });
      return;
    }
    // A pause of more than a second (camera off, a sender's hiccup): resume at a keyframe, so the
    // file never holds a picture that refers to one it does not have.
    const gap = this.#lastVideoRtp === null ? 0 : ((f.rtpTimestamp - this.#lastVideoRtp) >>> 0) / 90000;
    this.#lastVideoRtp = f.rtpTimestamp;
    if (gap > 1 && gap < 2 ** 31 / 90000) this.#needKey = true;
    if (this.#needKey && !f.keyframe) {
      this.#askKeyframe(arrival);
      return;
    }
    this.#needKey = false;
    this.#add(f.data, f.keyframe, this.#timestamp(f.rtpTimestamp, arrival), 0);
  }

  /** Asked at most twice a second: a sender answers the first ask; more would only cost it bits. */
  #askKeyframe(now: number): void {
    if (now - this.#askedAt < 500) return;
    this.#askedAt = now;
    this.#askKey();
  }

  audio(p: OpusPacket, arrival = Date.now()): void {
    if (this.#ended) return;
    const samples = opusPacketSamples(p.data);
    if (!samples) return; // not an Opus packet this track can time
    let meta: object | undefined;
    if (!this.#output) {
      this.#open();
      const source = new EncodedAudioPacketSource('opus');
      this.#audio = source;
      this.#output!.addAudioTrack(source);
      this.#startOutput();
      meta = { decoderConfig: { codec: 'opus', numberOfChannels: 2, sampleRate: 48000 } };
    }
    this.#add(p.data, true, this.#timestamp(p.rtpTimestamp, arrival), samples / 48000, meta);
  }

  /**
   * The track ends (its source left, or the recording stopped). `t0Wall` is the recording's
   * clock origin, to place the track on it. Resolves when the file or object is complete; never throws.
   */
  async end(t0Wall: number): Promise<TrackInfo> {
    if (!this.#ended) {
      this.#ended = true;
      this.info.endedAt = new Date().toISOString();
      this.#drainQueue();
      this.#chain = this.#chain.then(async () => {
        if (!this.#output) return;
        try {
          await this.#output.finalize();
        } catch (err) {
          this.#error ??= err as Error;
        }
      });
      await this.#chain;
      try {
        if (this.#error) throw this.#error;
        this.info.bytes = await this.#target.finish();
        this.info.state = 'complete';
      } catch (err) {
        this.#error ??= err as Error;
        await this.#target.abort(this.#error);
        this.info.state = 'incomplete';
      }
    }
    this.#place(t0Wall);
    return { ...this.info };
  }

  /** The recording failed: keep what was written, complete or not. Never throws. */
  async abort(t0Wall: number, reason: Error): Promise<TrackInfo> {
    if (!this.#ended) {
      this.#ended = true;
      this.info.endedAt = new Date().toISOString();
      this.#drainQueue();
      await this.#chain;
      this.#flush();
      await this.#target.abort(reason);
      this.info.state = 'incomplete';
    }
    this.#place(t0Wall);
    return { ...this.info };
  }

  /**
   * Resolves once every packet taken so far has been through the muxer. The writer batches
   * packets for a tenth of a second and the muxer takes them asynchronously, so at any moment
   * some are on their way; a measurement of what the writer keeps waits for this first.
   */
  async settled(): Promise<void> {
    this.#drainQueue();
    for (let c = this.#chain; ; c = this.#chain) {
      await c;
      if (c === this.#chain) return;
    }
  }

  /** The entry as it stands, for checkpoints of the manifest while recording. */
  snapshot(t0Wall: number): TrackInfo {
    this.#place(t0Wall);
    return { ...this.info };
  }

  #place(t0Wall: number): void {
    if (!this.#t0Wall) return;
    const start = t0Wall ? this.#t0Wall - t0Wall : 0;
    this.info.start = Math.round(start);
    this.info.end = Math.round(start + this.#endTs * 1000);
  }

  #open(): void {
    const options = { appendOnly: true, minimumClusterDuration: 1 };
    this.#output = new Output({
      format: this.info.container === 'webm' ? new WebMOutputFormat(options) : new MkvOutputFormat(options),
      target: new AppendOnlyStreamTarget(
        new WritableStream<Uint8Array>({
          write: (chunk) => this.#buffer(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)),
          close: () => this.#flush(),
        }),
      ),
    });
  }

  /**
   * The muxer hands over every block as a chunk of its own (one per packet: ~40 a second per
   * track); each would be a write of its own to the file or upload. They are gathered and handed
   * on every half second, or at 64 KB: ~2 writes a second per track, for at most half a second
   * more of a track lost in a crash.
   */
  #buffer(data: Buffer): void {
    this.#pending.push(Buffer.from(data)); // the muxer may reuse its chunk's memory
    this.#pendingBytes += data.length;
    const now = Date.now();
    if (this.#pendingBytes >= FLUSH_BYTES || now - this.#flushedAt >= FLUSH_MS) this.#flush(now);
  }

  #flush(now = Date.now()): void {
    this.#flushedAt = now;
    if (!this.#pendingBytes) return;
    const data = this.#pending.length === 1 ? this.#pending[0] : Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#target.write(data);
  }

  #startOutput(): void {
    const output = this.#output!;
    this.#chain = this.#chain
      .then(() => output.start())
      .then(() => {
        this.#started = true;
      })
      .catch((err: Error) => {
        this.#error ??= err;
      });
  }

  /**
   * Seconds from the track's time 0 for an RTP timestamp that arrived at `arrival`. Time in the
   * file is the sender's RTP clock; where time 0 lies on the wall clock is the earliest the
   * packets imply over the track's first seconds (arrival − RTP time, least over packets): the
   * first packets often come in a burst (queued while the recording started), so the first
   * arrival alone places a track up to ~0.1 s late.
   */
  #timestamp(rtp: number, arrival: number): number {
    if (!this.#anchor) {
      this.#lastRtp = rtp;
      this.#unwrapped = rtp;
      this.#anchor = { rtp, wall: arrival };
      this.#setWall0(arrival);
      return 0;
    }
    // 32-bit RTP timestamps wrap; a step is the signed difference from the last one.
    this.#unwrapped += ((rtp - this.#lastRtp + 2 ** 31) >>> 0) - 2 ** 31;
    this.#lastRtp = rtp;
    let ts = (this.#unwrapped - this.#anchor.rtp) / this.#clock + this.#anchorTs;
    if (Math.abs(this.#t0Wall + ts * 1000 - arrival) > MAX_DRIFT_MS) {
      // The sender's RTP clock jumped: go on from the arrival time.
      ts = Math.max(this.#lastTs + 0.001, (arrival - this.#t0Wall) / 1000);
      this.#anchor = { rtp: this.#unwrapped, wall: arrival };
      this.#anchorTs = ts;
    } else if (ts < SETTLE_S && arrival - ts * 1000 < this.#t0Wall) {
      this.#setWall0(arrival - ts * 1000);
    }
    return ts;
  }

  #setWall0(wall: number): void {
    this.#t0Wall = wall;
    this.info.startedAt = new Date(Math.round(wall)).toISOString();
  }

  #add(data: Buffer, key: boolean, ts: number, duration: number, meta?: object): void {
    // Matroska blocks go forward in time: a packet that would go back (reordered, late) is dropped.
    if (ts <= this.#lastTs) return;
    this.#lastTs = ts;
    this.#endTs = Math.max(this.#endTs, ts + duration);
    this.info.packets++;
    this.#queue.push({ packet: new EncodedPacket(data, key ? 'key' : 'delta', ts, duration), meta });
    // Packets reach the muxer in batches, a tenth of a second apart: one turn of the event loop
    // for ~3–5 packets instead of one each (the muxer's per-packet work is mostly fixed costs).
    if (!this.#queueTimer) this.#queueTimer = setTimeout(() => this.#drainQueue(), QUEUE_MS);
  }

  /** Hands the queued packets to the muxer, in order. */
  #drainQueue(): void {
    if (this.#queueTimer) clearTimeout(this.#queueTimer);
    this.#queueTimer = null;
    const batch = this.#queue;
    if (!batch.length) return;
    this.#queue = [];
    const source = (this.#video ?? this.#audio)! as EncodedVideoPacketSource;
    const onError = (err: Error) => {
      this.#error ??= err;
    };
    // Once the output has started, packets go straight to the muxer, which keeps them in order
    // itself (a mutex); the last one's promise stands for all before it.
    if (this.#started) {
      for (const q of batch) this.#chain = source.add(q.packet, q.meta as never).catch(onError);
    } else {
      this.#chain = this.#chain
        .then(async () => {
          for (const q of batch) await source.add(q.packet, q.meta as never);
        })
        .catch(onError);
    }
  }
}
