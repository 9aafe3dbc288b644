import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import type { Socket } from 'node:net';
import { backlog, FromWorker, MessageReader, send, type Message } from './protocol';
import type { Logger } from '../logger';

/**
 * How to run the worker's entry: compiled JavaScript as it is, TypeScript (npm start, the tests)
 * through tsx's loader. Either way the child is a plain `node` with no shell in between.
 */
function workerCommand(): string[] {
  // Extra Node options for workers only (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile
  // one, or `--max-old-space-size=256`), which NODE_OPTIONS would also apply to the server.
  // A young generation of 1 MB per semi-space instead of V8's 16: the worker's garbage is small
  // and short-lived (frames are pooled), so scavenges stay ~1 ms and cost no more CPU in total
  // (57 → 68 ms over 12 s, 4 people), while the worker resides in ~10 MB less (docs/workers.md).
  const extra = ['--max-semi-space-size=1', ...(process.env.TESSERA_WORKER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)];
  // The benchmark runs the compiled worker (as the image does) from a TypeScript server.
  const entry = process.env.TESSERA_WORKER_ENTRY;
  if (entry?.endsWith('.js')) return [...extra, entry];
  if (__filename.endsWith('.js')) return [...extra, path.join(__dirname, 'main.js')];
  return [...extra, '--import', require.resolve('tsx'), path.join(__dirname, 'main.ts')];
}

/**
 * CPU priority of a recording's worker and of the FFmpegs it starts (they inherit it), as
 * TESSERA_WORKER_NICE (config `workerNice`, default 5): how much lower than the server. The
 * meeting comes first: the server's one event loop carries every room's media, and when CPU is
 * short a recording sheds pictures (StrideController) while a starved event loop drops people.
 * Renders and name cards run at nice 10. Measured on day 10 (docs/workers.md): it did not end
 * the server's stalls in e2e-browser-loaded by itself (the browsers' own nice −8 threads were
 * the larger part), and over three CI rehearsals the suite failed less often with it than
 * without it.
 */
interface HandleEvents {
  message: [Message];
  exit: [{ code: number | null; signal: NodeJS.Signals | null }];
  /** The worker finished its recording and waits for another (it said `Ready` again). */
  idle: [];
}

/** One worker process and its socket (fd 3). `ready` resolves once its modules are loaded. */
export class WorkerHandle extends EventEmitter<HandleEvents> {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  /** Done with its recording and not yet taken again. */
  idle = false;
  /** Recordings it has run (1 while running its first). */
  uses = 0;
  #sock: Socket;
  #exited = false;

  constructor(logger: Logger, nice = 0) {
    super();
    this.child = spawn(process.execPath, workerCommand(), { stdio: ['ignore', 'inherit', 'inherit', 'pipe'] });
    try {
      if (this.child.pid && nice > 0) os.setPriority(this.child.pid, Math.min(19, os.getPriority() + nice));
    } catch {
      // Not permitted here: it runs at the server's priority.
    }
    this.#sock = this.child.stdio[3] as Socket;
    const reader = new MessageReader();
    let onReady: () => void = () => undefined;
    let onFail: (e: Error) => void = () => undefined;
    this.ready = new Promise<void>((res, rej) => ((onReady = res), (onFail = rej)));
    this.ready.catch(() => undefined);
    let readySeen = false;
    this.#sock.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, (m) => {
          if (m.type !== FromWorker.Ready) this.emit('message', m);
          else if (!readySeen) (readySeen = true), onReady();
          else (this.idle = true), this.emit('idle');
        });
      } catch (err) {
        logger.error({ err: (err as Error).message, pid: this.child.pid }, 'worker sent a malformed message; killing it');
        this.kill();
      }
    });
    this.#sock.on('error', () => undefined);
    this.child.on('error', (err) => {
      logger.error({ err: err.message }, 'worker failed to start');
      onFail(err);
    });
    this.child.on('exit', (code, signal) => {
      this.#exited = true;
      onFail(new Error(`worker exited before it was ready (code ${code}, signal ${signal})`));
      this.#sock.destroy();
      this.emit('exit', { code, signal });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get exited(): boolean {
    return this.#exited;
  }

  /** Bytes waiting to go to the worker: how far behind it is in reading. */
  get backlog(): number {
    return backlog(this.#sock);
  }

  send(type: number, header: unknown, payload?: Buffer | null, lazyMs = 0): void {
    if (!this.#exited) send(this.#sock, type, header, payload, lazyMs);
  }

  /** A spare must not keep its parent alive; a worker with a recording must. */
  setRef(on: boolean): void {
    if (on) (this.child.ref(), this.#sock.ref());
    else (this.child.unref(), this.#sock.unref());
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.#exited) this.child.kill(signal);
  }
}

/** How long after a take() its spare is made again (see WorkerPool.#fillSoon). */
export const REFILL_DELAY_MS = 2000;

/**
 * Warm spare workers (`spares`, config `workerSpares`, default 1): a process with its modules
 * loaded waits for a recording, so starting one (or replacing a worker that died) costs no process
 * start (~0.5 s of loading under tsx, more on a busy node). One covers recordings that start one
 * at a time; a burst of starts beyond the spares (and the workers back from recordings) waits for
 * process starts.
 * Spares are made from the first take() on, or at once by warm() (the server calls it at start);
 * the one a take() used is made again 2 s later.
 *
 * A worker whose recording ended well comes back (release()) and is taken before a new spare:
 * it has run the per-frame code before, so V8 has it optimised and libopus compiled, which a new
 * process pays again on every recording (~0.4 CPU-s, and a slower first second). At most one
 * more than `spares` wait; beyond that the one at the back of the line (a new spare, if one
 * waits) is ended.
 */
export class WorkerPool {
  #spares: WorkerHandle[] = [];
  #size: number;
  #log: Logger;
  #closed = false;
  #fillTimer: NodeJS.Timeout | null = null;

  readonly #nice: number;

  constructor(opts: { logger: Logger; spares?: number; nice?: number }) {
    this.#log = opts.logger.child({ component: 'workers' });
    this.#size = opts.spares ?? 1;
    this.#nice = opts.nice ?? 0;
  }

  /** Process ids of the spares waiting now (for the benchmark's memory accounting). */
  get sparePids(): number[] {
    return this.#spares.map((w) => w.pid).filter((p): p is number => p !== undefined);
  }

  /** Start the spares now instead of at the first take(). */
  warm(): void {
    this.#fill();
  }

  /** Resolves once every spare waiting now has its modules loaded (one that dies is skipped). */
  async whenReady(): Promise<void> {
    await Promise.allSettled(this.#spares.map((w) => w.ready));
  }

  /** A worker that is ready for `Init` (a spare when there is one). */
  async take(): Promise<WorkerHandle> {
    if (this.#closed) throw new Error('worker pool closed');
    const w = this.#spares.shift() ?? this.#spawn();
    w.idle = false;
    w.uses++;
    this.#fillSoon();
    w.setRef(true);
    await w.ready;
    return w;
  }

  /**
   * A worker that said it is idle again (see WorkerHandle's `idle`): it waits first in line. The
   * caller has taken its own listeners off it.
   */
  release(w: WorkerHandle): void {
    if (this.#closed || w.exited || !w.idle) return w.kill();
    w.setRef(false);
    this.#spares.unshift(w);
    while (this.#spares.length > this.#size + 1) this.#spares.pop()!.kill();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#fillTimer) clearTimeout(this.#fillTimer);
    for (const w of this.#spares) w.kill();
    this.#spares = [];
  }

  #spawn(): WorkerHandle {
    const w = new WorkerHandle(this.#log, this.#nice);
    w.once('exit', (e) => {
      const i = this.#spares.indexOf(w);
      if (i < 0) return;
      // A spare that dies before use is dropped; the next take() makes another.
      this.#spares.splice(i, 1);
      this.#log.warn({ ...e, pid: w.pid }, 'spare worker exited');
    });
    return w;
  }

  /**
   * The spare a take() used is made again REFILL_DELAY_MS later, not at once: a worker's start
   * (~0.1–0.2 CPU-s) then does not compete with the start of the recording that took the spare,
   * its most expensive second. In a 0.45-core quota that second is where pictures were short
   * (docs/workers.md, day 16). A take() in between that finds no spare starts a worker itself.
   */
  #fillSoon(): void {
    if (this.#fillTimer || this.#spares.length >= this.#size) return;
    this.#fillTimer = setTimeout(() => {
      this.#fillTimer = null;
      this.#fill();
    }, REFILL_DELAY_MS);
    this.#fillTimer.unref();
  }

  #fill(): void {
    while (!this.#closed && this.#spares.length < this.#size) {
      const w = this.#spawn();
      w.setRef(false);
      this.#spares.push(w);
    }
  }
}
