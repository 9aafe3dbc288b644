/**
 * Feeding an epoch that decodes the participants' VP8 itself ("direct" epochs; see
 * docs/workers.md "Decoding inside the epoch"). Pure: it decides what each tile's input gets
 * and with which timestamp; the caller writes it (IVF to the epoch's pipe) and owns the clock.
 *
 * The rules, each measured with FFmpeg 4.1 and 5.1:
 * - Timestamps are ticks in units of 1 / SUBTICKS: a frame is stamped with the tick it is first
 *   shown at (the pacer's next tick when it arrives), later frames of the same tick one unit
 *   later. The graph ends in `fps=<rate>:round=down`, so output picture k of an epoch fed from
 *   tick F is the composite as it stands at the end of tick F + k: the schedule's tick
 *   bookkeeping (EpochSchedule) is the same as for raw tiles.
 * - FFmpeg's frame sync waits for every input: an input given nothing stalls the whole picture.
 *   So a tile with no live video (quiet longer than the video timeout, departed, the "waiting"
 *   tile, or not yet in step) gets its name card as a VP8 keyframe at every tick.
 * - A keyframe resets VP8's decoder, so a card can replace a participant's video at any tick;
 *   but their next inter frame would decode against the card as garbage (no error). After a card
 *   a tile takes its source again only from a keyframe.
 * - A new epoch's decoders start empty: each tile starts with its source's frames since the last
 *   keyframe (GopCache), or with its card until a keyframe comes.
 */

export const SUBTICKS = 16;

/** Writes one VP8 frame to tile `tile`'s input with IVF timestamp `pts` (in ticks / SUBTICKS). */
export type DirectWrite = (tile: number, frame: Buffer, pts: number) => void;

interface TileInput {
  /** Its decoder has the source's stream from a keyframe on: the source's frames can follow. */
  synced: boolean;
  lastPts: number;
}

export class DirectFeed {
  #tiles: TileInput[];
  #write: DirectWrite;
  /** The last tick fed (-1 before the first). */
  lastTick = -1;
  ended = false;

  constructor(tiles: number, write: DirectWrite) {
    this.#tiles = Array.from({ length: tiles }, () => ({ synced: false, lastPts: -1 }));
    this.#write = write;
  }

  #put(i: number, frame: Buffer, tick: number): void {
    const t = this.#tiles[i];
    t.lastPts = Math.max(t.lastPts + 1, tick * SUBTICKS);
    this.#write(i, frame, t.lastPts);
  }

  /** Tile `i`'s decoder lost the stream (it reported an error): its card until a keyframe. */
  desync(i: number): void {
    this.#tiles[i].synced = false;
  }

  synced(i: number): boolean {
    return this.#tiles[i].synced;
  }

  /**
   * The epoch is fed from `tick`: each tile starts from its source's frames since their last
   * keyframe (`gop[i]`, keyframe first), or from its card.
   */
  begin(tick: number, gop: (Buffer[] | null)[], card: (i: number) => Buffer): void {
    this.#tiles.forEach((t, i) => {
      const frames = gop[i];
      if (frames && frames.length > 0) {
        for (const f of frames) this.#put(i, f, tick);
        t.synced = true;
      } else {
        this.#put(i, card(i), tick);
        t.synced = false;
      }
    });
  }

  /**
   * A frame of tile `i`'s source arrived; `nextTick` is the first tick that can show it.
   * Returns false when it was dropped because the tile waits for a keyframe.
   */
  frame(i: number, frame: Buffer, keyframe: boolean, nextTick: number): boolean {
    const t = this.#tiles[i];
    if (this.ended) return true;
    if (!t.synced && !keyframe) return false;
    t.synced = true;
    this.#put(i, frame, nextTick);
    return true;
  }

  /**
   * Tick `tick` is made: a tile out of step, or whose source has no live video (`live(i)`
   * false), gets its card, unless it already has something for this tick.
   */
  tick(tick: number, live: (i: number) => boolean, card: (i: number) => Buffer): void {
    if (this.ended) return;
    this.lastTick = tick;
    this.#tiles.forEach((t, i) => {
      if (t.synced && live(i)) return;
      t.synced = false;
      if (t.lastPts >= tick * SUBTICKS) return;
      this.#put(i, card(i), tick);
    });
  }

  /**
   * The last tick was fed: every tile gets one more card, one tick later, so the frame sync can
   * settle every tick up to the last (the picture for the extra tick is not used).
   */
  end(card: (i: number) => Buffer): void {
    if (this.ended) return;
    this.ended = true;
    this.#tiles.forEach((_, i) => this.#put(i, card(i), this.lastTick + 1));
  }
}

/**
 * A source's VP8 frames since its last keyframe, so a new epoch's decoder can start at once
 * instead of waiting for a keyframe. Bounded: a long group (browsers send keyframes only when
 * asked) is forgotten, and then a new epoch asks for a keyframe.
 */
export class GopCache {
  #frames: Buffer[] = [];
  #valid = false;
  readonly maxFrames: number;

  constructor(maxFrames: number) {
    this.maxFrames = maxFrames;
  }

  push(frame: Buffer, keyframe: boolean): void {
    if (keyframe) {
      this.#frames = [frame];
      this.#valid = true;
    } else if (this.#valid) {
      if (this.#frames.length >= this.maxFrames) {
        this.#frames = [];
        this.#valid = false;
      } else this.#frames.push(frame);
    }
  }

  /** Frames from the last keyframe on, if there are at most `limit` (else null). */
  frames(limit = this.maxFrames): Buffer[] | null {
    return this.#valid && this.#frames.length <= limit ? this.#frames : null;
  }

  clear(): void {
    this.#frames = [];
    this.#valid = false;
  }
}
