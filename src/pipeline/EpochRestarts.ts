/** Epoch deaths within `windowMs` that mean the video encoder cannot run here. */
export const MAX_EPOCH_DEATHS = 3;
export const EPOCH_DEATH_WINDOW_MS = 60_000;
/** The first replacement's wait; it doubles for each one that produces nothing, up to MAX_DELAY_MS. */
const FIRST_DELAY_MS = 50;
const MAX_DELAY_MS = 2000;

/**
 * When a dead epoch is replaced, and when its deaths fail the recording. A replacement starts
 * after 50 ms, then 100, 200, … up to 2 s while none of them puts out a picture (an FFmpeg that
 * dies at once must not be respawned in a tight loop); a picture out resets the wait. Three
 * deaths within a minute mean the encoder cannot run here: the worker ends and the server
 * continues the recording in a new one (or, after three workers, fails it with what was made).
 * Pure: the time comes from `now`.
 */
export class EpochRestarts {
  #deaths: number[] = [];
  #tries = 0;

  constructor(private readonly o: { now?: () => number; maxDeaths?: number; windowMs?: number } = {}) {}

  /** An epoch put out a picture: the next replacement starts quickly again. */
  produced(): void {
    this.#tries = 0;
  }

  /** How long to wait before starting the next replacement (ms); each call without a picture between doubles it. */
  nextDelayMs(): number {
    return Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.min(this.#tries++, 5));
  }

  /** Counts a death; true when it makes `maxDeaths` within the window: the recording cannot go on here. */
  died(): boolean {
    const now = (this.o.now ?? Date.now)();
    const windowMs = this.o.windowMs ?? EPOCH_DEATH_WINDOW_MS;
    this.#deaths = [...this.#deaths.filter((t) => now - t < windowMs), now];
    return this.#deaths.length >= (this.o.maxDeaths ?? MAX_EPOCH_DEATHS);
  }

  /** Deaths within the window, as of the last one. */
  get recentDeaths(): number {
    return this.#deaths.length;
  }
}
