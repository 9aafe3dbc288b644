/**
 * Admission: a recording this process cannot carry is refused at start instead of degrading every
 * recording on the machine. Pure: the budget, the cost model and the recordings are given.
 *
 * Cost of a recording = base + perSource × sources (cameras and screens), in cores, measured by
 * `npm run bench` on the whole tree of one recording (see docs/workers.md), and corrected by what
 * the process's own recordings measure (CostCalibration). The process may use `usable` of its
 * budget for recordings; the rest is the SFU's and the machine's headroom (LiveKit Egress keeps
 * the same margin).
 */
export interface CostModel {
  base: number;
  perSource: number;
}

export interface AdmissionInput {
  budgetCores: number;
  usable: number;
  /** What each recording already running is counted at (cores; CostCalibration.charge). */
  charged: number[];
  /** What the one asked for is expected to cost (cores; CostCalibration.cost). */
  cost: number;
  /**
   * What the server process itself uses now (cores, smoothed): the SFU, signalling, muxing.
   * Up to the budget's share recordings may not take, it is what that share is for; beyond it,
   * it is taken from the recordings' share.
   */
  serverCores?: number;
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

/**
 * Cores of the recordings' share (budget × usable) taken now: the running recordings' charges,
 * and whatever the server process uses beyond the rest of the budget. A meeting whose SFU needs
 * more than its headroom is not starved of CPU by recordings admitted into it.
 */
export function committedCores(i: Pick<AdmissionInput, 'budgetCores' | 'usable' | 'charged' | 'serverCores'>): number {
  const headroom = i.budgetCores * (1 - i.usable);
  return i.charged.reduce((s, c) => s + c, 0) + Math.max(0, (i.serverCores ?? 0) - headroom);
}

export function admit(i: AdmissionInput): AdmissionResult {
  const free = i.budgetCores * i.usable - committedCores(i);
  // The first recording is always admitted: a process that can never record is a configuration
  // error, and refusing it would hide that behind 503s.
  return { ok: i.charged.length === 0 || i.cost <= free + 1e-9, cost: i.cost, free };
}
