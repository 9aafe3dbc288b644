import type { RecordingStatus } from './types';

/** A recording's status only moves forward (server side and worker side alike). */
const STATUS_RANK: Record<RecordingStatus, number> = { starting: 0, recording: 1, stopping: 2, available: 3, failed: 3 };

/**
 * The status machine: forward only; `available` and `failed` are final; `failed` can be reached
 * from any live state. Returns the status after asking for `wanted` (unchanged if not allowed).
 */
export function nextStatus(current: RecordingStatus, wanted: RecordingStatus): RecordingStatus {
  if (current === 'available' || current === 'failed') return current;
  if (wanted === 'failed') return 'failed';
  return STATUS_RANK[wanted] > STATUS_RANK[current] ? wanted : current;
}
