import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { FfmpegProcess, type FfmpegExit } from './FfmpegProcess';
import { buildFilterGraph } from '../../compositor/filterGraph';
import { RawFrameReader } from './RawFrameReader';
import { compositorArgs } from '../../compositor/ffmpegArgs';
import type { Layout } from '../../compositor/layout';
import type { Logger } from '../logger';

export interface CompositorTile {
  sourceId: string;
  name: string;
  /** Size of the raw frames this tile's input gets. */
  w: number;
  h: number;
}

interface Events {
  /** One composite canvas frame, in input order: the k-th frame answers the k-th tick sent. */
  frame: [Buffer];
  exit: [FfmpegExit];
}

/**
 * One layout epoch's FFmpeg compositor: N raw tile inputs (pipe:3..) → one raw canvas on stdout.
 * Its graph is fixed for life; a new layout gets a new Compositor (make-before-break, see
 * Recording). `firstTick` and `sent` let the Recording know which tick each output answers.
 */
export class Compositor extends EventEmitter<Events> {
  readonly layout: Layout;
  readonly tiles: CompositorTile[];
  readonly canvasBytes: number;
  readonly proc: FfmpegProcess;
  /** Pacer tick of this compositor's first input frame. */
  firstTick = -1;
  sent = 0;
  received = 0;
  #inputs: Writable[];
  #reader: RawFrameReader;
  #dir: string;
  #closed = false;

  constructor(opts: {
    ffmpegPath: string;
    layout: Layout;
    tiles: CompositorTile[];
    fps: number;
    background: string;
    fontFile: string | null;
    workDir: string;
    logger: Logger;
  }) {
    super();
    this.layout = opts.layout;
    this.tiles = opts.tiles;
    this.canvasBytes = (opts.layout.width * opts.layout.height * 3) / 2;
    this.#reader = new RawFrameReader(this.canvasBytes);
    // Names go through files (drawtext textfile=), so no name can break the filtergraph syntax.
    this.#dir = fs.mkdtempSync(path.join(opts.workDir, 'comp-'));
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
    });
    const args = compositorArgs(opts.tiles.map((t) => ({ w: t.w, h: t.h, fps: opts.fps })), graph, output);
    this.proc = new FfmpegProcess({
      ffmpegPath: opts.ffmpegPath,
      args,
      extraPipes: opts.tiles.map(() => 'input' as const),
      stopBy: 'eof',
      gracefulMs: 3000,
      logger: opts.logger,
    });
    this.#inputs = this.proc.pipes as Writable[];
    this.proc.stdout.on('data', (c: Buffer) => this.#onData(c));
    this.proc.on('exit', (e) => {
      this.#cleanup();
      this.emit('exit', e);
    });
  }

  get alive(): boolean {
    return !this.proc.hasExited;
  }

  /** Bytes written but not yet taken by FFmpeg (a growing number means it is falling behind). */
  get backlog(): number {
    return this.#inputs.reduce((n, s) => n + s.writableLength, 0);
  }

  /** One tick: one frame per tile, in tile order. */
  write(tick: number, frames: Buffer[]): void {
    if (this.#closed || this.proc.hasExited) return;
    if (this.firstTick < 0) this.firstTick = tick;
    frames.forEach((f, i) => this.#inputs[i].write(f));
    this.sent++;
  }

  /** Finish: close the inputs; FFmpeg composes what it has and exits. */
  end(): Promise<FfmpegExit> {
    this.#closed = true;
    return this.proc.stop();
  }

  kill(): void {
    this.#closed = true;
    this.proc.kill('SIGKILL');
  }

  #onData(c: Buffer): void {
    this.#reader.push(c, (frame) => {
      this.received++;
      this.emit('frame', frame);
    });
  }

  #cleanup(): void {
    fs.rm(this.#dir, { recursive: true, force: true }, () => undefined);
  }
}
