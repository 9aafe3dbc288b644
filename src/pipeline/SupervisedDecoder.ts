import { EventEmitter } from 'node:events';
import { FfmpegProcess, type FfmpegExit } from './FfmpegProcess';
import type { Logger } from '../logger';
import { enqueueSpawn } from './spawnQueue';

export interface DecoderEvents {
  /** A decoder process died and was replaced (counted in metrics, logged). */
  restart: [FfmpegExit];
  close: [];
}

/**
 * What the video and audio decoders share: one FFmpeg child fed on stdin, replaced when it dies
 * or stalls (input written, nothing out for `stallMs`), with backoff so a source that sends
 * garbage cannot make us spawn in a loop. A decoder's trouble never leaves its own tile.
 */
export abstract class SupervisedDecoder extends EventEmitter<DecoderEvents> {
  protected proc: FfmpegProcess | null = null;
  protected closed = false;
  protected readonly log: Logger;
  #restarts = 0;
  #lastInputAt = 0;
  #awaitingOutput = false;
  #restartTimer: NodeJS.Timeout | null = null;
  #watchdog: NodeJS.Timeout;

  constructor(
    protected readonly ffmpegPath: string,
    logger: Logger,
    protected readonly stallMs: number,
  ) {
    super();
    this.log = logger;
    this.#watchdog = setInterval(() => this.#checkStall(), Math.max(250, stallMs / 4));
  }

  get restarts(): number {
    return this.#restarts;
  }

  protected abstract args(): string[];
  /** Raw output bytes of the current process. */
  protected abstract onOutput(chunk: Buffer): void;

  /**
   * A buffer to read the process's output into, reused for every read (null: a new Buffer per
   * read). Only for an `onOutput` that copies what it needs before returning.
   */
  protected readBuffer(): Buffer | null {
    return null;
  }
  /** A new process is up: write headers, reset parsers, ask for a keyframe. */
  protected abstract onSpawn(proc: FfmpegProcess): void;

  #spawnPending = false;

  /** Whether a process is queued to start (input is dropped until it runs). */
  protected get spawnPending(): boolean {
    return this.#spawnPending;
  }

  /** Start a process through the spawn queue (see spawnQueue.ts). */
  protected spawn(): void {
    if (this.closed || this.#spawnPending) return;
    this.#spawnPending = true;
    enqueueSpawn(() => {
      this.#spawnPending = false;
      this.#spawnNow();
    });
  }

  #spawnNow(): void {
    if (this.closed) return;
    const onChunk = (c: Buffer) => {
      if (this.proc !== proc) return;
      this.#awaitingOutput = false;
      this.onOutput(c);
    };
    const buffer = this.readBuffer();
    const proc: FfmpegProcess = new FfmpegProcess({
      ffmpegPath: this.ffmpegPath,
      args: this.args(),
      stopBy: 'eof',
      gracefulMs: 2000,
      logger: this.log,
      stdoutInto: buffer ? { buffer, onChunk } : undefined,
    });
    if (!buffer) proc.stdout.on('data', onChunk);
    this.proc = proc;
    this.#lastInputAt = 0;
    this.#awaitingOutput = false;
    proc.on('exit', (exit) => {
      if (this.proc !== proc || this.closed) return;
      this.proc = null;
      this.#restarts++;
      this.log.warn({ exit }, 'decoder exited; replacing it');
      this.emit('restart', exit);
      // Back off: immediately the first time, then up to 2 s between attempts.
      const delay = Math.min(2000, 100 * 2 ** Math.min(this.#restarts - 1, 5));
      this.#restartTimer = setTimeout(() => this.spawn(), delay);
    });
    this.onSpawn(proc);
  }

  /**
   * Write to the current process; drops input (returns false) while none runs or it is backed up.
   * `media: false` for stream headers: they produce no output by themselves, so they must not
   * arm the stall watch (a microphone that never sends a packet had its decoder killed as
   * stalled and respawned every few seconds for the whole call).
   */
  protected write(buf: Buffer, media = true): boolean {
    const p = this.proc;
    if (!p || p.hasExited || !p.stdin.writable) return false;
    if (p.stdin.writableLength > 4 * 1024 * 1024) return false;
    if (media && !this.#awaitingOutput) {
      // The oldest input not yet answered by any output (a flag, not timestamps compared: a
      // first write in the same millisecond as the spawn once hid a wedged decoder for good).
      this.#awaitingOutput = true;
      this.#lastInputAt = Date.now();
    }
    p.stdin.write(buf);
    return true;
  }

  #checkStall(): void {
    const p = this.proc;
    if (!p || this.closed || !this.#awaitingOutput) return;
    const now = Date.now();
    // Input has been waiting for output longer than stallMs: the process is wedged.
    if (now - this.#lastInputAt > this.stallMs) {
      this.log.warn({ stallMs: this.stallMs }, 'decoder stalled; killing it');
      this.#awaitingOutput = false;
      p.kill('SIGKILL');
    }
  }

  /** Kill the current process as if it crashed (tests; operators via signals). */
  killProcess(): void {
    this.proc?.kill('SIGKILL');
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.#watchdog);
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    const p = this.proc;
    this.proc = null;
    if (p) void p.stop();
    this.emit('close');
  }
}
