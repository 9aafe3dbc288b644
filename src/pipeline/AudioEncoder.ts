import { EventEmitter } from 'node:events';
import { FfmpegProcess, type FfmpegExit } from './FfmpegProcess';
import { audioEncoderArgs } from '../../compositor/ffmpegArgs';
import { AdtsSplitter } from '../media/adts';
import type { Logger } from '../logger';

export const AAC_FRAME_SAMPLES = 1024;
/** Mixed 20-ms blocks per write to the encoder: 100 ms. */
export const WRITE_BLOCKS = 5;

export interface AudioEncoderEvents {
  /** One AAC frame (raw, no ADTS header) and its position in samples from the first PCM written. */
  packet: [Buffer, number];
  exit: [FfmpegExit];
}

/**
 * The recording's one audio encoder: mixed PCM in, AAC frames out. FFmpeg's AAC encoder puts out
 * one frame of encoder delay first (priming: 1024 samples before the first input sample); it is
 * dropped, so frame k + 1 carries input samples [k·1024, (k+1)·1024) and audio stays on the
 * video's clock.
 */
export class AudioEncoder extends EventEmitter<AudioEncoderEvents> {
  readonly proc: FfmpegProcess;
  #splitter = new AdtsSplitter();
  #frames = 0;
  #ended = false;

  constructor(opts: { ffmpegPath: string; audioBitrate: number; logger: Logger; drainMs?: number; writeBlocks?: number }) {
    super();
    this.#batch = opts.writeBlocks ?? WRITE_BLOCKS;
    this.proc = new FfmpegProcess({
      ffmpegPath: opts.ffmpegPath,
      args: audioEncoderArgs({ audioBitrate: opts.audioBitrate }),
      stopBy: 'eof',
      gracefulMs: opts.drainMs ?? 20_000,
      logger: opts.logger,
    });
    this.proc.stdout.on('data', (c: Buffer) => {
      for (const f of this.#splitter.push(c)) {
        const k = this.#frames++;
        if (k > 0) this.emit('packet', f.data, (k - 1) * AAC_FRAME_SAMPLES);
      }
    });
    this.proc.on('exit', (e) => this.emit('exit', e));
  }

  #pending: Buffer[] = [];
  readonly #batch: number;

  /**
   * Mixed blocks go to the encoder WRITE_BLOCKS at a time: each write wakes the encoder (and its
   * output wakes the worker), and a wake-up costs more than the AAC encoding of a block on this
   * machine's VMs (docs/workers.md, day 17). Positions count samples, so the batching delays the
   * audio's arrival at the muxer, never its place in the file. A worker killed mid-call loses
   * the unwritten blocks with the rest of its gap.
   */
  write(pcm: Buffer): void {
    if (this.#ended || this.proc.hasExited) return;
    this.#pending.push(pcm);
    if (this.#pending.length >= this.#batch) this.#flush();
  }

  #flush(): void {
    if (!this.#pending.length || this.proc.hasExited) return;
    this.proc.stdin.write(this.#pending.length === 1 ? this.#pending[0] : Buffer.concat(this.#pending));
    this.#pending = [];
  }

  finish(): Promise<FfmpegExit> {
    this.#flush();
    this.#ended = true;
    return this.proc.stop();
  }

  kill(): void {
    this.#ended = true;
    this.proc.kill('SIGKILL');
  }
}
