import { AUDIO_PREBUFFER_MS, MIN_AUDIO_AGE_MS, Mixer, SAMPLE_RATE, type PcmJitterBuffer } from './audio';
import type { FfmpegExit } from './FfmpegProcess';

/** What the recording's audio needs of its encoder (AudioEncoder: FFmpeg's AAC). */
export interface AacEncoder {
  on(event: 'packet', listener: (frame: Buffer, pos: number) => void): unknown;
  on(event: 'exit', listener: (exit: FfmpegExit) => void): unknown;
  write(pcm: Buffer): void;
  finish(): Promise<FfmpegExit>;
  kill(): void;
}

/** One source's audio at a block: its jitter buffer and how long its pictures wait for their tick. */
export interface AudioInput {
  buffer: PcmJitterBuffer;
  pictureDelayMs: number;
}

/**
 * The recording's one audio track: on each 20-ms block of the clock, every source's block is
 * pulled from its jitter buffer, mixed and encoded; each AAC frame goes out at its sample position
 * on the recording's timeline. Pure apart from the encoder it is given.
 *
 * Lip sync: block b of this worker starts at sample (blockBase + b) × 960 of the recording, less
 * the prebuffer, and each source's block is taken with its first sample as old as the prebuffer
 * plus that source's pictures' wait for their tick (PcmJitterBuffer, PictureDelay), so audio and
 * pictures that arrived together land together. (Measured in the benchmark's output: with the
 * buffers started on whole packets instead, −5 to −45 ms per participant; docs/workers.md, day 18.)
 */
export class RecordingAudio {
  #mixer = new Mixer();
  /** Sample position (on the recording's clock) of this worker's first sample. */
  readonly basePos: number;
  /** Where kept audio ends (set at the stop: nothing beyond the last picture). */
  #endPos = Infinity;

  /**
   * `tickBase`: video ticks made by the workers before this one (a continued recording), so its
   * audio continues the same timeline. `out` gets each AAC frame kept; `onExit` the encoder's exit.
   */
  constructor(
    private readonly encoder: AacEncoder,
    o: { tickBase: number; fps: number; out: (pos: number, frame: Buffer) => void; onExit: (exit: FfmpegExit) => void },
  ) {
    this.basePos = Math.round((o.tickBase * SAMPLE_RATE) / o.fps) - (AUDIO_PREBUFFER_MS * SAMPLE_RATE) / 1000;
    encoder.on('packet', (frame, pos) => {
      const at = this.basePos + pos;
      if (at >= 0 && at < this.#endPos) o.out(at, frame);
    });
    encoder.on('exit', o.onExit);
  }

  /** Mixes and encodes the block due at `due` (performance.now() ms); returns each input's level. */
  block(due: number, inputs: AudioInput[]): number[] {
    const { pcm, levels } = this.#mixer.mix(inputs.map((s) => s.buffer.pull(due, Math.max(MIN_AUDIO_AGE_MS, AUDIO_PREBUFFER_MS + s.pictureDelayMs))));
    this.encoder.write(pcm);
    return levels;
  }

  /** Keeps no audio from sample `pos` on (the recording's last picture ends there). */
  endAt(pos: number): void {
    this.#endPos = pos;
  }

  /** The encoder flushes what it was given and exits. */
  finish(): Promise<FfmpegExit> {
    return this.encoder.finish();
  }

  kill(): void {
    this.encoder.kill();
  }
}
