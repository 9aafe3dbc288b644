/**
 * The pure parts of the worker design: the wire protocol, fragment continuation (renumber and
 * re-time an fMP4 fragment so a new encoder's output follows a dead one's), and admission.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encode, MessageReader, type Message } from '../../src/worker/protocol';
import { boxes, fragmentSequence, fragmentTrackEnds, parseInit, shiftFragment } from '../../src/storage/s3/fmp4';
import { admit, recordingCost } from '../../src/pipeline/admission';
import { DEBIAN_FFMPEG } from '../helpers/media';

describe('worker protocol', () => {
  test('messages come out whole and in order however the stream is cut', () => {
    const big = Buffer.alloc(300_000, 7);
    const stream = Buffer.concat([
      ...encode(1, { id: 'a', n: 1 }),
      ...encode(4, { n: 1, t: 90000, k: true }, big),
      ...encode(5, { n: 1, t: 960 }, Buffer.from([1, 2, 3])),
      ...encode(6, {}),
    ]);
    for (const cut of [1, 3, 9, 4096, 65536, stream.length]) {
      const got: Message[] = [];
      const r = new MessageReader();
      for (let o = 0; o < stream.length; o += cut) r.push(stream.subarray(o, o + cut), (m) => got.push(m));
      expect(got.map((m) => m.type)).toEqual([1, 4, 5, 6]);
      expect(got[0].header).toEqual({ id: 'a', n: 1 });
      expect(got[0].payload).toBeNull();
      expect(got[1].payload!.equals(big)).toBe(true);
      expect([...got[2].payload!]).toEqual([1, 2, 3]);
    }
  });

  test('a corrupt length is an error, not a hang or a huge allocation', () => {
    const r = new MessageReader();
    const bad = Buffer.alloc(16);
    bad.writeUInt32BE(0xfffffff0, 0);
    expect(() => r.push(bad, () => undefined)).toThrow(/bad message size/);
  });
});

describe('fragment continuation', () => {
  let file: string;
  beforeAll(() => {
    file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-frag-')), 'a.mp4');
    execFileSync(DEBIAN_FFMPEG, ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=s=160x90:r=30:d=3', '-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=3',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '60', '-c:a', 'aac', '-ac', '1', '-f', 'mp4', '-movflags', 'empty_moov+default_base_moof', '-frag_duration', '1000000', file]);
  });
  afterAll(() => fs.rmSync(path.dirname(file), { recursive: true, force: true }));

  test('shiftFragment moves a fragment on by sequence and per-track decode time', () => {
    const buf = fs.readFileSync(file);
    const init = parseInit(buf)!;
    const moofs = [...boxes(buf)].filter((b) => b.type === 'moof');
    expect(moofs.length).toBeGreaterThanOrEqual(3);
    const second = Buffer.from(buf.subarray(moofs[1].start, moofs[2].start));
    const before = fragmentTrackEnds(second, init);
    expect(fragmentSequence(second)).toBe(2);
    shiftFragment(second, 10, new Map([[1, 15360 * 5], [2, 48000 * 5]]));
    expect(fragmentSequence(second)).toBe(12);
    const after = fragmentTrackEnds(second, init);
    expect(after.get(1)! - before.get(1)!).toBe(15360 * 5);
    expect(after.get(2)! - before.get(2)!).toBe(48000 * 5);
  });
});

describe('admission', () => {
  const model = { base: 0.45, perSource: 0.08 };
  test('admits what fits in the usable share of the budget, refuses the rest', () => {
    expect(recordingCost(model, 4)).toBeCloseTo(0.77);
    // 2 cores × 0.8 = 1.6: two four-person recordings fit, a third does not.
    expect(admit({ budgetCores: 2, usable: 0.8, model, active: [4], wanted: 4 }).ok).toBe(true);
    const third = admit({ budgetCores: 2, usable: 0.8, model, active: [4, 4], wanted: 4 });
    expect(third.ok).toBe(false);
    expect(third.free).toBeCloseTo(0.06);
    // Nine people cost more than four.
    expect(admit({ budgetCores: 2, usable: 0.8, model, active: [4], wanted: 9 }).ok).toBe(false);
  });

  test('the first recording is always admitted (a budget too small is a configuration error, not a 503)', () => {
    expect(admit({ budgetCores: 0.5, usable: 0.8, model, active: [], wanted: 9 }).ok).toBe(true);
  });
});
