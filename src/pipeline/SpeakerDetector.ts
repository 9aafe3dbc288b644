/**
 * Who is speaking, for the speaker layout: each source's audio level smoothed over blocks, and a
 * new speaker only after being the loudest for `holdMs` (hysteresis, so the stage does not flap
 * between two people talking over each other). Pure: time comes in with each call.
 */
export class SpeakerDetector {
  #levels = new Map<string, number>();
  #speaker: string | undefined;
  #candidate: { id: string; since: number } | null = null;

  constructor(private readonly opts: { holdMs: number; threshold: number } = { holdMs: 1500, threshold: 0.01 }) {}

  get speaker(): string | undefined {
    return this.#speaker;
  }

  /** One mixed block's per-source levels (0..1), in the order of `ids`. */
  addLevels(ids: readonly string[], levels: readonly number[]): void {
    ids.forEach((id, i) => this.#levels.set(id, 0.9 * (this.#levels.get(id) ?? 0) + 0.1 * levels[i]));
  }

  forget(id: string): void {
    this.#levels.delete(id);
  }

  /** Returns the new speaker when the stage should change now, else undefined. */
  decide(now: number, present: (id: string) => boolean): string | undefined {
    let loudest: string | undefined;
    let level = this.opts.threshold;
    for (const [id, l] of this.#levels) if (present(id) && l > level) [loudest, level] = [id, l];
    if (!loudest || loudest === this.#speaker) {
      this.#candidate = null;
      return undefined;
    }
    if (this.#candidate?.id !== loudest) {
      this.#candidate = { id: loudest, since: now };
      return undefined;
    }
    if (now - this.#candidate.since < this.opts.holdMs) return undefined;
    this.#speaker = loudest;
    this.#candidate = null;
    return loudest;
  }
}
