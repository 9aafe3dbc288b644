import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { FfmpegProcess, type FfmpegExit } from './FfmpegProcess';
import { buildFilterGraph } from '../../compositor/filterGraph';
import { releaseFrame, retainFrame } from './FramePool';
import { epochEncoderArgs, letterboxFilter, type EncoderSettings } from '../../compositor/ffmpegArgs';
import { DirectFeed, SUBTICKS } from './DirectFeed';
import { ivfFileHeader, ivfFrameHeader } from '../media/ivf';
import { AccessUnitSplitter, isKeyframe } from '../media/annexb';
import type { FfmpegProgress } from './ffmpegOutput';
import type { Layout } from '../../compositor/layout';
import type { Logger } from '../logger';
import type { VideoCodec } from '../media/types';

export interface EpochTile {
  sourceId: string;
  name: string;
  /** Size of the raw frames this tile's input gets (a direct epoch letterboxes to it). */
  w: number;
  h: number;
  /** A direct epoch's input codec for this tile: its source's (VP8 until it sent anything). */
  codec?: VideoCodec;
}

/** What a direct epoch's tile shows while its source has no live video in step (a keyframe of the input's codec). */
export type CardOf = (tileIndex: number) => Buffer;

interface Events {
  /** One encoded picture (an H.264 access unit): the k-th answers the k-th tick written. */
  frame: [Buffer, boolean];
  progress: [FfmpegProgress];
  /** x264's PSNR of the whole epoch against the canvas it was given (only with settings.psnr). */
  psnr: [number];
  /** A direct epoch's decoder for tile `i` could not decode a frame. */
  decodeError: [number];
  exit: [FfmpegExit];
}

/**
 * One layout epoch: an FFmpeg that composes N raw tiles (pipe:3..) with the layout's filter graph
 * and encodes the canvas with x264, putting out H.264 access units on stdout. Its graph is fixed
 * for life; a new layout gets a new EpochEncoder (make-before-break, see Recording). The canvas
 * never crosses a pipe: composition and encoding share the process, as in one bare FFmpeg.
 */
export class EpochEncoder extends EventEmitter<Events> {
  readonly layout: Layout;
  readonly tiles: EpochTile[];
  readonly settings: EncoderSettings;
  readonly proc: FfmpegProcess;
  sent = 0;
  received = 0;
  #inputs: Writable[];
  #splitter = new AccessUnitSplitter();
  #dir: string;
  #closed = false;
  /** Set for a direct epoch: it decodes the tiles' VP8 and H.264 itself (see DirectFeed). */
  readonly direct: DirectFeed | null = null;
  #cardOf: CardOf | null = null;

  constructor(opts: {
    ffmpegPath: string;
    layout: Layout;
    tiles: EpochTile[];
    fps: number;
    background: string;
    fontFile: string | null;
    workDir: string;
    settings: EncoderSettings;
    logger: Logger;
    /** A direct epoch: the tiles' inputs are their sources' frames (IVF, EpochTile.codec), stamped in pictures; the cards it shows. */
    direct?: { cardOf: CardOf };
  }) {
    super();
    this.layout = opts.layout;
    this.tiles = opts.tiles;
    this.settings = opts.settings;
    // Names go through files (drawtext textfile=), so no name can break the filtergraph syntax.
    this.#dir = fs.mkdtempSync(path.join(opts.workDir, 'epoch-'));
    const fontOk = !!opts.fontFile && fs.existsSync(opts.fontFile);
    const labels = opts.tiles.map((t, i) => {
      if (!fontOk || !t.name) return null;
      const f = path.join(this.#dir, `label-${i}.txt`);
      fs.writeFileSync(f, t.name.slice(0, 40));
      return f;
    });
    const { graph, output } = buildFilterGraph(opts.layout, {
      fps: opts.fps,
      background: opts.background,
      inputSize: (i) => ({ w: opts.tiles[i].w, h: opts.tiles[i].h }),
      labelFile: (i) => labels[i],
      fontFile: fontOk ? opts.fontFile : null,
      // One picture per tick on every input before anything else: the frame sync then composes
      // once per tick (a source's second frame in a tick would otherwise cost a whole composite,
      // labels included, that the output's fps filter throws away), and scaling skips the
      // frames no tick shows.
      inputFilter: opts.direct ? (i) => `fps=${opts.fps}:round=down,${letterboxFilter({ w: opts.tiles[i].w, h: opts.tiles[i].h })}` : undefined,
      pace: !!opts.direct,
    });
    const inputs = opts.tiles.map((t) => (opts.direct ? (t.codec ?? 'vp8') : { w: t.w, h: t.h, fps: opts.fps }));
    const args = epochEncoderArgs(inputs, graph, output, opts.settings);
    this.proc = new FfmpegProcess({
      ffmpegPath: opts.ffmpegPath,
      args,
      extraPipes: opts.tiles.map(() => 'input' as const),
      stopBy: 'eof',
      gracefulMs: 5000,
      logger: opts.logger,
    });
    this.#inputs = this.proc.pipes as Writable[];
    if (opts.direct) {
      this.#cardOf = opts.direct.cardOf;
      // Timestamps count pictures in 1/SUBTICKS units (the IVF time base is 1 / (fps × SUBTICKS)).
      this.#inputs.forEach((w, i) => w.write(ivfFileHeader(opts.tiles[i].w, opts.tiles[i].h, opts.fps * SUBTICKS, 1, opts.tiles[i].codec === 'h264' ? 'H264' : 'VP80')));
      this.direct = new DirectFeed(opts.tiles.length, (i, frame, pts) => {
        if (this.#closed || this.proc.hasExited) return;
        // Header and frame in one writev: two writes were two wake-ups of FFmpeg's demuxer per
        // frame (it reads the 12-byte header, then waits for the rest) and two syscalls here.
        const w = this.#inputs[i];
        w.cork();
        w.write(ivfFrameHeader(frame.length, BigInt(pts)));
        w.write(frame);
        w.uncork();
      });
    }
    this.proc.stdout.on('data', (c: Buffer) => this.#emit(this.#splitter.push(c)));
    this.proc.stdout.on('end', () => {
      const last = this.#splitter.end();
      if (last) this.#emit([last]);
    });
    this.proc.on('progress', (p) => this.emit('progress', p));
    this.proc.on('line', (line) => {
      // The whole stream's line ("[libx264 @ …] PSNR Mean … Global:…"), not a frame type's.
      const m = /\] PSNR Mean .*Global:([\d.]+)/.exec(line);
      if (m) this.emit('psnr', Number(m[1]));
      const d = this.direct ? /Error while decoding stream #(\d+):/.exec(line) : null;
      if (d) this.emit('decodeError', Number(d[1]));
    });
    this.proc.on('exit', (e) => {
      this.#cleanup();
      this.emit('exit', e);
    });
  }

  get alive(): boolean {
    return !this.proc.hasExited;
  }

  /** One tick: one frame per tile, in tile order. */
  write(frames: Buffer[]): void {
    if (this.#closed || this.proc.hasExited) return;
    // Each write holds its frame until the pipe has taken it (pooled frames are reused after).
    frames.forEach((f, i) => {
      retainFrame(f);
      this.#inputs[i].write(f, () => releaseFrame(f));
    });
    this.sent++;
  }

  /** Finish: close the inputs; FFmpeg encodes what it has, flushes and exits. */
  end(): Promise<FfmpegExit> {
    if (this.direct && this.#cardOf && !this.#closed) this.direct.end(this.#cardOf);
    this.#closed = true;
    return this.proc.stop();
  }

  kill(): void {
    this.#closed = true;
    this.proc.kill('SIGKILL');
  }

  #emit(aus: Buffer[]): void {
    // Ended, it is working off what it was fed: not hung (FfmpegProcess.working).
    if (this.#closed && aus.length > 0) this.proc.working();
    for (const au of aus) {
      this.received++;
      this.emit('frame', au, isKeyframe(au));
    }
  }

  #cleanup(): void {
    fs.rm(this.#dir, { recursive: true, force: true }, () => undefined);
  }
}
