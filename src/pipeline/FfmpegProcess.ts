import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import execa from 'execa';
import { LineTail, parseProgressLine, type FfmpegProgress } from './ffmpegOutput';
import { realClock, type Clock } from '../clock';
import type { Logger } from '../logger';

/** How an FFmpeg child ended. Only `died` (and `failed-to-start`) are faults. */
export type ExitKind = 'stopped' | 'failed-to-start' | 'died';

export interface FfmpegExit {
  kind: ExitKind;
  code: number | null;
  signal: string | null;
  /** The last meaningful stderr lines, for error messages. */
  stderr: string;
}

export interface FfmpegProcessOptions {
  ffmpegPath: string;
  args: string[];
  /** Extra pipes after stdin/stdout/stderr: fds 3, 4, ... as 'input' (we write) or 'output' (we read). */
  extraPipes?: ('input' | 'output')[];
  /** How the polite first step of the kill ladder asks FFmpeg to finish. */
  stopBy: 'eof' | 'q';
  /** Time each rung of the kill ladder gets. */
  gracefulMs?: number;
  logger: Logger;
  clock?: Clock;
  stderrLines?: number;
  /**
   * Read stdout into this one buffer, reused for every read, and hand each read to `onChunk`
   * (valid only during the call) instead of emitting a new Buffer per read on `stdout`. For
   * children that put out raw video: see `readIntoBuffer`.
   */
  stdoutInto?: { buffer: Buffer; onChunk: (chunk: Buffer) => void };
}

interface Events {
  ready: [];
  progress: [FfmpegProgress];
  /** Every other stderr line (for the few summaries worth reading, e.g. x264's PSNR). */
  line: [string];
  exit: [FfmpegExit];
}

/**
 * The one supervisor of every FFmpeg child: argv array (never a shell), readiness, exit
 * classification, a bounded stderr tail, and the kill ladder (EOF or `q` → SIGINT → SIGKILL).
 */
export class FfmpegProcess extends EventEmitter<Events> {
  readonly stdin: Writable;
  stdout: Readable;
  readonly pipes: (Readable | Writable)[];
  readonly exited: Promise<FfmpegExit>;
  readonly pid: number | undefined;
  #child: execa.ExecaChildProcess;
  #tail: LineTail;
  #ready = false;
  #stopping = false;
  #exit: FfmpegExit | null = null;
  #timers: unknown[] = [];
  /** The kill ladder's first timer (SIGINT) while it may still be put off (`working`). */
  #interruptTimer: unknown = null;
  #clock: Clock;
  #opts: FfmpegProcessOptions;

  constructor(opts: FfmpegProcessOptions) {
    super();
    this.#opts = opts;
    this.#clock = opts.clock ?? realClock;
    this.#tail = new LineTail(opts.stderrLines ?? 40);
    const extra = opts.extraPipes ?? [];
    this.#child = execa(opts.ffmpegPath, opts.args, {
      stdio: ['pipe', 'pipe', 'pipe', ...extra.map(() => 'pipe' as const)],
      buffer: false,
      reject: false,
      stripFinalNewline: false,
      windowsHide: true,
    });
    this.pid = this.#child.pid;
    this.stdin = this.#child.stdin!;
    this.stdout = this.#child.stdout!;
    this.pipes = extra.map((_, i) => this.#child.stdio[3 + i] as unknown as Readable | Writable);
    // Writes to a child that died raise EPIPE on the stream; the exit is what we report.
    for (const s of [this.stdin, ...this.pipes]) s.on('error', () => undefined);
    this.stdout.on('error', () => undefined);
    const into = opts.stdoutInto;
    const taken = into
      ? readIntoBuffer(this.stdout, into.buffer, (chunk) => {
          this.#markReady();
          into.onChunk(chunk);
        })
      : null;
    if (taken) this.stdout = taken;
    else if (into) this.stdout.on('data', (c: Buffer) => into.onChunk(c));
    this.stdout.once('data', () => this.#markReady());
    this.#child.stderr!.setEncoding('utf8');
    this.#child.stderr!.on('data', (chunk: string) => {
      for (const line of this.#tail.push(chunk)) {
        const p = parseProgressLine(line);
        if (p) {
          this.#markReady();
          this.emit('progress', p);
        } else {
          if (/^Press \[q\]|^Output #0/.test(line)) this.#markReady();
          this.emit('line', line);
        }
      }
    });
    // Exit is read from the child process itself, not from execa's promise: execa settles early
    // (without code or signal) when a pipe to the child breaks, which would misclassify a death.
    this.#child.then(() => undefined, () => undefined);
    this.exited = new Promise((resolve) => {
      const finish = (code: number | null, signal: string | null, spawnError?: string) => {
        if (this.#exit) return;
        for (const t of this.#timers) this.#clock.clearTimeout(t);
        if (this.#interruptTimer !== null) this.#clock.clearTimeout(this.#interruptTimer);
        const exit: FfmpegExit = {
          kind: this.#stopping ? 'stopped' : spawnError || !this.#ready ? 'failed-to-start' : 'died',
          code,
          signal,
          stderr: this.#tail.summary() || spawnError || '',
        };
        this.#exit = exit;
        this.emit('exit', exit);
        resolve(exit);
      };
      this.#child.on('error', (err: NodeJS.ErrnoException) => {
        if (this.#child.exitCode === null && this.#child.signalCode === null && err.syscall?.startsWith('spawn')) finish(null, null, err.message);
      });
      this.#child.on('close', (code: number | null, signal: NodeJS.Signals | null) => finish(code, signal));
    });
  }

  get isReady(): boolean {
    return this.#ready;
  }
  get hasExited(): boolean {
    return this.#exit !== null;
  }
  get stderrTail(): string {
    return this.#tail.summary();
  }

  /**
   * The kill ladder. Resolves with the exit once the process is gone; calling it again returns
   * the same promise's result.
   */
  stop(): Promise<FfmpegExit> {
    if (this.#exit) return Promise.resolve(this.#exit);
    if (this.#stopping) return this.exited;
    this.#stopping = true;
    if (this.#opts.stopBy === 'q') {
      this.stdin.write('q');
      this.stdin.end();
    } else {
      this.stdin.end();
      for (const p of this.pipes) if ('end' in p && typeof (p as Writable).end === 'function' && (p as Writable).writable) (p as Writable).end();
    }
    this.#armInterrupt();
    return this.exited;
  }

  /**
   * Stopping, the child is still putting out what it holds: its graceful time starts again. An
   * epoch ended behind (a superseded layout's, short of CPU) owes seconds of pictures, and
   * interrupting it loses the ones it has not encoded yet; one that stops putting anything out
   * still gets SIGINT after `gracefulMs`.
   */
  working(): void {
    if (!this.#stopping || this.#exit || this.#interruptTimer === null) return;
    this.#clock.clearTimeout(this.#interruptTimer);
    this.#armInterrupt();
  }

  #armInterrupt(): void {
    const graceful = this.#opts.gracefulMs ?? 5000;
    const t = this.#clock.setTimeout(() => {
      this.#interruptTimer = null;
      this.#opts.logger.warn({ pid: this.pid, graceMs: graceful }, 'FFmpeg did not finish within its grace after its input ended: interrupting it (what it had not put out is lost)');
      this.#child.kill('SIGINT');
      this.#timers.push(this.#clock.setTimeout(() => this.#child.kill('SIGKILL'), Math.max(1000, graceful / 2)));
    }, graceful);
    this.#interruptTimer = t;
  }

  /** Immediate SIGKILL (tests use it to simulate a crash; close paths use stop()). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.#child.kill(signal);
  }

  #markReady(): void {
    if (this.#ready) return;
    this.#ready = true;
    this.emit('ready');
  }
}

/**
 * Reads a child's stdout into `buffer` (one buffer, reused for every read) instead of a new
 * Buffer per read. A decoder's raw video is ~10 MB/s per tile in reads of up to 64 KB, and those
 * short-lived Buffers were half of the external memory whose growth made V8 run full
 * collections several times a second in a recording's worker (docs/workers.md). Node reads into
 * a user buffer only for a socket made with `onread`, so the child's stdout handle is moved to
 * such a socket, and the stream Node made for it is closed without its handle (the child's
 * 'close' still counts it). Returns null — the caller keeps plain 'data' events — if this Node
 * does not expose the handle.
 */
function readIntoBuffer(stream: Readable, buffer: Buffer, onChunk: (chunk: Buffer) => void): net.Socket | null {
  const original = stream as Readable & { _handle?: unknown };
  const handle = original._handle;
  if (!handle || !(stream instanceof net.Socket)) return null;
  const opts = {
    handle,
    readable: true,
    writable: false,
    onread: {
      buffer,
      callback: (n: number, buf: Uint8Array) => {
        onChunk(Buffer.from(buf.buffer, buf.byteOffset, n));
        return true;
      },
    },
  };
  const sock = new net.Socket(opts as unknown as net.SocketConstructorOpts);
  original._handle = null;
  original.destroy();
  sock.on('error', () => undefined);
  return sock;
}
