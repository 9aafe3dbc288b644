/**
 * How far the epoch in charge is behind the clock, and what that means. Pure: the caller gives
 * the time and what the schedule owes at each look (after every run of due ticks).
 *
 * - **Hung**: it owes more than the stall timeout's worth of ticks and has put out nothing for
 *   the stall timeout. It is replaced (its owed ticks repeat the last picture).
 * - **Far behind**: it owes more than 2 × (stall timeout + 1 s) of ticks although it is still
 *   producing (CPU is so short that even shedding did not keep up). It is replaced too: a
 *   freeze, not a failure, and the file stays on wall time. Not while it is starting: a
 *   continuing worker feeds its first epoch the ticks it missed at once.
 * - **Behind**: owing more pictures than it normally does, counted as the wall time they span.
 *   An epoch that has not put out its first picture is starting, not short of CPU; owing its
 *   encoder's own delay (`depth`) is normal, and so is a steady backlog (the lowest owed in the
 *   last 10 s is the baseline) up to half a second of pictures more, and a backlog that shrinks
 *   fast enough to be gone within 3 s. Falling behind is owing more and more, or a standing
 *   backlog of seconds; the StrideController turns that into fewer distinct pictures.
 */
export interface LagLook {
  /** Ticks made by the clock that have not left yet. */
  owed: number;
  /** There is an epoch in charge (not dead). */
  owner: boolean;
  /** It has not put out its first picture yet. */
  starting: boolean;
  /** Ms since its last picture (or its start). */
  silentMs: number;
  /** Pictures it owed when its first picture came out (its encoder's own delay). */
  depth: number;
  /** Pictures it owes now (ticks fed to it for composing, not yet answered). */
  pictures?: number;
  /** One tick in `stride` is composed now (see StrideController). */
  stride?: number;
}

export class LagMonitor {
  #samples: { at: number; owed: number }[] = [];
  /** Every look of the last 1.5 s (see #draining). */
  #recent: { at: number; owed: number }[] = [];
  readonly stallTicks: number;
  readonly farBehindTicks: number;
  /**
   * What the last behind() counted before the draining rule: a backlog being worked off is not
   * a reason to shed more, nor is it caught up. The ladder steps back only when this is small
   * (day 11, 0.30 cores: "caught up" while draining 100 pictures, back to 30 a second, and
   * replaced as far behind 0.2–2.5 s later).
   */
  backlog = 0;

  constructor(private readonly o: { fps: number; stallTimeoutMs: number }) {
    this.stallTicks = Math.ceil((o.stallTimeoutMs * o.fps) / 1000);
    this.farBehindTicks = 2 * Math.ceil(((o.stallTimeoutMs + 1000) * o.fps) / 1000);
  }

  /** Whether the epoch in charge must be replaced, and why: hung, or far behind. */
  replace(l: LagLook): 'hung' | 'far behind' | null {
    if (!l.owner) return null;
    if (l.owed > this.stallTicks && l.silentMs > this.o.stallTimeoutMs) return 'hung';
    return l.owed > this.farBehindTicks && !l.starting ? 'far behind' : null;
  }

  /**
   * Ticks behind beyond the normal backlog (0 while starting or with no epoch in charge), or 0
   * while the backlog is being worked off (#draining). Counted in pictures owed, each worth
   * `stride` ticks of wall time: an encoder's own delay is pictures (x264's lookahead holds 10),
   * so at one tick in three it spans three times the ticks. Counted in ticks, as it was until
   * day 9, each step of the ladder looked like falling further behind and brought on the next
   * (measured in 0.45 cores: 15 pictures a second after a join, 10 two seconds later, and there
   * for the rest of the call).
   */
  behind(l: LagLook, now: number): number {
    const owed = l.pictures ?? l.owed;
    // The encoder's own delay is pictures (x264's lookahead, the pipes), at most a second of them.
    // What an epoch owed at its first picture beyond that is what its start left behind: in 0.30
    // cores a new layout's epoch came out owing 100–200 and, with that counted as its delay,
    // never looked behind until it was replaced as far behind (a freeze of 8 s: day 10).
    // A backlog that stands is the new normal only up to half a second of pictures beyond that
    // delay. More is queued work, seconds of it: it does not drain at a rate that is only just
    // enough, and a layout change inherits it (the old epoch must still make those pictures while
    // the new one starts). Measured in 0.40–0.45 cores (day 12): 60 pictures standing at 15 a
    // second (4 s of wall time), then a join took the owed ticks past the far-behind bound.
    const delay = Math.min(l.depth, this.o.fps);
    const baseline = Math.max(delay, Math.min(this.#floor(owed, now), delay + this.o.fps / 2));
    // Worked off fast enough to be gone within 3 s at the pace seen: not behind. Slower than
    // that, the shortage is still there.
    const shrink = this.#shrinking(owed, now);
    const draining = shrink > this.o.fps / 10 && (owed - baseline) <= 3 * shrink;
    this.backlog = 0;
    if (l.starting || !l.owner) return 0;
    // A steady backlog is normal only while it is far from the far-behind bound: past half of
    // it, what is owed beyond that half is behind however long it has stood. Measured in 0.30
    // cores (day 11): a backlog of ~100 pictures at 15 a second stood for 10 s, became the
    // baseline, the ladder stepped back to 30 ("caught up") and 2 s later the epoch owed 241
    // ticks and was replaced as far behind: a freeze.
    const excess = l.owed - this.farBehindTicks / 2;
    this.backlog = Math.max(0, (owed - baseline) * (l.stride ?? 1), excess);
    // Working a backlog off is not falling behind, unless what is still owed is that near the bound.
    return draining ? Math.max(0, excess) : this.backlog;
  }

  /**
   * How fast the backlog shrinks: the least owed a second ago less the least owed in the last
   * half second (pictures in about a second; 0 when it does not shrink). A backlog that a start or
   * a layout change left and that is being worked off is not a shortage; shedding for it costs
   * pictures for seconds (a step back waits 5 s).
   */
  #shrinking(owed: number, now: number): number {
    this.#recent.push({ at: now, owed });
    while (this.#recent.length && now - this.#recent[0].at > 1500) this.#recent.shift();
    let before = Infinity, lately = Infinity;
    for (const r of this.#recent) {
      if (now - r.at >= 1000) before = Math.min(before, r.owed);
      else if (now - r.at <= 500) lately = Math.min(lately, r.owed);
    }
    return before === Infinity ? 0 : Math.max(0, before - lately);
  }

  /** The lowest backlog (pictures) of the last 10 s (sampled once a second), including `owed` now. */
  #floor(owed: number, now: number): number {
    const last = this.#samples[this.#samples.length - 1];
    if (!last || now - last.at >= 1000) this.#samples.push({ at: now, owed });
    else last.owed = Math.min(last.owed, owed);
    while (this.#samples.length && now - this.#samples[0].at > 10_000) this.#samples.shift();
    return Math.min(owed, ...this.#samples.map((s) => s.owed));
  }
}
