import { FrameAssembler, type RtpIn } from '../../src/rtc/FrameAssembler';
import { depacketize, isH264KeyframeStart, isVp8KeyframeStart } from '../../src/rtc/depacketize';
import { packetize } from '../../src/rtc/packetize';

const OPTS = { latencyMs: 100, maxPackets: 500, maxFrameBytes: 1 << 20 };

function vp8Frame(key: boolean, n: number, size = 3000): Buffer {
  const b = Buffer.alloc(size, n & 0xff);
  b[0] = key ? 0x10 : 0x11; // frame tag: bit0 = 0 keyframe
  if (key) {
    b[3] = 0x9d; b[4] = 0x01; b[5] = 0x2a;
    b.writeUInt16LE(320, 6);
    b.writeUInt16LE(180, 8);
  }
  return b;
}
function h264Au(key: boolean, n: number): Buffer {
  const sc = Buffer.from([0, 0, 0, 1]);
  const parts = [sc, Buffer.from([0x09, 0xf0])];
  if (key) parts.push(sc, Buffer.from([0x67, 0x42, 0xc0, 0x1f]), sc, Buffer.from([0x68, 0xce, 0x3c, 0x80]));
  const slice = Buffer.alloc(2500, n & 0xff);
  slice[0] = key ? 0x65 : 0x41;
  parts.push(sc, slice);
  return Buffer.concat(parts);
}

function rtp(codec: 'vp8' | 'h264', frames: Buffer[], seq0: number, ts0 = 1000): RtpIn[] {
  const out: RtpIn[] = [];
  let seq = seq0;
  frames.forEach((f, i) => {
    const ps = packetize(codec, f, 1000);
    ps.forEach((p, k) => out.push({ sequenceNumber: seq++ & 0xffff, timestamp: ts0 + i * 3000, marker: k === ps.length - 1, payload: p }));
  });
  return out;
}

describe('FrameAssembler', () => {
  test('VP8: reassembles frames exactly, in order, across a sequence wrap and reordering', () => {
    const frames = [vp8Frame(true, 0), vp8Frame(false, 1), vp8Frame(false, 2), vp8Frame(false, 3)];
    const pkts = rtp('vp8', frames, 65530);
    [pkts[2], pkts[3]] = [pkts[3], pkts[2]]; // reorder
    const a = new FrameAssembler('vp8', OPTS);
    const got = pkts.flatMap((p, i) => a.push(p, i).frames);
    expect(got.map((f) => f.data)).toEqual(frames);
    expect(got[0]).toMatchObject({ keyframe: true, width: 320, height: 180 });
    expect(got.slice(1).every((f) => !f.keyframe)).toBe(true);
  });

  test('asks for a keyframe at start, drops frames until one arrives', () => {
    const frames = [vp8Frame(false, 1), vp8Frame(false, 2), vp8Frame(true, 3), vp8Frame(false, 4)];
    const a = new FrameAssembler('vp8', OPTS);
    const outs = rtp('vp8', frames, 10).map((p, i) => a.push(p, i));
    expect(outs[0].needKeyframe).toBe(true);
    const got = outs.flatMap((o) => o.frames);
    expect(got.map((f) => f.data)).toEqual([frames[2], frames[3]]);
  });

  test('a lost packet is waited for (NACK), then given up: resync on the next keyframe', () => {
    const frames = [vp8Frame(true, 0), vp8Frame(false, 1), vp8Frame(false, 2), vp8Frame(true, 3), vp8Frame(false, 4)];
    const pkts = rtp('vp8', frames, 100);
    const a = new FrameAssembler('vp8', OPTS);
    // frame 1's second packet (index 4) is lost
    const lost = pkts.splice(4, 1)[0];
    let t = 0;
    const got: Buffer[] = [];
    let asked = false;
    for (const p of pkts.slice(0, 6)) got.push(...a.push(p, (t += 5)).frames.map((f) => f.data));
    // the retransmission arrives in time: nothing lost
    got.push(...a.push(lost, (t += 5)).frames.map((f) => f.data));
    for (const p of pkts.slice(6)) {
      const o = a.push(p, (t += 5));
      asked ||= o.needKeyframe;
      got.push(...o.frames.map((f) => f.data));
    }
    expect(got).toEqual(frames);
    expect(asked).toBe(false);

    // same again, the packet never comes: frames 1 and 2 are dropped, 3 (key) and 4 delivered
    const b = new FrameAssembler('vp8', OPTS);
    const got2: Buffer[] = [];
    let needKey = 0;
    t = 0;
    for (const p of pkts) {
      const o = b.push(p, (t += 60));
      needKey += o.needKeyframe ? 1 : 0;
      got2.push(...o.frames.map((f) => f.data));
    }
    got2.push(...b.poll(t + 1000).frames.map((f) => f.data));
    expect(got2).toEqual([frames[0], frames[3], frames[4]]);
    expect(needKey).toBe(2); // at start, and after giving up
  });

  test('H.264: single NALs, FU-A, AUD dropped, keyframe = IDR', () => {
    const frames = [h264Au(true, 0), h264Au(false, 1)];
    const a = new FrameAssembler('h264', OPTS);
    const got = rtp('h264', frames, 5).flatMap((p, i) => a.push(p, i).frames);
    expect(got.length).toBe(2);
    expect(got[0].keyframe).toBe(true);
    expect(got[1].keyframe).toBe(false);
    const strip = (b: Buffer) => b.subarray(6); // the AUD is not packetized
    expect(got[0].data).toEqual(strip(frames[0]));
    expect(got[1].data).toEqual(strip(frames[1]));
  });

  test('garbage payloads never throw and never come out as frames', () => {
    const a = new FrameAssembler('vp8', OPTS);
    const b = new FrameAssembler('h264', OPTS);
    let seq = 0;
    let t = 0;
    for (let i = 0; i < 2000; i++) {
      const payload = Buffer.from(Array.from({ length: (i * 7) % 50 }, (_, k) => (i * 31 + k * 17) & 0xff));
      const p = { sequenceNumber: seq++ & 0xffff, timestamp: Math.floor(i / 3), marker: i % 3 === 2, payload };
      for (const f of [...a.push(p, (t += 1)).frames, ...b.push(p, t).frames]) {
        // whatever passes must at least be structurally a frame of its codec
        expect(f.data.length).toBeGreaterThan(0);
      }
    }
    expect(a.buffered).toBeLessThanOrEqual(OPTS.maxPackets);
  });

  test('keyframe detection', () => {
    expect(isVp8KeyframeStart(packetize('vp8', vp8Frame(true, 0))[0])).toBe(true);
    expect(isVp8KeyframeStart(packetize('vp8', vp8Frame(false, 0))[0])).toBe(false);
    expect(isH264KeyframeStart(packetize('h264', h264Au(true, 0))[0])).toBe(true);
    expect(isH264KeyframeStart(packetize('h264', h264Au(false, 0))[0])).toBe(false);
    expect(depacketize('vp8', [Buffer.from([0x10, 0x00])])).toBeNull();
    expect(depacketize('h264', [Buffer.from([0x7c, 0x05, 1, 2])])).toBeNull(); // FU-A without start
  });
});
