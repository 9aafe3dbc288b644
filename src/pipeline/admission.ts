/**
 * Admission: a recording this process cannot carry is refused at start instead of degrading every
 * recording on the machine. Pure: the budget, the cost model and the recordings are given.
 *
 * Cost of a recording = base + perSource × sources (cameras and screens), in cores, measured by
 * `npm run bench` on the whole tree of one recording (see docs/workers.md). The process may use
 * `usable` of its budget for recordings; the rest is the SFU's and the machine's headroom (LiveKit
 * Egress keeps the same margin).
 */
export interface CostModel {
  base: number;
  perSource: number;
}

export interface AdmissionInput {
  budgetCores: number;
  usable: number;
  model: CostModel;
  /** Sources of each recording already running. */
  active: number[];
  /** Sources of the one asked for. */
  wanted: number;
}

export interface AdmissionResult {
  ok: boolean;
  /** Cores the new recording is expected to cost. */
  cost: number;
  /** Cores left for recordings before it. */
  free: number;
}

export function recordingCost(model: CostModel, sources: number): number {
  return model.base + model.perSource * Math.max(1, sources);
}

/**
 * Admitted (as the process's only recording) although its cost is above what the budget leaves:
 * it cannot run at full quality here, so it starts degraded (StrideController `startShort`).
 */
export function startsShort(r: AdmissionResult): boolean {
  return r.ok && r.cost > r.free + 1e-9;
}

export function admit(i: AdmissionInput): AdmissionResult {
  const used = i.active.reduce((s, n) => s + recordingCost(i.model, n), 0);
  const free = i.budgetCores * i.usable - used;
  const cost = recordingCost(i.model, i.wanted);
  // The first recording is always admitted: a process that can never record is a configuration
  // error, and refusing it would hide that behind 503s.
  return { ok: i.active.length === 0 || cost <= free + 1e-9, cost, free };
}
