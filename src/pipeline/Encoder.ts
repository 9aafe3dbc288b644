import { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import { FfmpegProcess, type FfmpegExit } from './FfmpegProcess';
import { encoderArgs, type EncoderSettings } from '../../compositor/ffmpegArgs';
import { Mp4Splitter } from './Mp4Splitter';
import type { Mp4Segment } from '../storage/Sink';
import type { FfmpegProgress } from './ffmpegOutput';
import type { Logger } from '../logger';

interface Events {
  /** The first bytes of MP4 came out: the recording is really recording. */
  firstBytes: [];
  segment: [Mp4Segment];
  progress: [FfmpegProgress];
  exit: [FfmpegExit];
}

/**
 * The one encoder of a recording: canvas frames + mixed PCM in, fragmented MP4 out, cut into
 * init/fragment segments. Only its death may fail a recording.
 */
export class Encoder extends EventEmitter<Events> {
  readonly proc: FfmpegProcess;
  readonly frameBytes: number;
  framesWritten = 0;
  audioBlocksWritten = 0;
  bytesOut = 0;
  #splitter = new Mp4Splitter();
  #audio: Writable;
  #ended = false;

  constructor(opts: { ffmpegPath: string; settings: EncoderSettings; logger: Logger; drainMs?: number }) {
    super();
    this.frameBytes = (opts.settings.width * opts.settings.height * 3) / 2;
    this.proc = new FfmpegProcess({
      ffmpegPath: opts.ffmpegPath,
      args: encoderArgs(opts.settings),
      extraPipes: ['input'],
      stopBy: 'eof',
      // Draining a backlog takes as long as it takes; the recording's stop watchdog bounds it.
      gracefulMs: opts.drainMs ?? 20_000,
      logger: opts.logger,
    });
    this.#audio = this.proc.pipes[0] as Writable;
    this.proc.stdout.once('data', () => this.emit('firstBytes'));
    this.proc.stdout.on('data', (c: Buffer) => {
      this.bytesOut += c.length;
      for (const s of this.#splitter.push(c)) this.emit('segment', s);
    });
    this.proc.stdout.on('end', () => {
      for (const s of this.#splitter.end()) this.emit('segment', s);
    });
    this.proc.on('progress', (p) => this.emit('progress', p));
    this.proc.on('exit', (e) => this.emit('exit', e));
  }

  /** Video frames queued in Node for the encoder: its lag behind real time, in frames. */
  get videoBacklogFrames(): number {
    return this.proc.stdin.writableLength / this.frameBytes;
  }

  writeVideo(frame: Buffer): void {
    if (this.#ended || this.proc.hasExited) return;
    this.proc.stdin.write(frame);
    this.framesWritten++;
  }

  writeAudio(block: Buffer): void {
    if (this.#ended || this.proc.hasExited) return;
    this.#audio.write(block);
    this.audioBlocksWritten++;
  }

  /** Drain: end both inputs; FFmpeg flushes the last fragment and exits. */
  finish(): Promise<FfmpegExit> {
    this.#ended = true;
    return this.proc.stop();
  }

  kill(): void {
    this.#ended = true;
    this.proc.kill('SIGKILL');
  }
}
