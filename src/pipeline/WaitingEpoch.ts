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

interface Waiting<H> {
  handle: H;
  tiles: EpochTile[];
  since: number;
  begin: () => void;
}

/**
 * Make-before-break: a new epoch for a layout change, started but not yet fed, while the current
 * epoch goes on, until every tile has something to show — a keyframe to start from for an epoch
 * that decodes VP8/H.264 itself, a first decoded picture for one of decoded tiles — or it waited
 * KEYFRAME_WAIT_MS / DECODER_WAIT_MS. At most one waits: a later layout change kills and replaces
 * it. Pure: the caller gives the time and says which tiles are ready.
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

  /** Puts `handle` in wait (killing one already waiting); `begin` feeds it, once ready. */
  wait(handle: H, tiles: EpochTile[], now: number, begin: () => void): void {
    this.kill();
    this.#w = { handle, tiles, since: now, begin };
  }

  /**
   * Begins the waiting epoch if every tile is `ready` or it waited long enough; true if it began.
   * Call it as things change (each tick, a keyframe, a decoded picture). `ready` is asked about
   * every tile each time, not just up to the first that is not ready, so the caller can act on
   * each (ask its sender for a keyframe again).
   */
  poll(now: number, ready: (tile: EpochTile, direct: boolean) => boolean): boolean {
    const w = this.#w;
    if (!w) return false;
    const direct = !!w.handle.direct;
    const waiting = w.tiles.filter((t) => !ready(t, direct)).length;
    if (waiting > 0 && now - w.since < (direct ? KEYFRAME_WAIT_MS : DECODER_WAIT_MS)) return false;
    this.#w = null;
    w.begin();
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
