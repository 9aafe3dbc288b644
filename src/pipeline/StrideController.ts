/**
 * Degrade rather than fail when CPU is short, one level at a time. The levels: every tick
 * composed, then one tick in each of `strides` on average (the recording's are 2, 2.5 and 3:
 * 30 fps → 15 → 12 → 10 distinct pictures a second; 2.5 composes ticks 2 and 3 apart in turn),
 * then, with `economy`, x264's economy analysis as well (ECONOMY_X264 in
 * compositor/ffmpegArgs.ts: a new epoch, as x264's analysis is fixed for an encoder's life).
 * The 12 step is there because 15 was measured just short of enough in 0.45 cores and 10 is
 * below what a recording there must keep (docs/workers.md, day 11).
 *
 * More than half a second of frames behind for a whole second (a start or a hiccup is not a
 * shortage): one level up, at most every `upAfterMs`; more than a second behind, twice as fast. Less than a tenth of a second behind, with
 * the recording settled (one epoch running: a layout change in progress is two epochs' work, and
 * the old one draining its backlog looks caught up while the new one is not): one level down
 * after a hold at the same level — `downAfterMs`, or 4 × that out of the economy level.
 *
 * A level that had to be taken again within a minute of leaving it was left too early: its hold
 * doubles (up to 2 minutes, 5 for economy) and resets after a calm minute. Measured in 0.45 cores
 * (day 12): 5 s at 15 pictures a second, back to 30, behind again 3–4 s later with a backlog
 * that the next layout change took past the far-behind bound: a freeze. Each change of the
 * economy level also costs an epoch start, a keyframe from everyone, when CPU is short: it must
 * not flap either. Pure: time and the backlog come in with each call.
 */
export class StrideController {
  #level = 0;
  #changedAt = -Infinity;
  #behindSince: number | null = null;
  /** Per level: how long to stay before stepping down from it, and when it was last left. */
  #hold: number[] = [];
  #leftAt: number[] = [];

  /** Ticks per composed picture at each level past the first (ascending; each at least 1). */
  readonly #strides: number[];

  constructor(private readonly o: { fps: number; strides: number[]; economy?: boolean; upAfterMs: number; downAfterMs: number }) {
    this.#strides = [1, ...o.strides];
  }

  /** Ticks per composed picture now, on average (2.5: 2 and 3 in turn). */
  get stride(): number {
    return this.#strides[Math.min(this.#level, this.#strides.length - 1)];
  }

  /** Whether epochs now encode with x264's economy analysis (the level past the last stride). */
  get economy(): boolean {
    return this.#level >= this.#strides.length;
  }

  get distinctFps(): number {
    return this.o.fps / this.stride;
  }

  get #top(): number {
    return this.#strides.length - 1 + (this.o.economy ? 1 : 0);
  }

  /**
   * Feeds how far behind real time the recording is (frames); returns the change made, if any.
   * `backlogFrames` (default: the same) is what it owes even while that is being worked off: a
   * step back needs it small, not just nothing new owed. `settled`: one epoch runs (no layout
   * change in progress); a step back needs that too.
   */
  update(behindFrames: number, now: number, backlogFrames = behindFrames, settled = true): 'up' | 'down' | null {
    const since = now - this.#changedAt;
    const behind = behindFrames > this.o.fps / 2;
    if (!behind) this.#behindSince = null;
    else this.#behindSince ??= now;
    // More than a second behind is a large shortage (a layout change's second epoch at full
    // rate in 0.45 cores: 65 frames behind at the first step, 124 two seconds later, replaced as
    // far behind at the economy level 8 s in; day 12): the ladder climbs twice as fast.
    const urgent = behindFrames > this.o.fps;
    const wait = urgent ? 0.5 : 1;
    if (behind && now - this.#behindSince! >= 1000 * wait && this.#level < this.#top && since > this.o.upAfterMs * wait) {
      const l = ++this.#level;
      this.#changedAt = now;
      // Back within a minute of leaving this level: CPU did not come back for long; stay twice
      // as long this time.
      const base = this.economy ? 4 * this.o.downAfterMs : this.o.downAfterMs;
      const max = this.economy ? 300_000 : 120_000;
      this.#hold[l] = now - (this.#leftAt[l] ?? -Infinity) < 60_000 ? Math.min(2 * (this.#hold[l] ?? base), max) : base;
      return 'up';
    }
    const hold = this.#hold[this.#level] ?? this.o.downAfterMs;
    if (settled && behindFrames < this.o.fps / 10 && backlogFrames < this.o.fps / 10 && this.#level > 0 && since > hold) {
      this.#leftAt[this.#level] = now;
      this.#level--;
      this.#changedAt = now;
      return 'down';
    }
    return null;
  }

  /** How long the recording stays at the current level before it may step back (ms). */
  get holdMs(): number {
    return this.#hold[this.#level] ?? this.o.downAfterMs;
  }

  /** How many of the ticks in [from, to) are composed at the current stride. */
  composedIn(from: number, to: number): number {
    let n = 0;
    for (let t = from; t < to; t++) if (this.composes(t)) n++;
    return n;
  }

  /**
   * Whether tick `tick` is composed (the others repeat the last composite): the ticks where
   * tick / stride passes a whole number. Exact for the strides used (1, 2, 2.5, 3: a multiple
   * divides to an exact integer, anything else lies at least 1/3 from one).
   */
  composes(tick: number): boolean {
    const s = this.stride;
    return s === 1 || Math.floor(tick / s) > Math.floor((tick - 1) / s);
  }
}
