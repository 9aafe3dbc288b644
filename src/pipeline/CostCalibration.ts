import { recordingCost, type CostModel } from './admission';

/**
 * Admission's cost model, corrected by what this process's recordings measure.
 *
 * The configured model (`TESSERA_RECORDING_CORES_BASE`, `_PER_SOURCE`) was measured on one
 * machine with the default video settings. On a slower node, or with a larger picture, a higher
 * rate or a slower x264 preset, a recording costs more than it says, and a process trusting it
 * admits recordings it cannot carry: every one of them then degrades. So each running recording's
 * worker reports the cores its process tree uses (once a second), and:
 *
 * - a running recording is charged the larger of its modelled cost and what it measures now
 *   (smoothed): a recording that costs more than the model is counted at its real cost;
 * - the model learns a factor, measured cores over modelled cores, from recordings that run at
 *   full quality and keep up, past their start. A new recording costs the model times it.
 *
 * The factor never goes below 1: the configured model is the least a recording is assumed to
 * cost. Recordings measured cheaper (cameras off, small pictures, a fast node) must not let the
 * process promise CPU that the next meeting, with every camera on, will need. An operator whose
 * nodes are faster lowers the model (re-measured with `npm run bench`). It never goes above
 * MAX_FACTOR either: one odd reading does not close the process to recordings.
 *
 * A degraded or lagging recording measures what it was given, not what it needs: it teaches the
 * factor nothing, and is charged at least its modelled cost. Pure: samples come with their times.
 */
export const MAX_FACTOR = 4;
/** A worker's first seconds cost more than its steady state (its FFmpegs start, V8 compiles). */
export const WARMUP_MS = 8000;
/** Full-quality samples before the factor counts: a few seconds of one recording. */
export const MIN_SAMPLES = 5;
/** Weight of one 1-s sample in the factor (a time constant of about 20 s of recording). */
const FACTOR_WEIGHT = 0.05;
/** Weight of one 1-s sample in a recording's own smoothed cores (about 5 s). */
const CORES_WEIGHT = 0.2;

export interface CostSample {
  /** Sources (cameras and screens) the recording shows now. */
  sources: number;
  /** Cores its worker's process tree used over the last second. */
  cores: number;
  /** At the configured quality: every picture, the configured preset, full-size tiles. */
  full: boolean;
  /**
   * It kept up over the whole second: at full quality before it too, nothing repeated for lack of
   * CPU (a starved one measures what it got, not what it needs).
   */
  keepingUp: boolean;
  /** How long its current worker has run (ms). */
  workerMs: number;
}

export class CostCalibration {
  readonly model: CostModel;
  readonly #learn: boolean;
  #learnt = 1;
  #samples = 0;
  readonly #cores = new Map<string, number>();

  constructor(model: CostModel, opts: { learn: boolean }) {
    this.model = model;
    this.#learn = opts.learn;
  }

  /** The model's factor now: 1 (the configured model) until learnt, at most MAX_FACTOR. */
  get factor(): number {
    if (!this.#learn || this.#samples < MIN_SAMPLES) return 1;
    return Math.min(MAX_FACTOR, Math.max(1, this.#learnt));
  }

  /** Full-quality samples the factor has learnt from. */
  get samples(): number {
    return this.#samples;
  }

  /** One of a running recording's once-a-second figures. */
  observe(id: string, s: CostSample): void {
    if (!(s.cores > 0) || !Number.isFinite(s.cores) || s.workerMs < WARMUP_MS) return;
    const prev = this.#cores.get(id);
    this.#cores.set(id, prev === undefined ? s.cores : prev + CORES_WEIGHT * (s.cores - prev));
    const modelled = recordingCost(this.model, s.sources);
    if (!this.#learn || !s.full || !s.keepingUp || !(modelled > 0)) return;
    const ratio = s.cores / modelled;
    // The first 20 samples are averaged (the first sets it outright): a weighted mean from 1
    // would take a minute to reach what the node measures, and admit too much meanwhile.
    this.#samples += 1;
    this.#learnt = this.#samples === 1 ? ratio : this.#learnt + Math.max(FACTOR_WEIGHT, 1 / this.#samples) * (ratio - this.#learnt);
  }

  /** The recording ended: its cores are no longer charged. What it taught the factor stays. */
  forget(id: string): void {
    this.#cores.delete(id);
  }

  /** What a new recording of `sources` is expected to cost (cores). */
  cost(sources: number): number {
    return recordingCost(this.model, sources) * this.factor;
  }

  /** What a running recording is counted at: its expected cost, or more if it measures more. */
  charge(id: string, sources: number): number {
    return Math.max(this.cost(sources), this.#cores.get(id) ?? 0);
  }
}
