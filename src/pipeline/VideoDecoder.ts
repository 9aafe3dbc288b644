import { SupervisedDecoder } from './SupervisedDecoder';
import { videoDecoderArgs } from '../../compositor/ffmpegArgs';
import { ivfFileHeader, ivfFrameHeader, vp8KeyframeInfo } from '../media/ivf';
import type { FfmpegProcess } from './FfmpegProcess';
import type { EncodedVideoFrame, VideoCodec } from '../media/types';
import type { Logger } from '../logger';

/**
 * Decodes one source's video into fixed-size raw yuv420p frames and keeps the latest one for the
 * pacer. Waits for a keyframe (and asks for one) whenever a decoder starts or input was lost.
 */
export class VideoDecoder extends SupervisedDecoder {
  readonly width: number;
  readonly height: number;
  readonly frameBytes: number;
  /** The most recent decoded frame and when it arrived (ms, Date.now()). */
  latest: Buffer | null = null;
  latestAt = 0;
  /** Frames decoded since the pacer last took one (more than 1 = frames dropped). */
  freshFrames = 0;
  framesDecoded = 0;
  #codec: VideoCodec | null = null;
  #needKeyframe = true;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #pts = 0n;
  #requestKeyframe: () => void;

  constructor(opts: { ffmpegPath: string; width: number; height: number; logger: Logger; stallMs: number; requestKeyframe: () => void }) {
    super(opts.ffmpegPath, opts.logger, opts.stallMs);
    this.width = opts.width;
    this.height = opts.height;
    this.frameBytes = (opts.width * opts.height * 3) / 2;
    this.#requestKeyframe = opts.requestKeyframe;
  }

  protected args(): string[] {
    return videoDecoderArgs(this.#codec ?? 'vp8', { w: this.width, h: this.height });
  }

  protected onSpawn(_proc: FfmpegProcess): void {
    this.#needKeyframe = true;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#requestKeyframe();
  }

  protected onOutput(chunk: Buffer): void {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    while (this.#pendingBytes >= this.frameBytes) {
      const all = this.#pending.length === 1 ? this.#pending[0] : Buffer.concat(this.#pending, this.#pendingBytes);
      this.latest = Buffer.from(all.subarray(0, this.frameBytes));
      this.latestAt = Date.now();
      this.freshFrames++;
      this.framesDecoded++;
      const rest = all.subarray(this.frameBytes);
      this.#pending = rest.length ? [rest] : [];
      this.#pendingBytes = rest.length;
    }
  }

  /** Feed one encoded frame from the source. */
  push(frame: EncodedVideoFrame): void {
    if (this.closed) return;
    if (frame.codec !== this.#codec) {
      // First frame, or the sender switched codec: a new process for the new bitstream.
      this.#codec = frame.codec;
      const old = this.proc;
      this.proc = null;
      if (old) void old.stop();
      this.spawn();
    }
    if (this.#needKeyframe) {
      if (!frame.keyframe) return;
      this.#needKeyframe = false;
      if (frame.codec === 'vp8') {
        const size = vp8KeyframeInfo(frame.data) ?? { width: frame.width ?? this.width, height: frame.height ?? this.height };
        this.write(ivfFileHeader(size.width, size.height));
      }
    }
    const ok =
      frame.codec === 'vp8'
        ? this.write(Buffer.concat([ivfFrameHeader(frame.data.length, this.#pts++), frame.data]))
        : this.write(frame.data);
    if (!ok && this.proc) {
      // Input was lost (decoder backed up): the next frames would reference missing ones.
      this.#needKeyframe = true;
      this.#requestKeyframe();
    }
  }
}
