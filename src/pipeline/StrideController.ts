/**
 * Degrade rather than fail when CPU is short: how many ticks per composed one (`stride`). More
 * than half a second of frames behind for a whole second (a start or a hiccup is not a
 * shortage), one step up, at most every `upAfterMs`; back one step after `downAfterMs` with less
 * than a tenth of a second behind. At most `maxStride` (30 fps →
 * 15 distinct pictures a second). Pure: time and the backlog come in with each call.
 */
export class StrideController {
  #stride = 1;
  #changedAt = -Infinity;
  #behindSince: number | null = null;

  constructor(private readonly o: { fps: number; maxStride: number; upAfterMs: number; downAfterMs: number } ) {}

  get stride(): number {
    return this.#stride;
  }

  get distinctFps(): number {
    return this.o.fps / this.#stride;
  }

  /** Feeds the current backlog (frames behind real time); returns the change made, if any. */
  update(behindFrames: number, now: number): 'up' | 'down' | null {
    const since = now - this.#changedAt;
    const behind = behindFrames > this.o.fps / 2;
    if (!behind) this.#behindSince = null;
    else this.#behindSince ??= now;
    if (behind && now - this.#behindSince! >= 1000 && this.#stride < this.o.maxStride && since > this.o.upAfterMs) {
      this.#stride++;
      this.#changedAt = now;
      return 'up';
    }
    if (behindFrames < this.o.fps / 10 && this.#stride > 1 && since > this.o.downAfterMs) {
      this.#stride--;
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
    return this.#stride === 1 || tick % this.#stride === 0;
  }
}
