import { PLACEHOLDER_COLOUR, SOLID_CARDS, solidFrame, type CodedCards } from './placeholder';
import type { SourceVideo } from './DirectFeed';
import type { VideoCodec } from '../media/types';

/** The tile a layout shows when nobody is in the room. */
export const WAITING_ID = '__waiting';

/** What TileContent needs of a source in the recording. */
export interface TileSource {
  /** Its decoded pictures (raw tiles): when the last arrived, the next one for this tick. */
  video: { latestAt: number; take(tick?: number, dueAt?: number): Buffer | null; readonly lastShown: Buffer | null };
  /** Its video as the direct epochs see it. */
  tile: SourceVideo;
  /** Its name card: a raw frame, and keyframes for direct epochs' inputs (null until rendered). */
  card: Buffer;
  codedCards: CodedCards;
}

interface Departed {
  frame: Buffer;
  card: Buffer;
  codedCards: CodedCards;
  at: number;
}

/**
 * What each tile shows, in both forms the epochs take: raw frames (raw tiles) and keyframes of a
 * tile input's codec (direct epochs decode the source's own video while it is live, see DirectFeed).
 *
 * - A live source: its pictures. Raw tiles take its next decoded picture each tick (its last
 *   one again when none came in time); a direct epoch's tile is fed its frames as they arrive.
 * - A source quiet for the video timeout: its name card. A direct epoch's input gets the card
 *   sooner, at half the stall timeout if that is shorter: a quiet input stalls its whole picture.
 * - A source that left while an epoch still shows its tile: its last picture until the video
 *   timeout, then its card, so a leave does not flash a blank tile for the few ticks the new
 *   layout takes to start; forgotten once no epoch still fed shows it.
 * - The waiting tile (nobody in the room): its card.
 *
 * Pure but for the time (`now`, Date.now() by default); cards are rendered by the caller.
 */
export class TileContent {
  #departed = new Map<string, Departed>();
  #o: { source: (id: string) => TileSource | undefined; videoTimeoutMs: number; stallTimeoutMs: number; camera: { w: number; h: number }; now: () => number };
  /** The waiting tile's card (raw, and as VP8 once rendered: its input in a direct epoch is VP8). */
  waitingCard: Buffer;
  waitingVp8: Buffer | null = null;

  constructor(o: { source: (id: string) => TileSource | undefined; videoTimeoutMs: number; stallTimeoutMs: number; camera: { w: number; h: number }; now?: () => number }) {
    this.#o = { ...o, now: o.now ?? Date.now };
    this.waitingCard = solidFrame(o.camera.w, o.camera.h, PLACEHOLDER_COLOUR);
  }

  /** `id` left: its tiles keep its last picture (if it was live) until the video timeout. */
  depart(id: string, s: TileSource): void {
    const now = this.#o.now();
    const live = s.video.latestAt && now - s.video.latestAt <= this.#o.videoTimeoutMs;
    // A copy: the decoder's pictures go back to its pool (FramePool) while this one is still shown.
    const last = live ? s.video.lastShown : null;
    this.#departed.set(id, { frame: last ? Buffer.from(last) : s.card, card: s.card, codedCards: { ...s.codedCards }, at: now });
  }

  /** `id` is back (or forgotten): its tiles follow the source again. */
  rejoined(id: string): void {
    this.#departed.delete(id);
  }

  /** Forget the departed whose tiles `shown(id)` says no epoch still fed shows. */
  forgetDeparted(shown: (id: string) => boolean): void {
    for (const id of this.#departed.keys()) if (!shown(id)) this.#departed.delete(id);
  }

  /**
   * The raw pictures of one tick: a function from a tile's source id to its picture. One per
   * tick: a source shown by two epochs (a layout change) gives both the same picture. `tick` and
   * `dueAt` (when it is due, performance.now()): which decoded pictures are due, and each
   * source's picture delay (VideoDecoder.take).
   */
  rawTick(tick?: number, dueAt?: number): (id: string) => Buffer {
    const now = this.#o.now();
    const timeout = this.#o.videoTimeoutMs;
    const shown = new Map<string, Buffer>();
    return (id) => {
      let f = shown.get(id);
      if (f) return f;
      const s = this.#o.source(id);
      const gone = s ? undefined : this.#departed.get(id);
      if (gone) f = now - gone.at <= timeout ? gone.frame : gone.card;
      else if (!s) f = id === WAITING_ID ? this.waitingCard : solidFrame(this.#o.camera.w, this.#o.camera.h, PLACEHOLDER_COLOUR);
      // The next decoded picture, or the last one again when none arrived in time.
      else if (s.video.latestAt && now - s.video.latestAt <= timeout) f = s.video.take(tick, dueAt) ?? s.card;
      else f = s.card;
      shown.set(id, f);
      return f;
    };
  }

  /**
   * Whether `id`'s video is live for a direct epoch's tile whose input takes `codec` (any, if not
   * given); else the tile shows its card.
   */
  live(id: string, codec?: VideoCodec): boolean {
    const s = this.#o.source(id);
    return !!s && s.tile.live(Math.min(this.#o.videoTimeoutMs, this.#o.stallTimeoutMs / 2), codec);
  }

  /** What a direct epoch's tile for `id` shows when its video is not live: a keyframe of its input's codec. */
  codedCard(id: string, codec: VideoCodec = 'vp8'): Buffer {
    const card = this.#o.source(id)?.codedCards[codec] ?? this.#departed.get(id)?.codedCards[codec] ?? (id === WAITING_ID && codec === 'vp8' ? this.waitingVp8 : null);
    return card ?? SOLID_CARDS[codec];
  }
}
