import {
  MAX_TARGET_BYTES, PARTS_PER_STEP, S3_MAX_PARTS, S3_MIN_PART_BYTES, bytesFor, capacityBytes, partTargetBytes, partsNeeded,
} from '../../src/storage/s3/parts';

const MiB = 1024 * 1024;

describe('S3 part arithmetic', () => {
  test('8 hours at 8 Mbit/s fits in 10,000 parts with the default 8 MiB base and with the 5 MiB minimum', () => {
    const total = bytesFor(8 * 3600, 8_000_000);
    expect(total).toBe(28_800_000_000); // 28.8 GB
    // Fixed 8 MiB parts would need 3,434 parts; fixed 5 MiB parts 5,494: both fit, and the growing
    // schedule fits any length up to capacityBytes.
    expect(Math.ceil(total / (8 * MiB))).toBe(3434);
    expect(Math.ceil(total / (5 * MiB))).toBe(5494);
    const at8 = partsNeeded(total, 8 * MiB);
    expect(at8.parts).toBe(2717); // 2,000 × 8 MiB (16.8 GB) + 717 × 16 MiB
    expect(at8.largestTargetBytes).toBe(16 * MiB); // memory: one part body, ≤ 16 MiB + one fragment
    const at5 = partsNeeded(total, 5 * MiB);
    expect(at5.parts).toBe(3747); // 2,000 × 5 MiB (10.5 GB) + 1,747 × 10 MiB
    expect(at5.parts).toBeLessThanOrEqual(S3_MAX_PARTS);
    expect(at5.largestTargetBytes).toBe(10 * MiB);
  });

  test('12 hours at 50 Mbit/s (the highest VIDEO_BITRATE) still fits; capacity is 520 GB at the default base', () => {
    const total = bytesFor(12 * 3600, 50_000_000);
    expect(total).toBe(270_000_000_000);
    expect(capacityBytes(8 * MiB)).toBe(2000 * 8 * MiB * (1 + 2 + 4 + 8 + 16));
    expect(capacityBytes(8 * MiB)).toBeGreaterThan(total);
    const n = partsNeeded(total, 8 * MiB);
    expect(n.parts).toBeLessThanOrEqual(S3_MAX_PARTS);
    expect(n.largestTargetBytes).toBeLessThanOrEqual(MAX_TARGET_BYTES);
  });

  test('targets: never below 5 MiB, constant for a step, doubling after, capped', () => {
    expect(partTargetBytes(1, 1)).toBe(S3_MIN_PART_BYTES);
    expect(partTargetBytes(1, 8 * MiB)).toBe(8 * MiB);
    expect(partTargetBytes(PARTS_PER_STEP, 8 * MiB)).toBe(8 * MiB);
    expect(partTargetBytes(PARTS_PER_STEP + 1, 8 * MiB)).toBe(16 * MiB);
    expect(partTargetBytes(S3_MAX_PARTS, 8 * MiB)).toBe(128 * MiB);
    expect(partTargetBytes(S3_MAX_PARTS, 1024 * MiB)).toBe(MAX_TARGET_BYTES);
    for (let n = 2; n <= S3_MAX_PARTS; n++) expect(partTargetBytes(n, 5 * MiB)).toBeGreaterThanOrEqual(partTargetBytes(n - 1, 5 * MiB));
    expect(() => partTargetBytes(0, 8 * MiB)).toThrow(RangeError);
  });

  test('a store with part numbers up to 1000 (Swift): the schedule doubles every 200 parts, 8 h at 8 Mbit/s still fits', () => {
    expect(partTargetBytes(200, 8 * MiB, 1000)).toBe(8 * MiB);
    expect(partTargetBytes(201, 8 * MiB, 1000)).toBe(16 * MiB);
    expect(partTargetBytes(1000, 8 * MiB, 1000)).toBe(128 * MiB);
    expect(capacityBytes(8 * MiB, 1000)).toBe(200 * 8 * MiB * (1 + 2 + 4 + 8 + 16));
    // S3's schedule on such a store: part 1001 refused after 1000 × 8 MiB = 8.4 GB (2.3 h at 8 Mbit/s).
    expect(bytesFor(8 * 3600, 8_000_000)).toBeGreaterThan(1000 * 8 * MiB);
    const n = partsNeeded(bytesFor(8 * 3600, 8_000_000), 8 * MiB, 1000);
    expect(n.parts).toBe(828);
    expect(n.largestTargetBytes).toBe(128 * MiB);
    // 2 h at 2.5 Mbit/s: 200 parts of 8 MiB, then 16 MiB ones (memory: one part body, 16 MiB).
    expect(partsNeeded(bytesFor(2 * 3600, 2_500_000), 8 * MiB, 1000).largestTargetBytes).toBe(16 * MiB);
  });

  test('the default recording (2.5 Mbit/s) cuts a part about every 27 s', () => {
    expect((8 * MiB * 8) / 2_500_000).toBeCloseTo(26.8, 1);
  });
});
