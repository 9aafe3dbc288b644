/**
 * The time a recording's media could have arrived in: wall time, less every stretch in which
 * nothing at all came from the server. A worker judges "this source is quiet" (name card) and
 * "this epoch is hung" (replace it) on this clock, not on wall time.
 *
 * Why: under load the server's one event loop stalls for seconds at a time (measured 1–7 s with
 * four Chromiums on two cores, docs/workers.md day 10), and then nothing reaches the worker:
 * not the quiet source's frames, nor anyone else's. On wall time every tile went quiet at once,
 * showed its name card and then waited for its sender's next keyframe, so a 2-s stall of the
 * server cost seconds of cards. On this clock the stall does not count: the tiles keep their
 * last picture until media flows again and then carry on from the frames that arrive. The same
 * holds for the worker's own stalls (its timers run before its socket is read after a long
 * pause). The server sends a heartbeat (`ToWorker.Beat`) so that a room where nobody sends
 * video still keeps this clock running: a camera turned off still becomes its card.
 *
 * `slackMs`: a gap between two messages up to this long counts as time (the heartbeat comes
 * more often); beyond it, the rest of the gap is a stall and does not count.
 * Pure but for the time (`now`, performance.now() by default).
 */
export class UpstreamClock {
  #lastHeardAt: number;
  #stalledMs = 0;
  #o: { slackMs: number; now: () => number };

  constructor(o: { slackMs: number; now?: () => number }) {
    this.#o = { ...o, now: o.now ?? (() => performance.now()) };
    this.#lastHeardAt = this.#o.now();
  }

  /** Something came from the server. */
  heard(): void {
    const t = this.#o.now();
    const gap = t - this.#lastHeardAt;
    if (gap > this.#o.slackMs) this.#stalledMs += gap - this.#o.slackMs;
    this.#lastHeardAt = t;
  }

  /** The clock's time (ms): it stands still from `slackMs` after the last message until the next. */
  now(): number {
    return Math.min(this.#o.now(), this.#lastHeardAt + this.#o.slackMs) - this.#stalledMs;
  }

  /** Wall time lost to stalls so far (ms). */
  get stalledMs(): number {
    return this.#stalledMs;
  }
}
