import { fragmentEndMs, lastMoofOffset, parseInit, wholeFragmentsLength } from '../../src/storage/s3/fmp4';

const box = (type: string, ...payload: Buffer[]): Buffer => {
  const body = Buffer.concat(payload);
  const h = Buffer.alloc(8);
  h.writeUInt32BE(8 + body.length, 0);
  h.write(type, 4, 'latin1');
  return Buffer.concat([h, body]);
};
const u32 = (...v: number[]): Buffer => {
  const b = Buffer.alloc(4 * v.length);
  v.forEach((x, i) => b.writeUInt32BE(x, i * 4));
  return b;
};
const full = (version: number, flags: number): Buffer => u32((version << 24) | flags);

// moov with two tracks: video (id 1, 90 kHz) and audio (id 2, 48 kHz, trex default 1024).
const trak = (id: number, timescale: number): Buffer =>
  box('trak', box('tkhd', full(0, 3), u32(0, 0, id, 0, 0)), box('mdia', box('mdhd', full(0, 0), u32(0, 0, timescale, 0))));
const init = Buffer.concat([
  box('ftyp', Buffer.from('isom'), u32(512)),
  box('moov', box('mvhd', full(0, 0), u32(0, 0, 1000, 0)), trak(1, 90000), trak(2, 48000),
    box('mvex', box('trex', full(0, 0), u32(1, 1, 3000, 0, 0)), box('trex', full(0, 0), u32(2, 1, 1024, 0, 0)))),
]);
// A fragment: video 60 samples with explicit durations (3000 each) from t=2 s; audio 94 samples default duration.
const fragment = (startS: number): Buffer => {
  const vtrun = box('trun', full(0, 0x100 | 0x1), u32(60, 0), ...Array.from({ length: 60 }, () => u32(3000)));
  const vtraf = box('traf', box('tfhd', full(0, 0x20000), u32(1)), box('tfdt', full(1, 0), u32(0, startS * 90000)), vtrun);
  const atraf = box('traf', box('tfhd', full(0, 0x20000), u32(2)), box('tfdt', full(0, 0), u32(startS * 48000)), box('trun', full(0, 0x1), u32(94, 0)));
  return Buffer.concat([box('moof', box('mfhd', full(0, 0), u32(1)), vtraf, atraf), box('mdat', Buffer.alloc(1000, 7))]);
};

describe('fragmented MP4 helpers', () => {
  test('media end time of a fragment: tfdt + sample durations, the longest track', () => {
    const info = parseInit(init)!;
    expect(info.tracks.get(1)).toEqual({ timescale: 90000, defaultDuration: 3000 });
    expect(info.tracks.get(2)).toEqual({ timescale: 48000, defaultDuration: 1024 });
    // video: 2 s + 60 × 3000/90000 = 4 s; audio: 2 s + 94 × 1024/48000 = 4.005 s
    expect(fragmentEndMs(fragment(2), info)).toBe(4005);
  });

  test('whole-fragment prefix of a torn byte run', () => {
    const f1 = fragment(0);
    const f2 = fragment(2);
    const run = Buffer.concat([init, f1, f2]);
    expect(wholeFragmentsLength(run)).toBe(run.length);
    for (const cut of [1, 8, 100, f2.length - 1]) expect(wholeFragmentsLength(run.subarray(0, run.length - cut))).toBe(init.length + f1.length);
    expect(wholeFragmentsLength(Buffer.concat([init, f1.subarray(0, 50)]))).toBe(0);
    expect(wholeFragmentsLength(Buffer.concat([f1, f2]))).toBe(f1.length + f2.length);
    expect(lastMoofOffset(run)).toBe(init.length + f1.length);
  });
});
