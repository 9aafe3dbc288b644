/**
 * Which tick shows a source's video frame: by the frame's RTP timestamp (its capture time), not
 * by the moment it reached the worker.
 *
 * A frame used to be shown from the first tick after it arrived. Where a participant's frames
 * fall between the recording's ticks is chance (their camera's clock against the worker's); for
 * a participant whose frames arrive a few ms before or after a tick, arrival jitter of a few ms
 * puts two frames into one tick and none into the next, and the tile judders: measured up to 7 %
 * of one tile's pictures repeated in the benchmark (docs/workers.md, day 18).
 *
 * Here a frame's tick is its RTP time moved by the source's offset (the smallest arrival delay
 * seen over the last `windowMs`: the frames that met no jitter) plus `marginMs`: frames 33 ms
 * apart in the sender land on consecutive ticks, and a frame delayed by up to `marginMs` more
 * than the quickest still lands on its own tick. One later still is shown from the first tick
 * after it arrived (the caller's clamp), as before. The margin costs only latency, which a
 * recording does not see (the source's audio waits as long: PictureDelay).
 *
 * A timestamp that jumps (a new stream after a renegotiation, a wrapped or junk timestamp)
 * starts the estimate again. Pure: ticks are fractional tick counts of the recording's clock.
 */
export class FrameTicks {
  readonly #fps: number;
  readonly #marginTicks: number;
  readonly #windowTicks: number;
  /** Extended RTP time of the last frame, in 90 kHz units (NaN: none yet). */
  #rtp = NaN;
  #lastRaw = 0;
  /** (arrival tick − RTP tick, arrival tick) of recent frames. */
  #offsets: number[] = [];
  #arrivals: number[] = [];
  /** Timestamp jumps (the estimate started again). */
  resets = 0;
  /** Frames that came too late for their own tick (counted by the caller). */
  late = 0;

  constructor(o: { fps: number; marginMs: number; windowMs?: number }) {
    this.#fps = o.fps;
    this.#marginTicks = (o.marginMs * o.fps) / 1000;
    this.#windowTicks = ((o.windowMs ?? 2000) * o.fps) / 1000;
  }

  /**
   * The tick that should show a frame with RTP timestamp `rtp` (90 kHz) arriving at fractional
   * tick `arrival` (the caller shows it no earlier than the next tick it can still make).
   */
  place(rtp: number, arrival: number): number {
    const raw = rtp >>> 0;
    if (Number.isNaN(this.#rtp)) this.#restart(raw);
    else {
      const step = (raw - this.#lastRaw) | 0; // signed 32-bit difference: wraps are steps
      // Backwards by more than a second or forwards by more than ten: another stream.
      if (step < -90000 || step > 900000) {
        this.resets++;
        this.#restart(raw);
      } else this.#rtp += step;
    }
    this.#lastRaw = raw;
    const rtpTicks = (this.#rtp / 90000) * this.#fps;
    this.#offsets.push(arrival - rtpTicks);
    this.#arrivals.push(arrival);
    while (this.#arrivals.length > 1 && arrival - this.#arrivals[0] > this.#windowTicks) {
      this.#arrivals.shift();
      this.#offsets.shift();
    }
    let min = Infinity;
    for (const x of this.#offsets) if (x < min) min = x;
    return Math.floor(rtpTicks + min + this.#marginTicks) + 1;
  }

  #restart(raw: number): void {
    this.#rtp = 0;
    this.#offsets = [];
    this.#arrivals = [];
    this.#lastRaw = raw;
  }
}
