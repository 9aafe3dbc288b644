/**
 * Degrade rather than fail when CPU is short, one level at a time. The levels: every tick
 * composed, then one tick in `stride` (up to `maxStride`: 30 fps → 15 → 10 distinct pictures a
 * second), then, with `economy`, x264's economy analysis as well (ECONOMY_X264 in
 * compositor/ffmpegArgs.ts: a new epoch, as x264's analysis is fixed for an encoder's life).
 *
 * More than half a second of frames behind for a whole second (a start or a hiccup is not a
 * shortage): one level up, at most every `upAfterMs`. Less than a tenth of a second behind: one
 * level down after `downAfterMs` at the same level, or 4 × that out of the economy level, doubled
 * each time it comes back within a minute (each change of it costs an epoch start, a keyframe
 * from everyone, when CPU is short: it must not flap). Pure: time and the backlog come in with
 * each call.
 */
export class StrideController {
  #level = 0;
  #changedAt = -Infinity;
  #behindSince: number | null = null;
  #economyHold = 0;
  #economyLeftAt = -Infinity;

  constructor(private readonly o: { fps: number; maxStride: number; economy?: boolean; upAfterMs: number; downAfterMs: number }) {}

  get stride(): number {
    return Math.min(this.#level + 1, this.o.maxStride);
  }

  /** Whether epochs now encode with x264's economy analysis (the level past the last stride). */
  get economy(): boolean {
    return this.#level >= this.o.maxStride;
  }

  get distinctFps(): number {
    return this.o.fps / this.stride;
  }

  get #top(): number {
    return this.o.maxStride - 1 + (this.o.economy ? 1 : 0);
  }

  /** Feeds the current backlog (frames behind real time); returns the change made, if any. */
  update(behindFrames: number, now: number): 'up' | 'down' | null {
    const since = now - this.#changedAt;
    const behind = behindFrames > this.o.fps / 2;
    if (!behind) this.#behindSince = null;
    else this.#behindSince ??= now;
    if (behind && now - this.#behindSince! >= 1000 && this.#level < this.#top && since > this.o.upAfterMs) {
      this.#level++;
      this.#changedAt = now;
      // Back into economy within a minute of leaving it: CPU did not come back for long; stay
      // twice as long this time (up to 5 minutes).
      if (this.economy) this.#economyHold = now - this.#economyLeftAt < 60_000 ? Math.min(2 * this.#economyHold, 300_000) : 4 * this.o.downAfterMs;
      return 'up';
    }
    const downAfter = this.economy ? this.#economyHold : this.o.downAfterMs;
    if (behindFrames < this.o.fps / 10 && this.#level > 0 && since > downAfter) {
      if (this.economy) this.#economyLeftAt = now;
      this.#level--;
      this.#changedAt = now;
      return 'down';
    }
    return null;
  }

  /** How many of the ticks in [from, to) are composed at the current stride. */
  composedIn(from: number, to: number): number {
    let n = 0;
    for (let t = from; t < to; t++) if (this.composes(t)) n++;
    return n;
  }

  /** Whether tick `tick` is composed (the others repeat the last composite). */
  composes(tick: number): boolean {
    return this.stride === 1 || tick % this.stride === 0;
  }
}
