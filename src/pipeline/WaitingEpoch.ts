import type { EpochTile } from './EpochEncoder';

/** How long a new direct epoch waits for keyframes before it starts with cards for the rest. */
export const KEYFRAME_WAIT_MS = 1000;
/**
 * How long a new epoch of decoded tiles (TESSERA_DIRECT_DECODE=false) waits for its sources'
 * first decoded pictures. Longer than for keyframes: a decoder process starts beside the new
 * epoch and the name cards, and on this 2-core machine several started at once gave their first
 * pictures 0.6–1.6 s later idle (day 23), later under load. While it waits the current epoch
 * goes on; only the newcomer's tile waits longer to appear.
 */
export const DECODER_WAIT_MS = 3000;

/** A new epoch's process: it can be killed, and it takes VP8/H.264 itself or decoded tiles. */
export interface WaitingHandle {
  readonly direct: unknown;
  kill(): void;
}

/** What a wait came to, told to `begin`. */
export interface WaitOutcome {
  /** Indices of the tiles found ready at some poll. */
  readyOnce: ReadonlySet<number>;
  /** How long it waited (ms, by the polls' clock). */
  waitedMs: number;
  /** Tiles not ready at the end (it waited out its limit for them). */
  notReady: number;
}

interface Waiting<H> {
  handle: H;
  tiles: EpochTile[];
  since: number;
  begin: (outcome: WaitOutcome) => void;
  /** Indices of the tiles found ready at some poll of this wait. */
  readyOnce: Set<number>;
}

/**
 * Make-before-break: a new epoch for a layout change, started but not yet fed, while the current
 * epoch goes on, until every tile has something to show — a keyframe to start from for an epoch
 * that decodes VP8/H.264 itself, a first decoded picture for one of decoded tiles — or it waited
 * KEYFRAME_WAIT_MS / DECODER_WAIT_MS. At most one waits: a later layout change kills and replaces
 * it. Pure: the caller gives the time and says which tiles are ready.
 *
 * It remembers which tiles were ready at some poll and tells both `ready` and `begin`, so the
 * caller can hold a tile to what made it ready once (a direct tile: a group of frames short
 * enough to replay) rather than need every tile ready at the same poll. While shedding, a direct
 * tile is ready only for its first 10 frames after a keyframe (a third of a second at 30 fps);
 * needing them all at once, tiles whose keyframes came at different times took turns being
 * ready and the epoch could wait out its whole second (day 34).
 */
export class WaitingEpoch<H extends WaitingHandle> {
  #w: Waiting<H> | null = null;

  /** The epoch waiting, if any. */
  get handle(): H | null {
    return this.#w?.handle ?? null;
  }

  /** Its tiles (none when nothing waits). */
  get tiles(): readonly EpochTile[] {
    return this.#w?.tiles ?? [];
  }

  /**
   * Puts `handle` in wait (killing one already waiting); `begin` feeds it, once ready, and is
   * told which tiles were ready at some poll, and how long it waited.
   */
  wait(handle: H, tiles: EpochTile[], now: number, begin: (outcome: WaitOutcome) => void): void {
    this.kill();
    this.#w = { handle, tiles, since: now, begin, readyOnce: new Set() };
  }

  /**
   * Begins the waiting epoch if every tile is `ready` or it waited long enough; true if it began.
   * Call it as things change (each tick, a keyframe, a decoded picture). `ready` is asked about
   * every tile each time, not just up to the first that is not ready, so the caller can act on
   * each (ask its sender for a keyframe again); `wasReady` says it was ready at an earlier poll.
   */
  poll(now: number, ready: (tile: EpochTile, direct: boolean, wasReady: boolean) => boolean): boolean {
    const w = this.#w;
    if (!w) return false;
    const direct = !!w.handle.direct;
    let waiting = 0;
    w.tiles.forEach((t, i) => {
      if (ready(t, direct, w.readyOnce.has(i))) w.readyOnce.add(i);
      else waiting++;
    });
    if (waiting > 0 && now - w.since < (direct ? KEYFRAME_WAIT_MS : DECODER_WAIT_MS)) return false;
    this.#w = null;
    w.begin({ readyOnce: w.readyOnce, waitedMs: now - w.since, notReady: waiting });
    return true;
  }

  /** The waiting epoch `handle` died: forgets it; false if it was not the one waiting. */
  died(handle: H): boolean {
    if (this.#w?.handle !== handle) return false;
    this.#w = null;
    return true;
  }

  /** Kills the waiting epoch, if any (a newer layout, the stop). */
  kill(): void {
    this.#w?.handle.kill();
    this.#w = null;
  }
}
