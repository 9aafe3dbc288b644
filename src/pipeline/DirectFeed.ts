import { vp8FrameOk, vp8KeyframeInfo } from '../media/ivf';
import { h264FrameOk, h264ParameterSets } from '../media/annexb';
import type { VideoCodec } from '../media/types';

/**
 * Feeding an epoch that decodes the participants' VP8 and H.264 itself ("direct" epochs; see
 * docs/workers.md "Decoding inside the epoch"). Each tile's input has one codec for the epoch's
 * life, its source's (EpochTile.codec); a source that changes codec gets a new epoch. Pure: it decides what each tile's input gets
 * and with which timestamp; the caller writes it (IVF to the epoch's pipe) and owns the clock.
 *
 * The rules, each measured with FFmpeg 4.1 and 5.1:
 * - Timestamps count the epoch's pictures, not the clock's ticks, in units of 1 / SUBTICKS:
 *   picture p is the p-th tick the epoch composes (a tick shed for lack of CPU composes nothing
 *   and does not count). A frame is stamped with the picture it is first shown in (the next
 *   one when it arrives), later frames for the same picture one unit later. Each input starts
 *   with `fps=<rate>:round=down`, so picture p of the graph is the composite as it stands when
 *   picture p + 1 starts: the schedule's bookkeeping (EpochSchedule: an epoch's k-th picture
 *   answers the k-th tick it was fed) is the same as for raw tiles. Shedding therefore needs
 *   no new epoch: the worker just stops counting pictures on the ticks it sheds, and every
 *   frame still reaches the decoders. (x264 then sees 30 pictures a second of the epoch's own
 *   time: its rate control spends the same bits per picture as at full rate.)
 * - FFmpeg's frame sync waits for every input: an input given nothing stalls the whole picture.
 *   So a tile with no live video (quiet longer than the video timeout, departed, the "waiting"
 *   tile, or not yet in step) gets its name card as a keyframe of its input's codec for every
 *   picture.
 * - A keyframe resets the decoder (an H.264 card is an IDR with its own SPS and PPS, so a
 *   resolution change with it; checked with both builds), so a card can replace a participant's
 *   video at any tick;
 *   but their next inter frame would decode against the card as garbage (no error). After a card
 *   a tile takes its source again only from a keyframe.
 * - A new epoch's decoders start empty: each tile starts with its source's frames since the last
 *   keyframe (GopCache), or with its card until a keyframe comes.
 */

/**
 * Stamps per picture: a tile's frames for one picture get rising stamps, and more than this many
 * would spill into the next picture's time and make the graph put out a picture no tick asked
 * for. A new epoch's replayed group (up to 2 s: 60 frames) and a superseded epoch that composes
 * nothing while its successor starts (30 frames a second) stay far below it.
 */
export const SUBTICKS = 1024;

/** Writes one frame to tile `tile`'s input with IVF timestamp `pts` (in pictures / SUBTICKS). */
export type DirectWrite = (tile: number, frame: Buffer, pts: number) => void;

interface TileInput {
  /** Its decoder has the source's stream from a keyframe on: the source's frames can follow. */
  synced: boolean;
  lastPts: number;
}

export class DirectFeed {
  #tiles: TileInput[];
  #write: DirectWrite;
  /** Pictures composed so far: the next one is picture `pictures`. */
  pictures = 0;
  ended = false;

  constructor(tiles: number, write: DirectWrite) {
    this.#tiles = Array.from({ length: tiles }, () => ({ synced: false, lastPts: -1 }));
    this.#write = write;
  }

  #put(i: number, frame: Buffer, picture: number): void {
    const t = this.#tiles[i];
    t.lastPts = Math.max(t.lastPts + 1, picture * SUBTICKS);
    this.#write(i, frame, t.lastPts);
  }

  /** Source frames given so far for each picture still to come (not cards). */
  #framesFor = new Map<number, number>();

  /**
   * Whether the next picture has anything new: it is the epoch's first, or a tile has a frame of
   * its source for it. Without, it would come out the same as the last one (nothing moved), and
   * a recording short of CPU composes it a tick later (StrideController.compose).
   */
  fresh(): boolean {
    return this.pictures === 0 || (this.#framesFor.get(this.pictures) ?? 0) > 0;
  }

  /** Tile `i`'s decoder lost the stream (it reported an error): its card until a keyframe. */
  desync(i: number): void {
    this.#tiles[i].synced = false;
  }

  synced(i: number): boolean {
    return this.#tiles[i].synced;
  }

  /**
   * The epoch starts (its picture 0): each tile starts from its source's frames since their last
   * keyframe (`gop[i]`, keyframe first), or from its card.
   */
  begin(gop: (Buffer[] | null)[], card: (i: number) => Buffer): void {
    this.#tiles.forEach((t, i) => {
      const frames = gop[i];
      if (frames && frames.length > 0) {
        for (const f of frames) this.#put(i, f, 0);
        t.synced = true;
      } else {
        this.#put(i, card(i), 0);
        t.synced = false;
      }
    });
  }

  /**
   * A frame of tile `i`'s source arrived. It is shown from the next picture on, or `ahead`
   * pictures later: it was captured for a tick after the next composed one (the clock is late,
   * or catching up). But while the clock catches up (`catchingUp`: more than a tick overdue),
   * never past a next picture its tile has nothing for: frames come in capture order, so no
   * earlier one is on its way, and the tile would repeat its last frame there. When every tile
   * did, the whole picture repeated (day 26: a starved server sent nothing for 80 ms right after
   * a join, then the frames of the two ticks after the next composed one, which went one picture
   * later; the next picture came out identical to the one before, and that second of a
   * 0.45-core recording had 11 distinct pictures). Not on time: a frame that arrives just before
   * its tick's timer fires is captured for the tick after, and taken early it would show a
   * source with that phase a tick before its audio all call long. Returns false when it was
   * dropped because the tile waits for a keyframe.
   */
  frame(i: number, frame: Buffer, keyframe: boolean, ahead = 0, catchingUp = false): boolean {
    const t = this.#tiles[i];
    if (this.ended) return true;
    if (!t.synced && !keyframe) return false;
    t.synced = true;
    const fill = catchingUp && t.lastPts < this.pictures * SUBTICKS;
    this.#put(i, frame, this.pictures + (fill ? 0 : ahead));
    const picture = Math.floor(t.lastPts / SUBTICKS);
    this.#framesFor.set(picture, (this.#framesFor.get(picture) ?? 0) + 1);
    return true;
  }

  /**
   * A tick composes the next picture: a tile out of step, or whose source has no live video
   * (`live(i)` false), gets its card, unless it already has something for this picture.
   */
  tick(live: (i: number) => boolean, card: (i: number) => Buffer): void {
    if (this.ended) return;
    const p = this.pictures++;
    this.#framesFor.delete(p);
    this.#tiles.forEach((t, i) => {
      if (t.synced && live(i)) return;
      t.synced = false;
      if (t.lastPts >= p * SUBTICKS) return;
      this.#put(i, card(i), p);
    });
  }

  /**
   * The last tick was fed: every tile gets two more cards, for the two pictures after the last,
   * so the frame sync can settle every picture up to the last (the extra ones are not used).
   * With one, an epoch that had been idle while its successor started lost its last picture when
   * a tile had had no frame since (a departed participant's: `xstack`'s `shortest` ended the
   * graph at that input's end before the picture came out). At 12 pictures a second that tick
   * showed the picture before for five ticks instead of two, and the second had 11 (day 13).
   */
  end(card: (i: number) => Buffer): void {
    if (this.ended) return;
    this.ended = true;
    this.#tiles.forEach((_, i) => {
      this.#put(i, card(i), this.pictures);
      this.#put(i, card(i), this.pictures + 1);
    });
  }
}

/**
 * A source's frames since its last keyframe, so a new epoch's decoder can start at once
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

/** A keyframe bigger than this (pixels) is refused: a decoder inside the epoch would allocate it. */
export const MAX_DIRECT_PIXELS = 4096 * 2304;
/**
 * A source that changes codec (a renegotiation) gets its tiles a new epoch; another change within
 * this is refused, so a sender alternating codecs cannot make the worker start an FFmpeg per frame.
 */
export const CODEC_CHANGE_MS = 2000;

/**
 * One source's video as the direct epochs' tiles see it: its codec, which frames may reach a
 * decoder inside an epoch, whether the source is live, its frames since the last keyframe, and
 * its keyframe requests. Pure: time comes from `now` (Date.now() by default).
 */
export class SourceVideo {
  /** Codec of the frames so far (before the first: the negotiated one, or null): what a new epoch's input for it takes. */
  codec: VideoCodec | null = null;
  /**
   * now() of its last good frame (-Infinity: none yet; not 0, since the quiet clock may be near 0
   * in a new worker, and a source with a negotiated codec but no frame must not look live).
   */
  lastVideoAt = -Infinity;
  readonly gop: GopCache;
  #lastAskAt = -Infinity;
  #codecAt = -Infinity;
  /** The SPS and PPS of its last H.264 keyframe that had them (for one that comes without). */
  #paramSets: Buffer | null = null;
  /** A frame of its stream was refused: the frames after it refer to it, so none passes until a keyframe. */
  #broken = false;
  /** Frames of its codec refused so far (bad ones, and those held back after one): for the worker's log. */
  refused = 0;
  #o: { gopFrames: number; askEveryMs: number; request: () => void; now: () => number };

  /**
   * `codec`: the one it was negotiated in, if known (MediaSource.videoCodec), so an epoch started
   * before its first frame gives it an input of that codec. Its first frame of another codec still
   * changes it, if a keyframe.
   */
  constructor(o: { gopFrames: number; askEveryMs: number; request: () => void; now?: () => number; codec?: VideoCodec | null }) {
    this.#o = { ...o, now: o.now ?? Date.now };
    this.codec = o.codec ?? null;
    this.gop = new GopCache(o.gopFrames);
  }

  /** A frame that goes through a decoder process (raw tiles: TESSERA_DIRECT_DECODE=false). */
  decoded(codec: VideoCodec): void {
    this.codec = codec;
    this.lastVideoAt = this.#o.now();
  }

  /**
   * A frame for direct epochs: the frame to give their decoders (an H.264 keyframe without its
   * SPS and PPS gets the source's last ones in front, since a name card's own may have replaced
   * them in the decoder), or null when it must not reach them. A frame a decoder inside an epoch
   * would put out nothing for stalls every tile (the frame sync waits for it), so junk and absurd
   * sizes stop here: such a source is not live, and its tiles show the card until a good
   * keyframe. A change of codec is taken from a keyframe (its tiles need a new epoch, see
   * Recording), but not twice within CODEC_CHANGE_MS.
   *
   * A refused frame breaks the stream for the decoders that go on: the sender's next frames
   * predict from it, and decoded against the picture before it they come out as garbage with no
   * error (a smear over the tile until the next keyframe, which a browser sends only when asked).
   * So after one, nothing passes until a keyframe, one is asked for, and the tile holds its last
   * good picture meanwhile (its card, if that takes longer than the video timeout).
   */
  take(codec: VideoCodec, frame: Buffer, keyframe: boolean): Buffer | null {
    const now = this.#o.now();
    if (codec !== this.codec) {
      // The first frame sets it; a change needs a keyframe of the new codec to start from.
      if (this.codec !== null && (!keyframe || now - this.#codecAt < CODEC_CHANGE_MS)) return null;
      this.#codecAt = now;
      this.codec = codec;
      this.gop.clear();
      this.#paramSets = null;
    }
    let data: Buffer | null = frame;
    if (codec === 'vp8') {
      const size = keyframe ? vp8KeyframeInfo(frame) : null;
      if (!vp8FrameOk(frame, keyframe) || (size && size.width * size.height > MAX_DIRECT_PIXELS)) data = null;
    } else {
      if (keyframe) {
        const sets = h264ParameterSets(frame);
        if (sets) this.#paramSets = sets;
        else if (this.#paramSets) data = Buffer.concat([this.#paramSets, frame]);
      }
      if (!h264FrameOk(data!, keyframe, MAX_DIRECT_PIXELS)) data = null;
    }
    if (data && this.#broken && !keyframe) data = null;
    if (!data) {
      this.refused++;
      this.gop.clear();
      this.#broken = true;
      this.askKeyframe();
      return null;
    }
    this.#broken = false;
    this.lastVideoAt = now;
    this.gop.push(data, keyframe);
    return data;
  }

  /** Whether its video is live for a direct epoch's tile (of `codec`, if given): a good frame within `withinMs`. */
  live(withinMs: number, codec?: VideoCodec): boolean {
    return this.codec !== null && (codec === undefined || codec === this.codec) && this.#o.now() - this.lastVideoAt <= withinMs;
  }

  /** Ask the sender for a keyframe, at most once per `askEveryMs`. */
  askKeyframe(): void {
    const now = this.#o.now();
    if (now - this.#lastAskAt < this.#o.askEveryMs) return;
    this.#lastAskAt = now;
    this.#o.request();
  }
}
