/**
 * The recording's clock: Node owns time, not FFmpeg. Video tick k is due at t0 + k / fps and
 * audio block b at t0 + 20 ms × b; every one that is due runs, in time order, so the number of
 * frames and blocks always equals wall time — which is what keeps lip sync and the file's
 * duration right whatever the pipeline does.
 *
 * After an event-loop stall several are due at once: with a short backlog it yields between them
 * (setImmediate) so decoder output that arrived meanwhile is read and catch-up ticks carry new
 * frames, not repeats; far behind (a starved loop), it catches up at once so ticks stay on wall
 * time instead of trailing it. Time is injected (PacerClock), so tests run it without sleeping.
 */
export interface PacerClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(h: unknown): void;
  setImmediate(fn: () => void): unknown;
  clearImmediate(h: unknown): void;
}

export const realPacerClock: PacerClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  setImmediate: (fn) => setImmediate(fn),
  clearImmediate: (h) => clearImmediate(h as NodeJS.Immediate),
};

export interface PacerHooks {
  video(tick: number): void;
  audio(block: number): void;
  /** After each run of due ticks (the place to look at backlogs). */
  checked(): void;
}

export const AUDIO_BLOCK_MS = 20;

export class Pacer {
  #fps: number;
  #clock: PacerClock;
  #hooks: PacerHooks;
  #t0 = 0;
  #ticks = 0;
  #blocks = 0;
  #timer: unknown = null;
  #immediate: unknown = null;
  #running = false;

  constructor(o: { fps: number; hooks: PacerHooks; clock?: PacerClock }) {
    this.#fps = o.fps;
    this.#hooks = o.hooks;
    this.#clock = o.clock ?? realPacerClock;
  }

  /** Whether the clock has started (ticks count from its t0). */
  get started(): boolean {
    return this.#running || this.#ticks > 0;
  }

  /** Clock time of tick 0. */
  get t0(): number {
    return this.#t0;
  }

  /** Video ticks run so far (the next tick's number). */
  get ticks(): number {
    return this.#ticks;
  }

  /**
   * The first tick that can show something arriving now: the next tick to run, or, while the
   * clock catches up on ticks already past (a continuing worker, a stalled loop), the next tick
   * by wall time — so what arrives now is not shown in the past.
   */
  nextTickAt(now = this.#clock.now()): number {
    if (!this.#running && this.#ticks === 0) return 0;
    return Math.max(this.#ticks, Math.floor(((now - this.#t0) * this.#fps) / 1000) + 1);
  }

  get blocks(): number {
    return this.#blocks;
  }

  /** Start with tick 0 at `t0` (in the clock's time; earlier = the missed ticks are made now). */
  start(t0 = this.#clock.now()): void {
    this.#t0 = t0;
    this.#running = true;
    this.#schedule();
  }

  /** Stop the timers; run what is due by `now` first when `catchUpTo` is given. */
  stop(catchUpTo?: number): void {
    this.#running = false;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    if (this.#immediate !== null) this.#clock.clearImmediate(this.#immediate);
    this.#timer = this.#immediate = null;
    if (catchUpTo !== undefined) this.#catchUp(catchUpTo, false);
  }

  #due(): number {
    return Math.min(this.#t0 + (this.#ticks * 1000) / this.#fps, this.#t0 + this.#blocks * AUDIO_BLOCK_MS);
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#timer = this.#clock.setTimeout(() => this.#run(), Math.max(0, this.#due() - this.#clock.now()));
  }

  #run(): void {
    this.#timer = this.#immediate = null;
    if (!this.#running) return;
    if (this.#catchUp(this.#clock.now(), true)) this.#schedule();
    else this.#immediate = this.#clock.setImmediate(() => this.#run());
  }

  /** Runs everything due by `now`; false when it yielded with more due. */
  #catchUp(now: number, yieldBetween: boolean): boolean {
    while (this.#due() <= now) {
      const v = this.#t0 + (this.#ticks * 1000) / this.#fps;
      const a = this.#t0 + this.#blocks * AUDIO_BLOCK_MS;
      if (a <= v) this.#hooks.audio(this.#blocks++);
      else this.#hooks.video(this.#ticks++);
      if (yieldBetween && this.#running && this.#due() <= now && this.#clock.now() - this.#due() < 100) {
        this.#hooks.checked();
        return false;
      }
    }
    this.#hooks.checked();
    return true;
  }
}
