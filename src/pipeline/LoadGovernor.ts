import { LagMonitor, type LagLook } from './LagMonitor';
import { StrideController } from './StrideController';
import type { Logger } from '../logger';

/**
 * The ladder's strides: 30 → 15 → 13⅓ → 10 distinct pictures a second at 30 fps (see
 * StrideController). The middle step is what a 4-person recording in 0.45 cores runs at, and it
 * must keep at least 12 in every second. At exactly 12 (a stride of 2.5, days 11–29) one picture
 * lost at a join or a leave — an epoch's start starving the worker, a picture composed before its
 * frames arrived — left a second with 11: in 1 of 30 runs by hand (days 29–30) and 2 of 4 CI-like
 * runs on day 29. 13⅓ (4 pictures in every 9 ticks) puts 13 or 14 in every second, so one lost
 * picture still leaves 12; 0.45 cores kept up at it in every run measured (day 30).
 */
const STRIDES = [2, 2.25, 3];

/** How the recording stands at a check: the epoch in charge (see LagLook) and the layout change. */
export interface LoadLook extends Omit<LagLook, 'stride'> {
  /**
   * No layout change in progress (one epoch running, none waiting to start). Not a calm moment
   * to step back otherwise: the old epoch drains its backlog and looks caught up while the new
   * one works.
   */
  settled: boolean;
  /** The epoch in charge was started with the level's economy and tile size (or there is none). */
  inEffect: (level: { economy: boolean; smallTiles: boolean }) => boolean;
}

export interface LoadDecision {
  /** Replace the epoch in charge, and why. Decided once per epoch (its exit comes later). */
  replace: 'hung' | 'far behind' | null;
  /**
   * Start a new epoch now: the ladder stepped back out of a level that only a new epoch applies
   * (economy, small tiles), so CPU is back.
   */
  relayout: boolean;
}

export interface LoadGovernorOptions {
  fps: number;
  stallTimeoutMs: number;
  /** Whether the ladder has its economy level (x264's economy analysis allowed by the settings). */
  economy: boolean;
  smallTiles: boolean;
  /** Start degraded (see StrideController). */
  startShort?: boolean;
  startGraceMs: number;
  logger: Logger;
}

/**
 * What a recording does about being short of CPU, after each run of the clock's due ticks: an
 * epoch in charge that is hung or far behind is replaced (its ticks repeat the last picture); one
 * that is falling behind but producing is starved, not hung, and the recording sheds work one
 * level at a time (StrideController) and stays on wall time. See LagMonitor for what "behind"
 * means. Pure apart from its log: the caller gives the time and the look.
 */
export class LoadGovernor<E extends object> {
  readonly lag: LagMonitor;
  readonly strides: StrideController;
  /** Frames behind real time at the last check (LagMonitor.behind). */
  behind = 0;
  /** Epochs decided to be replaced, whose exit has not been seen yet. */
  #replaced = new WeakSet<E>();
  /**
   * Of those, the ones replaced for being far behind: producing, only short of CPU. Their exits
   * are restarts but not deaths: three deaths in a minute end the worker, and counting these
   * (measured in 0.30 cores: hung at the start, then far behind twice) replaced a starved
   * worker with a new one that had to start over inside the same quota.
   */
  #slow = new WeakSet<E>();
  #loggedAt = -Infinity;
  #log: Logger;

  constructor(o: LoadGovernorOptions) {
    this.#log = o.logger;
    this.lag = new LagMonitor({ fps: o.fps, stallTimeoutMs: o.stallTimeoutMs });
    this.strides = new StrideController({ fps: o.fps, strides: STRIDES, economy: o.economy, smallTiles: o.smallTiles, upAfterMs: 2000, downAfterMs: 5000, startShort: o.startShort, startGraceMs: o.startGraceMs });
  }

  /** `owner`: the epoch in charge of the next picture, if any; `trace`: more for the once-a-second log line. */
  check(owner: E | undefined, look: LoadLook, now: number, trace: object = {}): LoadDecision {
    const s = this.strides;
    const lagLook: LagLook = { ...look, stride: s.stride };
    const replace = owner && !this.#replaced.has(owner) ? this.lag.replace(lagLook) : null;
    if (owner && replace) {
      this.#log.warn({ lagTicks: look.owed, silentMs: Math.round(look.silentMs), why: replace }, 'compositor stalled or far behind; replacing it');
      this.#replaced.add(owner);
      if (replace === 'far behind') this.#slow.add(owner);
    }
    const behind = this.lag.behind(lagLook, now);
    this.behind = behind;
    if (now - this.#loggedAt >= 1000) {
      this.#loggedAt = now;
      this.#log.trace({ owed: look.owed, owner: look.owner, starting: look.starting, silentMs: Math.round(look.silentMs), depth: look.depth, pictures: look.pictures, stride: s.stride, behind: Math.round(behind), backlog: Math.round(this.lag.backlog), ...trace }, 'lag');
    }
    const economy = s.economy;
    const smallTiles = s.smallTiles;
    const change = s.update(behind, now, this.lag.backlog, look.settled, look.inEffect({ economy, smallTiles }));
    if (!change) return { replace, relayout: false };
    const what =
      s.smallTiles !== smallTiles ? `${smallTiles ? 'whole' : 'half-size'} tiles`
      : s.economy !== economy ? `x264 economy analysis ${economy ? 'off' : 'on'}`
      : `${change === 'up' ? 'fewer' : 'more'} distinct pictures`;
    this.#log.warn({ behindFrames: Math.round(behind), distinctFps: s.distinctFps, economy: s.economy, smallTiles: s.smallTiles, holdMs: s.holdMs }, `${change === 'up' ? 'behind real time' : 'caught up'}: ${what}`);
    // x264's analysis is fixed for an encoder's life, and a graph's tile sizes for its: the
    // economy and small-tiles levels take effect with the next epoch. Into them, that is the
    // next one started anyway (a layout change, a replacement): starting one just for it, when
    // CPU is short, costs a process start and a keyframe round while two epochs decode, and
    // measured in 0.25 cores it left the recording seconds behind and replaced
    // (docs/workers.md, day 7). Out of them, CPU is back: a new epoch now.
    return { replace, relayout: (economy && !s.economy) || (smallTiles && !s.smallTiles) };
  }

  /**
   * Whether an epoch's unexpected exit counts as a death (three in a minute end the worker): not
   * when it was replaced here for being far behind.
   */
  countsAsDeath(epoch: E): boolean {
    return !this.#slow.has(epoch);
  }
}
