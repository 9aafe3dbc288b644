import { once } from 'node:events';
import { FfmpegProcess } from '../pipeline/FfmpegProcess';
import { RawFrameReader } from '../pipeline/RawFrameReader';
import { releaseFrame } from '../pipeline/FramePool';
import { parseShowinfoTime, trackDecoderArgs } from '../../compositor/ffmpegArgs';
import type { Logger } from '../logger';

/** Decoded frames kept ahead of the render: enough to hide a read, few enough to bound memory. */
const AHEAD = 6;

interface Timed {
  /** ms on the recording's clock. */
  at: number;
  frame: Buffer;
}

/**
 * One recorded video track decoded for a re-render, read at the renderer's pace (FFmpeg is
 * paused while AHEAD frames wait). Answers the live pacer's question for each tick: the newest
 * frame at or before that time, unless it is older than the video timeout (then the tile shows
 * its name card, as live).
 */
export class TrackVideoReader {
  readonly proc: FfmpegProcess;
  #reader: RawFrameReader;
  #frames: Buffer[] = [];
  #times: number[] = [];
  #current: Timed | null = null;
  #ended = false;
  #wake: (() => void) | null = null;
  #startMs: number;
  #log: Logger;
  #closed = false;

  constructor(o: { ffmpegPath: string; file: string; startMs: number; size: { w: number; h: number }; background: string; logger: Logger }) {
    this.#startMs = o.startMs;
    this.#log = o.logger;
    this.#reader = new RawFrameReader((o.size.w * o.size.h * 3) / 2);
    const onFrame = (f: Buffer) => {
      this.#frames.push(f);
      if (this.#frames.length >= AHEAD) this.proc.stdout.pause();
      this.#poke();
    };
    this.proc = new FfmpegProcess({
      ffmpegPath: o.ffmpegPath,
      args: trackDecoderArgs(o.file, o.size, `0x${o.background.replace('#', '')}`),
      stopBy: 'eof',
      gracefulMs: 2000,
      logger: o.logger,
      stderrLines: 20,
      // Reads land in one reused buffer and are copied straight into pooled frames (as the live
      // decoders): a Buffer per read was most of a render's garbage.
      stdoutInto: { buffer: Buffer.allocUnsafeSlow(256 * 1024), onChunk: (c) => this.#reader.push(c, onFrame) },
    });
    this.proc.stdin.end();
    this.proc.on('line', (line) => {
      const t = parseShowinfoTime(line);
      if (t !== null) {
        this.#times.push(this.#startMs + t * 1000);
        this.#poke();
      }
    });
    void this.proc.exited.then((exit) => {
      // A track cut short (a crash) ends at its last whole block; what decoded is used.
      if (exit.code !== 0 && !this.#closed) this.#log.warn({ exit }, 'track decoder ended with an error; the track ends there');
      this.#ended = true;
      this.#poke();
    });
  }

  #poke(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  /** The next decoded frame with its time, or null at the end of the track. */
  async #peek(): Promise<Timed | null> {
    for (;;) {
      if (this.#frames.length && this.#times.length) return { at: this.#times[0], frame: this.#frames[0] };
      if (this.#ended && (!this.#frames.length || !this.#times.length)) return null;
      if (this.#frames.length < AHEAD) this.proc.stdout.resume();
      await new Promise<void>((r) => (this.#wake = r));
    }
  }

  /**
   * The frame a tile shows at `atMs` (recording clock): the newest at or before it, if not older
   * than `timeoutMs`; else null (the name card). Calls must go forward in time.
   */
  async frameAt(atMs: number, timeoutMs: number): Promise<Buffer | null> {
    for (;;) {
      const next = await this.#peek();
      // Timestamps are whole ms: half a ms of slack keeps a frame due on this tick on it.
      if (!next || next.at > atMs + 0.5) break;
      this.#frames.shift();
      this.#times.shift();
      if (this.#current) releaseFrame(this.#current.frame);
      this.#current = next;
    }
    if (this.#frames.length < AHEAD && !this.#ended) this.proc.stdout.resume();
    return this.#current && atMs - this.#current.at <= timeoutMs ? this.#current.frame : null;
  }

  /** Stops the decoder (the tile is gone) and lets go of its frames. Never throws. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#ended = true;
    if (!this.proc.hasExited) this.proc.kill('SIGKILL');
    // A paused stdout never reads its end: close it, or its pipe outlives the process.
    this.proc.stdout.destroy();
    for (const f of this.#frames) releaseFrame(f);
    this.#frames = [];
    if (this.#current) releaseFrame(this.#current.frame);
    this.#current = null;
    this.#poke();
    if (!this.proc.hasExited) await once(this.proc, 'exit').catch(() => undefined);
  }
}
