/**
 * Degrade rather than fail when CPU is short, one level at a time. The levels: every tick
 * composed, then one tick in each of `strides` on average (the recording's are 2, 2.25 and 3:
 * 30 fps → 15 → 13⅓ → 10 distinct pictures a second; 2.25 composes 4 ticks in every 9, 2 or 3
 * apart; LoadGovernor STRIDES says why not 12);
 * with `economy`, x264's economy analysis (ECONOMY_X264 in compositor/ffmpegArgs.ts), then, with
 * `smallTiles`, every tile at half its size in its cell (compositor/layout.ts `shrinkTiles`),
 * come in before the last stride step: 30, 15, 13⅓, 13⅓ + economy, 13⅓ + economy + small
 * tiles, 10 + economy + small tiles.
 * Economy and small tiles take a new epoch: x264's analysis and a graph's sizes are fixed for
 * its life. The middle step is there because 15 was measured just short of enough in 0.45 cores
 * and 10 is below what a recording there must keep (docs/workers.md, days 11 and 30).
 *
 * More than half a second of frames behind for a whole second (a start or a hiccup is not a
 * shortage): one level up, at most every `upAfterMs`; more than a second behind, twice as fast.
 * Less than a tenth of a second behind, with the recording settled (one epoch running: a layout
 * change in progress is two epochs' work, and the old one draining its backlog looks caught up
 * while the new one is not): one level down after a hold at the same level — `downAfterMs`, or
 * 4 × that from a level that changed how epochs start (economy on, small tiles on).
 *
 * A level that had to be taken again within a minute of leaving it was left too early: its hold
 * doubles (up to 2 minutes, 5 for the epoch-changing levels) and resets after a calm minute. Measured in 0.45 cores
 * (day 12): 5 s at 15 pictures a second, back to 30, behind again 3–4 s later with a backlog
 * that the next layout change took past the far-behind bound: a freeze. Each change of the
 * economy level also costs an epoch start, a keyframe from everyone, when CPU is short: it must
 * not flap either. Pure: time and the backlog come in with each call.
 */
/** One rung of the ladder: what an epoch composes and encodes at it. */
interface Level {
  /** Ticks per composed picture, on average. */
  stride: number;
  economy: boolean;
  smallTiles: boolean;
  /** Reaching it changes what an epoch is started with (economy, tiles): held longer. */
  epochChange: boolean;
}

export class StrideController {
  #level = 0;
  #changedAt = -Infinity;
  #behindSince: number | null = null;
  /** Per level: how long to stay before stepping down from it, and when it was last left. */
  #hold: number[] = [];
  #leftAt: number[] = [];

  /** The ladder, from full quality up. */
  readonly #levels: Level[];

  /** Set at the first update when the ladder starts above full quality (`startShort`). */
  #startPending = false;
  /** Until then (from the first update), only a large shortage climbs the ladder (`startGraceMs`). */
  #graceUntil: number | null = null;

  /**
   * `startShort`: the recording is known not to fit its process's CPU at full quality (admitted
   * as the process's only recording although its measured cost is above the budget, or continuing
   * one that was degraded): it starts at 13⅓ a second with economy — the level 0.45 cores settled
   * at — and steps back from there like from any level, instead of first falling seconds behind
   * at full rate while the ladder climbs (day 14).
   *
   * `startGraceMs`: from the first update for this long, only more than a second behind climbs
   * the ladder. A start leaves a backlog that a recording that fits works off in a few seconds;
   * two recordings started at once on two cores in a slow hour (the benchmark's two-at-once case,
   * day 15) left one 21 pictures behind 2 s in, and it then held 15 a second for 5 s: 13 % of its
   * pictures repeated, for a shortage that was gone a second later.
   */
  constructor(private readonly o: { fps: number; strides: number[]; economy?: boolean; smallTiles?: boolean; upAfterMs: number; downAfterMs: number; startShort?: boolean; startGraceMs?: number }) {
    // The cheaper rungs — economy, then small tiles — come before the last stride step (13⅓ a
    // second, then 10 with them) when there are two steps: economy costs x264 40 % and the
    // picture almost nothing (the same PSNR within 0.1 dB); half-size tiles cost the whole epoch
    // a fifth less on camera pictures; 13⅓ → 10 pictures a second saves less than either (the
    // decoders still decode every frame) and is below what a recording in 0.45 cores must keep.
    // In slow hours 0.45 cores held 10–11 a second with economy last (day 13), and 10 with
    // economy before small tiles (day 14).
    const steps = [1, ...o.strides];
    const k = steps.length > 2 ? steps.length - 1 : steps.length;
    const levels: Level[] = steps.slice(0, k).map((stride) => ({ stride, economy: false, smallTiles: false, epochChange: false }));
    let cheap = levels[k - 1];
    if (o.economy) levels.push((cheap = { ...cheap, economy: true, epochChange: true }));
    if (o.smallTiles) levels.push((cheap = { ...cheap, smallTiles: true, epochChange: true }));
    for (const stride of steps.slice(k)) levels.push({ ...cheap, stride, epochChange: false });
    this.#levels = levels;
    if (o.startShort) {
      const economical = levels.findIndex((l) => l.economy);
      this.#level = economical >= 0 ? economical : k - 1;
      this.#hold[this.#level] = this.#at.epochChange ? 4 * o.downAfterMs : o.downAfterMs;
      this.#startPending = true;
    }
  }

  get #at(): Level {
    return this.#levels[this.#level];
  }

  /** Ticks per composed picture now, on average (2.5: 2 and 3 in turn). */
  get stride(): number {
    return this.#at.stride;
  }

  /** Whether epochs now encode with x264's economy analysis. */
  get economy(): boolean {
    return this.#at.economy;
  }

  /** Whether epochs now compose every tile at half size (the last two levels). */
  get smallTiles(): boolean {
    return this.#at.smallTiles;
  }

  get distinctFps(): number {
    return this.o.fps / this.stride;
  }

  get #top(): number {
    return this.#levels.length - 1;
  }

  /**
   * Feeds how far behind real time the recording is (frames); returns the change made, if any.
   * `backlogFrames` (default: the same) is what it owes even while that is being worked off: a
   * step back needs it small, not just nothing new owed. `settled`: one epoch runs (no layout
   * change in progress); a step back needs that too. `inEffect`: the epoch making the pictures
   * was started at this level's economy and tiles. Until it is, the level has not been tried: the
   * next step up waits for more than two seconds behind (day 13: in 0.45 cores economy was
   * taken at 12 a second and, a second later, 10, before any epoch had started with it).
   */
  update(behindFrames: number, now: number, backlogFrames = behindFrames, settled = true, inEffect = true): 'up' | 'down' | null {
    if (this.#startPending) {
      this.#startPending = false;
      this.#changedAt = now;
    }
    this.#graceUntil ??= now + (this.o.startGraceMs ?? 0);
    const since = now - this.#changedAt;
    const untried = this.#at.epochChange && !inEffect;
    const behind = behindFrames > (untried ? 2 * this.o.fps : this.o.fps / 2);
    if (!behind) this.#behindSince = null;
    else this.#behindSince ??= now;
    // More than a second behind is a large shortage (a layout change's second epoch at full
    // rate in 0.45 cores: 65 frames behind at the first step, 124 two seconds later, replaced as
    // far behind at the economy level 8 s in; day 12): the ladder climbs twice as fast.
    const urgent = behindFrames > this.o.fps;
    const wait = urgent ? 0.5 : 1;
    const graced = !urgent && now < this.#graceUntil;
    if (behind && !graced && now - this.#behindSince! >= 1000 * wait && this.#level < this.#top && since > this.o.upAfterMs * wait) {
      const l = ++this.#level;
      this.#changedAt = now;
      // Back within a minute of leaving this level: CPU did not come back for long; stay twice
      // as long this time.
      const costly = this.#at.epochChange;
      const base = costly ? 4 * this.o.downAfterMs : this.o.downAfterMs;
      const max = costly ? 300_000 : 120_000;
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
   * Whether the clock composes tick `tick`, given whether anything new is there to show
   * (`fresh`: a frame for the next picture in any tile). The ticks of `composes` — but one that
   * has nothing new moves to the tick after it, as long as that is not itself one of them: the
   * same number of pictures, each shown a tick later, and the frames that arrive meanwhile make it
   * a new picture instead of a copy of the last. At 12 a second a copy was a second with 11, which
   * a recording in 0.45 cores must not have. Traced there at a join (day 29): the new epoch's
   * start starved the worker, its clock then made four ticks within a millisecond to catch up,
   * and the second composed one of them had no frame yet in any tile (those captured for it were
   * still on their way): the new epoch's second picture was its first again. Ticks are made in
   * order, once each.
   */
  compose(tick: number, fresh: boolean): boolean {
    this.#owed ||= this.composes(tick);
    if (!this.#owed) return false;
    if (!fresh && this.stride > 1 && !this.composes(tick + 1)) {
      this.deferred++;
      return false;
    }
    this.#owed = false;
    return true;
  }

  /** A composed tick moved to the next because nothing new was there (see `compose`). */
  deferred = 0;
  #owed = false;

  /**
   * Whether tick `tick` is composed (the others repeat the last composite): the ticks where
   * tick / stride passes a whole number. Exact for the strides used (1, 2, 2.25, 2.5, 3: a
   * multiple divides to an exact integer, anything else lies at least 1/9 from one).
   */
  composes(tick: number): boolean {
    const s = this.stride;
    return s === 1 || Math.floor(tick / s) > Math.floor((tick - 1) / s);
  }
}
