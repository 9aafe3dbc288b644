import { SupervisedDecoder } from './SupervisedDecoder';
import { loopStalledWithin } from './loopMonitor';
import { RawFrameReader } from './RawFrameReader';
import { releaseFrame } from './FramePool';
import { videoDecoderArgs } from '../../compositor/ffmpegArgs';
import { ivfFileHeader, ivfFrameHeader, vp8KeyframeInfo } from '../media/ivf';
import type { FfmpegProcess } from './FfmpegProcess';
import type { EncodedVideoFrame, VideoCodec } from '../media/types';
import type { Logger } from '../logger';

/** While waiting for a keyframe, ask for one again this often. */
const KEYFRAME_REASK_MS = 1000;
/** At most this many frames are held for a decoder that is starting (2 s at 30 fps). */
const MAX_EARLY_FRAMES = 60;
/**
 * Frames a decoder process may keep inside however fast it decodes. Debian's FFmpeg 5.1 returned
 * each picture only once the next frame had been written (measured: one frame in, nothing out
 * after 1.5 s; the second in, the first out); the bundled 4.1 returned it at once. So after a
 * pause in a sender's frames (a browser short of CPU or bandwidth, an encoder dropping frames
 * after a big keyframe, a camera turned off) the last frame before it was still inside, its write
 * time aged, and the decoder looked more than a second behind real time although it had nothing
 * to do: it then threw away every frame until a keyframe (the tile held one picture for seconds,
 * and the keyframe's own picture again waited inside for the next frame). The hold itself was
 * the raw output's frame-threaded encoder and is gone since day 22 (`-threads 1` on the output:
 * videoDecoderArgs); the tolerance stays, since a build's threading is not ours to rely on.
 */
export const DECODER_HOLD_FRAMES = 1;

/** An encoded frame written to the decoder: when it arrived, and the tick it is for (if known). */
interface Arrival {
  at: number;
  tick: number | undefined;
}
/** A decoded picture waiting for its tick. */
interface Queued extends Arrival {
  frame: Buffer;
}
/** A gap between a source's frames longer than this is a pause in its input (see push()). */
const INPUT_PAUSE_MS = 200;

/**
 * Decodes one source's video into fixed-size raw yuv420p frames and keeps the latest one for the
 * pacer. Waits for a keyframe (and asks for one) whenever a decoder starts or input was lost.
 */
export class VideoDecoder extends SupervisedDecoder {
  readonly width: number;
  readonly height: number;
  readonly frameBytes: number;
  /** When the most recent frame was decoded (ms, on the `quietNow` clock); 0 = never. */
  latestAt = 0;
  /** The clock a tile's quietness is judged on (see UpstreamClock); Date.now() by default. */
  #quietNow: () => number;
  framesDecoded = 0;
  /** Decoded frames never shown (the source ran ahead of the pacer by more than the queue). */
  framesDropped = 0;
  /** Ticks that found no new frame and repeated the last one. */
  framesRepeated = 0;
  /**
   * Decoded frames waiting for the pacer. Sender and pacer both run at about the frame rate but
   * jitter against each other; a queue of up to three absorbs that (at most two frames of delay)
   * instead of dropping one frame and repeating the next.
   */
  #queue: Queued[] = [];
  /**
   * Each frame still inside the decoder (oldest first): when it arrived (performance.now()) and
   * the tick it is for. A shown picture's delay from arrival is what its source's audio must
   * wait (lip sync, day 22). Frames that waited for the process to start, or were held inside
   * over a pause in the source's input, arrived at NaN: their wait is not the decoder's usual one.
   */
  #arrivals: Arrival[] = [];
  /** Told, for each decoded picture a tick takes, how long after its arrival that tick is due. */
  #onShown: ((delayMs: number) => void) | undefined;
  #shown: Buffer | null = null;
  /** Consecutive ticks that found more than one frame waiting (see take()). */
  #backlogTicks = 0;
  /** Encoded frames not decoded on purpose (waiting for a keyframe, or behind real time). */
  framesSkipped = 0;
  #codec: VideoCodec | null = null;
  #needKeyframe = true;
  #ivfHeaderWritten = false;
  #reader: RawFrameReader;
  #pts = 0n;
  /** When each frame still inside the decoder was written (oldest first). */
  #writeTimes: number[] = [];
  /** When the source's previous frame came (0 = none yet). */
  #lastPushAt = 0;
  /** A frame written this long ago and still not decoded means the decoder is behind real time. */
  readonly maxLagMs: number;
  #requestKeyframe: () => void;
  #lastAskAt = 0;
  /**
   * The current process has put out a frame. Before that it is starting (loading, probing its
   * input), which the stall watchdog bounds (stallMs); lag is only judged once it decodes.
   */
  #producing = false;
  /** Frames (from a keyframe on) that came while no process was running. */
  #early: { frame: EncodedVideoFrame; tick: number | undefined }[] = [];

  constructor(opts: { ffmpegPath: string; width: number; height: number; logger: Logger; stallMs: number; requestKeyframe: () => void; maxLagMs?: number; quietNow?: () => number; onShown?: (delayMs: number) => void }) {
    super(opts.ffmpegPath, opts.logger, opts.stallMs);
    this.#quietNow = opts.quietNow ?? Date.now;
    this.maxLagMs = opts.maxLagMs ?? 1000;
    this.width = opts.width;
    this.height = opts.height;
    this.frameBytes = (opts.width * opts.height * 3) / 2;
    this.#reader = new RawFrameReader(this.frameBytes);
    this.#requestKeyframe = opts.requestKeyframe;
    this.#onShown = opts.onShown;
  }

  /** RawFrameReader copies every read into a frame at once, so reads can share one buffer. */
  readonly #readBuffer = Buffer.allocUnsafeSlow(256 * 1024);

  protected override readBuffer(): Buffer {
    return this.#readBuffer;
  }

  protected args(): string[] {
    return videoDecoderArgs({ w: this.width, h: this.height });
  }

  protected onSpawn(_proc: FfmpegProcess): void {
    this.#producing = false;
    this.#needKeyframe = true;
    this.#ivfHeaderWritten = false;
    this.#writeTimes = [];
    this.#arrivals = [];
    this.#reader.reset();
    const early = this.#early;
    this.#early = [];
    if (early.length > 0) for (const e of early) this.push(e.frame, e.tick);
    else this.#ask(Date.now());
  }

  #ask(now: number): void {
    this.#lastAskAt = now;
    this.#requestKeyframe();
  }

  protected onOutput(chunk: Buffer): void {
    this.#reader.push(chunk, (frame) => {
      if (!this.#producing) {
        // The process's first frame: it has started. Frames written while it was loading count
        // as written now, so its start-up time (a loaded machine starting a room's worth of
        // FFmpegs takes a second or more) is not read as falling behind real time.
        this.#producing = true;
        const now = Date.now();
        this.#writeTimes = this.#writeTimes.map((t) => Math.max(t, now));
        // Nor do they say how long pictures wait once it runs (they waited for the process: up
        // to a second), which the source's audio would then wait too for seconds (see take()).
        for (const a of this.#arrivals) a.at = NaN;
      }
      this.#queue.push({ frame, ...(this.#arrivals.shift() ?? { at: NaN, tick: undefined }) });
      if (this.#queue.length > 3) {
        releaseFrame(this.#queue.shift()!.frame);
        this.framesDropped++;
      }
      this.latestAt = this.#quietNow();
      this.framesDecoded++;
      this.#writeTimes.shift();
    });
  }

  /** The frame most recently handed to the pacer (null before the first). A holder beyond this tick copies it or retains it (FramePool). */
  get lastShown(): Buffer | null {
    return this.#shown;
  }

  /**
   * The frame for tick `tick` (due at `dueAt`, performance.now()), or the last shown again; null
   * if none yet. A frame pushed with the tick it is for (its capture time: FrameTicks) is shown
   * from that tick: the newest such frame due, older ones dropped, a frame for a later tick kept
   * for it. That keeps each source's pictures at a steady delay from their capture, as direct
   * epochs do (day 22); the queue alone did not (a burst left one or two frames standing for
   * seconds, 70-90 ms of delay that came and went, and the source's voice would have followed).
   * A new picture's delay from its arrival goes to `onShown`. Without `tick`, one per tick.
   */
  take(tick?: number, dueAt?: number): Buffer | null {
    // Pictures that waited for the process to start, over a pause in the source's input, or for
    // the recording's clock to start (no tick) are stale once a newer one is queued: the newest
    // is shown at once (the audio, too, starts from its newest at the clock's start).
    const stale = (q: Queued) => Number.isNaN(q.at) || (tick !== undefined && q.tick === undefined);
    while (this.#queue.length > 1 && stale(this.#queue[0])) this.#drop();
    let next: Queued | undefined;
    if (tick !== undefined && this.#queue.length > 0 && this.#queue[0].tick !== undefined) {
      while (this.#queue.length > 1 && (this.#queue[1].tick ?? Infinity) <= tick) this.#drop();
      if ((this.#queue[0].tick ?? Infinity) <= tick) next = this.#queue.shift();
      this.#backlogTicks = 0;
    } else {
      // One in, one out per tick. A burst leaves frames queued for good, and every queued frame
      // is 1/fps of video latency: once the backlog has lasted half a second, catch up by
      // skipping to the newest frame.
      if (this.#queue.length > 1) {
        if (++this.#backlogTicks >= 15) {
          while (this.#queue.length > 1) this.#drop();
          this.#backlogTicks = 0;
        }
      } else this.#backlogTicks = 0;
      next = this.#queue.shift();
    }
    if (next) {
      if (dueAt !== undefined && next.tick !== undefined && Number.isFinite(next.at)) this.#onShown?.(dueAt - next.at);
      // The queue's reference becomes the shown picture's; the picture it replaces is let go
      // (the encoder holds its own reference while writing it).
      if (this.#shown) releaseFrame(this.#shown);
      this.#shown = next.frame;
    }
    else if (this.#shown) this.framesRepeated++;
    return this.#shown;
  }

  #drop(): void {
    releaseFrame(this.#queue.shift()!.frame);
    this.framesDropped++;
  }

  /** Feed one encoded frame from the source; `tick`: the recording's tick it is for (see take()). */
  push(frame: EncodedVideoFrame, tick?: number): void {
    if (this.closed) return;
    if (frame.codec !== this.#codec) {
      // First frame, or the sender switched codec: a new process for the new bitstream.
      this.#codec = frame.codec;
      const old = this.proc;
      this.proc = null;
      if (old) void old.stop();
      this.spawn();
    }
    if (!this.proc) {
      // No process yet (queued to start, or restarting): keep the frames from the latest keyframe
      // on and decode them when it is up. The keyframe answering the first request usually
      // arrives before the spawn queue reaches this decoder; dropping it cost a second of blank
      // tile at the start of every recording (waiting for the next request to be answered).
      if (frame.keyframe) this.#early = [{ frame, tick }];
      else if (this.#early.length > 0 && this.#early.length < MAX_EARLY_FRAMES) this.#early.push({ frame, tick });
      return;
    }
    const now = Date.now();
    // A pause in the source's frames: the frames still inside were waiting for input, not for
    // CPU, so they count as written now. How many a decoder holds is not fixed: Debian's 5.1
    // held two under load (measured in decoder-pause with two busy loops: 6 of 8 runs failed), and the
    // second-newest frame before a 1.5 s pause then looked 1.5 s late, so the tile was dropped
    // to a keyframe. A decoder that is really behind is fed without pauses and is still caught.
    if (this.#lastPushAt > 0 && now - this.#lastPushAt > INPUT_PAUSE_MS) {
      this.#writeTimes = this.#writeTimes.map((t) => Math.max(t, now));
      for (const a of this.#arrivals) a.at = NaN;
    }
    this.#lastPushAt = now;
    // The oldest frame not out yet should have come out once DECODER_HOLD_FRAMES more were
    // written: lateness counts from then, not from its own write (see DECODER_HOLD_FRAMES).
    const dueSince = this.#writeTimes[DECODER_HOLD_FRAMES];
    if (this.#producing && dueSince !== undefined && now - dueSince > this.maxLagMs && !this.#needKeyframe && !loopStalledWithin(this.maxLagMs)) {
      // Behind real time (or frames the decoder rejected never came out): a tile showing
      // old video as live is worse than a skip. Drop to the next keyframe, asked for now.
      this.log.warn({ lagMs: now - dueSince, queued: this.#writeTimes.length }, 'decoder behind real time; skipping to a keyframe');
      this.#writeTimes = [];
      this.#arrivals = [];
      this.framesSkipped++;
      this.#needKeyframe = true;
      this.#ask(now);
    }
    if (!this.#producing && this.#writeTimes.length && now - this.#writeTimes[0] > this.maxLagMs && now - this.#lastAskAt >= KEYFRAME_REASK_MS) {
      // Nothing out yet after a second: a slow start, or a first keyframe the decoder could not
      // use (then nothing will come out until the next one). Ask for one without dropping
      // anything; a decoder that is merely starting decodes the backlog and catches up.
      this.log.debug({ waitedMs: now - this.#writeTimes[0] }, 'decoder has no output yet; asking for a keyframe');
      this.#ask(now);
    }
    if (this.#needKeyframe) {
      if (!frame.keyframe) {
        this.framesSkipped++;
        // Ask again while waiting: the sender side throttles keyframe requests, so an ask made
        // just after another one (a decoder spawned right after its source was added) is
        // dropped, and a keyframe that came before the process was up was not decoded.
        if (now - this.#lastAskAt >= KEYFRAME_REASK_MS) this.#ask(now);
        return;
      }
      this.#needKeyframe = false;
      if (!this.#ivfHeaderWritten) {
        // Once per process: the IVF stream header, sized from the first keyframe (for H.264
        // the decoder takes the size from the SPS; the header's is only a hint).
        this.#ivfHeaderWritten = true;
        const size = (frame.codec === 'vp8' ? vp8KeyframeInfo(frame.data) : null) ?? { width: frame.width ?? this.width, height: frame.height ?? this.height };
        this.write(ivfFileHeader(size.width, size.height, 90000, 1, frame.codec === 'vp8' ? 'VP80' : 'H264'));
      }
    }
    if (this.#writeTimes.length < 512) {
      this.#writeTimes.push(now);
      this.#arrivals.push({ at: performance.now(), tick });
    }
    const ok = this.write(Buffer.concat([ivfFrameHeader(frame.data.length, this.#pts++), frame.data]));
    if (!ok && this.proc) {
      // Input was lost (decoder backed up): the next frames would reference missing ones.
      this.#needKeyframe = true;
      this.#ask(now);
    }
  }
}
