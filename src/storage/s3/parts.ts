/**
 * Part arithmetic for the live multipart upload. Pure.
 *
 * A part is cut at the first fragment boundary at or after its target size, so every part but the
 * last is at least the target (S3's 5 MiB minimum holds) and at most target + one fragment.
 * Targets grow with the part number so that any recording fits in S3's 10,000 parts without
 * knowing its length in advance: the base size for parts 1..PARTS_PER_STEP, twice that for the
 * next PARTS_PER_STEP, and so on (capped at MAX_TARGET). Memory per recording is one part body
 * (the one being uploaded), so it stays at the base size for ordinary calls.
 */
export const S3_MIN_PART_BYTES = 5 * 1024 * 1024;
export const S3_MAX_PARTS = 10_000;
export const S3_MAX_PART_BYTES = 5 * 1024 * 1024 * 1024;
/** Parts per doubling step (of S3's 10,000; a store with fewer parts doubles every fifth of them). */
export const PARTS_PER_STEP = 2000;
/** Largest target we ever ask for (keeps one part body in memory bounded). */
export const MAX_TARGET_BYTES = 512 * 1024 * 1024;

/**
 * Target size of part `partNumber` (1-based) for a configured base size, on a store that takes
 * part numbers up to `maxParts` (Swift's s3api: 1000 by default).
 */
export function partTargetBytes(partNumber: number, baseBytes: number, maxParts: number = S3_MAX_PARTS): number {
  if (!Number.isInteger(partNumber) || partNumber < 1) throw new RangeError(`part number ${partNumber}`);
  const base = Math.max(baseBytes, S3_MIN_PART_BYTES);
  const perStep = Math.max(1, Math.floor((PARTS_PER_STEP * Math.min(maxParts, S3_MAX_PARTS)) / S3_MAX_PARTS));
  const step = Math.floor((partNumber - 1) / perStep);
  return Math.min(base * 2 ** step, MAX_TARGET_BYTES);
}

/**
 * How many parts a stream of `totalBytes` needs when fragments are at most `maxFragmentBytes`
 * (worst case for part count: each part ends exactly at its target), and the largest target used.
 */
export function partsNeeded(totalBytes: number, baseBytes: number, maxParts: number = S3_MAX_PARTS): { parts: number; largestTargetBytes: number } {
  let left = totalBytes;
  let n = 0;
  let largest = 0;
  while (left > 0) {
    n++;
    const t = partTargetBytes(n, baseBytes, maxParts);
    largest = t;
    left -= t;
  }
  return { parts: Math.max(n, 1), largestTargetBytes: largest || partTargetBytes(1, baseBytes, maxParts) };
}

/** Bytes that fit in `maxParts` parts (the longest recording the schedule supports). */
export function capacityBytes(baseBytes: number, maxParts: number = S3_MAX_PARTS): number {
  let total = 0;
  for (let n = 1; n <= maxParts; n++) total += partTargetBytes(n, baseBytes, maxParts);
  return total;
}

/** Bytes of a recording of `seconds` at `bitsPerSecond`. */
export function bytesFor(seconds: number, bitsPerSecond: number): number {
  return Math.ceil((seconds * bitsPerSecond) / 8);
}
