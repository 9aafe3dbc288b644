import { LineTail, parseProgressLine, parseVersion } from '../../src/pipeline/ffmpegOutput';
import { Mixer, PcmJitterBuffer, PictureDelay, BLOCK_BYTES } from '../../src/pipeline/audio';
import { Mp4Splitter } from '../../src/pipeline/Mp4Splitter';
import { FrameTicks } from '../../src/pipeline/FrameTicks';
import { ivfFileHeader, ivfFrameHeader, parseIvf, vp8KeyframeInfo } from '../../src/media/ivf';
import { splitAnnexBAccessUnits } from '../../src/media/SyntheticClip';
import { loadConfig, ConfigError } from '../../src/config';
import { parseArgs } from '../../src/cli/args';
import { TesseraError, toTesseraError } from '../../src/errors';

describe('FFmpeg output parsers (lines captured from 4.1 and 5.1)', () => {
  test('progress lines', () => {
    expect(parseProgressLine('frame=  361 fps= 30 q=-1.0 Lsize=    3823kB time=00:00:12.08 bitrate=2592.1kbits/s speed=1.09x')).toEqual({ frame: 361, fps: 30, sizeKiB: 3823, time: 12.08, speed: 1.09 });
    expect(parseProgressLine('frame=    1 fps=0.0 q=0.0 size=       0kB time=-577014:32:22.77 bitrate=  -0.0kbits/s speed=N/A')).toMatchObject({ frame: 1, time: -(577014 * 3600 + 32 * 60 + 22.77) });
    expect(parseProgressLine('size=     512kB time=00:01:00.00 bitrate=  69.9kbits/s speed=  60x')).toEqual({ sizeKiB: 512, time: 60, speed: 60 });
    expect(parseProgressLine('Guessed Channel Layout for Input Stream #1.0 : mono')).toBeNull();
  });
  test('versions', () => {
    expect(parseVersion('ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2026 the FFmpeg developers')).toEqual([5, 1]);
    expect(parseVersion('ffmpeg version N-47683-g0e8eb07980-static https://johnvansickle.com/ffmpeg/')).toBeNull();
  });
  test('the stderr tail is bounded, keeps one progress line, and summarises errors', () => {
    const t = new LineTail(3);
    t.push('frame=1 fps=0\rframe=2 fps=0\r');
    t.push('[vp8 @ 0x1] Discarding interframe without a prior keyframe!\n');
    t.push('pipe:0: Invalid data found when processing input\nextra\nmore\n');
    expect(t.lines.length).toBe(3);
    expect(t.summary()).toBe('pipe:0: Invalid data found when processing input | extra | more');
  });
});

describe('audio', () => {
  const block = (v: number) => { const b = Buffer.alloc(BLOCK_BYTES); for (let i = 0; i < BLOCK_BYTES; i += 2) b.writeInt16LE(v, i); return b; };
  test('jitter buffer waits for its prebuffer, plays, runs dry into silence, caps latency', () => {
    const j = new PcmJitterBuffer({ prebufferMs: 60, maxMs: 100 });
    j.push(block(100), 0);
    expect(j.pull(0)).toBeNull(); // 20 ms < 60 ms prebuffer
    j.push(block(100), 20); j.push(block(100), 40);
    expect(j.pull(40)!.readInt16LE(0)).toBe(100);
    expect(j.pull(60)).not.toBeNull();
    expect(j.pull(80)).not.toBeNull();
    expect(j.pull(100)).toBeNull();
    expect(j.underruns).toBe(1);
    for (let i = 0; i < 10; i++) j.push(block(i), 100);
    expect(j.queuedMs).toBeCloseTo(100, 0);
    expect(j.droppedBytes).toBe(5 * BLOCK_BYTES);
  });
  test('it starts at exactly the age asked for, whatever the packets\' phase, and holds it', () => {
    // Packets every 20 ms at several phases against the blocks, due every 20 ms.
    for (const phase of [0, 7, 13, 19]) {
      for (const want of [60, 75, 93]) {
        // Once playing, each block's first sample is `want` old (to the sample): the age after a
        // pull plus the block taken.
        const j = new PcmJitterBuffer({ prebufferMs: 60 });
        const got: number[] = [];
        for (let k = 0; k < 100; k++) {
          j.push(block(k + 1), k * 20 + phase);
          const due = k * 20 + 20;
          if (j.pull(due, want)) got.push(j.ageMs(due) + 20);
        }
        expect(got.length).toBeGreaterThan(90);
        for (const age of got) expect(age).toBeCloseTo(want, 1);
        expect(j.underruns).toBe(0);
        expect(j.paddedBytes).toBe(0);
      }
    }
  });
  test('after a burst the queue settles back to its age, so a source cannot stay late', () => {
    const j = new PcmJitterBuffer({ prebufferMs: 60, maxMs: 400, settleBlocks: 25 });
    for (let i = 0; i < 15; i++) j.push(block(i), 0); // a 300 ms burst
    let t = 0;
    for (let k = 0; k < 60; k++) { t += 20; j.pull(t, 60); j.push(block(0), t); } // steady state: one in, one out
    expect(j.queuedMs).toBeLessThanOrEqual(60);
    expect(j.droppedBytes).toBeGreaterThan(0);
  });
  test("a sender's clock a little fast or slow (drift) never moves its audio by more than the tolerance, however long the call", () => {
    // A browser's audio clock is not the server's: tens of ppm apart, up to a thousand on a cheap
    // sound card. Placed by arrival, the excess (or the shortfall) shows up as the queue's age
    // creeping, and each settle window corrects it once it exceeds the tolerance: the audio never
    // drifts from the pictures, which are placed by arrival too. One hour at ±100 ppm, ten minutes
    // at ±1000 ppm, 20-ms packets, pulls on the worker's own 20-ms clock.
    for (const [ppm, minutes] of [[100, 60], [-100, 60], [1000, 10], [-1000, 10]]) {
      const j = new PcmJitterBuffer({ prebufferMs: 60 });
      const rate = 1 + ppm / 1e6; // audio made per second of the server's clock
      const blocks = (minutes * 60_000) / 20;
      let sent = 0;
      let lo = Infinity;
      let hi = -Infinity;
      let played = 0;
      for (let m = 1; m <= blocks; m++) {
        const due = m * 20 + 7;
        while ((sent * 20) / rate <= due) j.push(block(1), (sent++ * 20) / rate);
        if (j.pull(due, 60) && m > 50) {
          const age = j.ageMs(due) + 20;
          lo = Math.min(lo, age);
          hi = Math.max(hi, age);
          played++;
        }
      }
      expect({ ppm, played: played >= blocks - 51, underruns: j.underruns }).toEqual({ ppm, played: true, underruns: 0 });
      expect(lo).toBeGreaterThanOrEqual(60 - 9);
      expect(hi).toBeLessThanOrEqual(60 + 9);
      // What was corrected is the drift itself, not more: |ppm| × the call's length.
      const correctedMs = ((ppm > 0 ? j.droppedBytes : j.paddedBytes) / 96);
      expect(Math.abs(correctedMs - (Math.abs(ppm) / 1e6) * minutes * 60_000)).toBeLessThan(20);
    }
  });
  test('a source whose pictures come to wait longer gets silence first, not early audio', () => {
    const j = new PcmJitterBuffer({ prebufferMs: 60, settleBlocks: 25 });
    let t = 0;
    for (let k = 0; k < 40; k++) { j.push(block(1), t); t += 20; j.pull(t, 60); }
    expect(j.paddedBytes).toBe(0);
    for (let k = 0; k < 60; k++) { j.push(block(1), t); t += 20; j.pull(t, 90); }
    expect(j.paddedBytes / 96).toBeCloseTo(30, 0);
    expect(j.underruns).toBe(0);
  });
  test('picture delay: the mean of the last half second of pictures; a start-up backlog is soon forgotten', () => {
    const d = new PictureDelay(16);
    expect(d.ms).toBe(16);
    d.note(30);
    expect(d.ms).toBe(30);
    for (let i = 0; i < 200; i++) d.note(i % 2 ? 2 : 32);
    expect(d.ms).toBeGreaterThan(12);
    expect(d.ms).toBeLessThan(22);
    d.note(-5000); d.note(NaN); d.note(5000);
    expect(d.ms).toBeGreaterThan(12);
    // A reset (decoded tiles from now on) forgets the past: the default, then the first note at once.
    for (let i = 0; i < 60; i++) d.note(75);
    d.reset();
    expect(d.ms).toBe(16);
    d.note(40);
    expect(d.ms).toBe(40);
    // A decoder's start-up backlog (pictures that waited 200-500 ms) is forgotten a window after
    // the queue catches up: the steady figure exactly, not a memory of the start for seconds.
    d.reset();
    for (const ms of [538, 315, 171, 174, 177, 183, 181, 184, 185, 184, 185, 185]) d.note(ms);
    expect(d.ms).toBeGreaterThan(150);
    for (let i = 0; i < PictureDelay.WINDOW; i++) d.note(i % 2 ? 110 : 126);
    expect(d.ms).toBe(118);
  });
  test('the mix sums, and never clips: a gain brings loud sums under full scale', () => {
    const m = new Mixer();
    expect(m.mix([block(1000), block(2000), null]).pcm.readInt16LE(10)).toBe(3000);
    const loud = m.mix([block(20000), block(20000), block(20000)]);
    expect(Math.abs(loud.pcm.readInt16LE(0))).toBeLessThanOrEqual(Mixer.CEILING);
    expect(Mixer.CEILING).toBeLessThan(26100); // −2 dBFS: room for the AAC decoder's overshoot
    expect(loud.levels.map((l) => Math.round(l * 100))).toEqual([61, 61, 61]);
    expect(m.gain).toBeLessThan(1);
  });
});

describe('frame ticks', () => {
  // Frames at 30 a second (RTP steps of 3000 at 90 kHz) against ticks at 30 a second; arrival in
  // fractional ticks. A tiny pseudo-random jitter, so the test is the same every run.
  const jitter = (k: number, maxMs: number) => ((((k * 7919) % 101) / 100) * maxMs * 30) / 1000;
  test('frames land on consecutive ticks whatever their phase, with jitter inside the margin', () => {
    for (const phase of [0.02, 0.1, 0.5, 0.9, 0.98]) {
      const ft = new FrameTicks({ fps: 30, marginMs: 20 });
      const ticks: number[] = [];
      for (let k = 0; k < 300; k++) {
        const arrival = 10 + k + phase + jitter(k, 15);
        const t = Math.max(Math.floor(arrival) + 1, ft.place(123456 + k * 3000, arrival));
        ticks.push(t);
      }
      // After the first frames (the quickest one may come a little later than the first), one
      // new frame per tick: no tick gets two and none is skipped.
      const steps = ticks.slice(30).map((t, i) => t - ticks[29 + i]);
      expect(steps.every((d) => d === 1)).toBe(true);
      // Never more than a tick plus the margin after arriving.
      ticks.forEach((t, k) => expect(t - (10 + k + phase + jitter(k, 15))).toBeLessThanOrEqual(1 + 0.6 + 1e-9));
    }
  });
  test("a sender's clock a little fast or slow (drift): its frames stay on time for the whole call", () => {
    // The offset is the quickest arrival of the last 2 s, so it follows a sender whose clock runs
    // ±1000 ppm from the worker's for ten minutes (a third of a second of drift): no frame ever
    // misses its tick, none waits longer than a tick plus the margin.
    for (const ppm of [1000, -1000]) {
      const rate = 1 + ppm / 1e6;
      const ft = new FrameTicks({ fps: 30, marginMs: 20 });
      let late = 0;
      let worst = 0;
      for (let k = 0; k < 18_000; k++) {
        const arrival = 10 + k / rate + 0.4 + jitter(k, 15);
        const placed = ft.place(k * 3000, arrival);
        if (k >= 30 && placed < Math.floor(arrival) + 1) late++;
        worst = Math.max(worst, Math.max(Math.floor(arrival) + 1, placed) - arrival);
      }
      expect({ ppm, late, onTime: worst <= 1 + 0.6 + 1e-9 }).toEqual({ ppm, late: 0, onTime: true });
    }
  });
  test('by arrival alone (the old rule), the same jitter makes a tile judder at some phases', () => {
    const phase = 0.98;
    const ticks = Array.from({ length: 300 }, (_, k) => Math.floor(10 + k + phase + jitter(k, 15)) + 1);
    const steps = ticks.slice(1).map((t, i) => t - ticks[i]);
    expect(steps.filter((d) => d !== 1).length).toBeGreaterThan(20);
  });
  test('a frame later than the margin is left to the caller (shown at the next tick it can make)', () => {
    const ft = new FrameTicks({ fps: 30, marginMs: 20 });
    for (let k = 0; k < 30; k++) ft.place(k * 3000, 5 + k + 0.5);
    const late = 5 + 30 + 0.5 + 2; // 67 ms late
    expect(ft.place(30 * 3000, late)).toBeLessThan(Math.floor(late) + 1);
  });
  test('RTP wraps are steps; a jump starts the estimate again', () => {
    const ft = new FrameTicks({ fps: 30, marginMs: 20 });
    const base = 2 ** 32 - 3000 * 10;
    const ticks: number[] = [];
    for (let k = 0; k < 20; k++) ticks.push(ft.place((base + k * 3000) >>> 0, 100 + k + 0.3));
    expect(ticks.slice(1).map((t, i) => t - ticks[i]).every((d) => d === 1)).toBe(true);
    expect(ft.resets).toBe(0);
    const t = ft.place(123456789, 120.3); // another stream
    expect(ft.resets).toBe(1);
    expect(t).toBeGreaterThanOrEqual(121);
    expect(t).toBeLessThanOrEqual(122);
    expect(ft.place(123456789 + 3000, 121.3)).toBe(t + 1);
  });
});

describe('containers', () => {
  const box = (type: string, len: number) => { const b = Buffer.alloc(len); b.writeUInt32BE(len, 0); b.write(type, 4, 'latin1'); return b; };
  test('MP4 splitter: init, then one segment per moof+mdat, however the bytes are chunked', () => {
    const stream = Buffer.concat([box('ftyp', 24), box('moov', 100), box('moof', 50), box('mdat', 300), box('moof', 40), box('mdat', 200)]);
    const s = new Mp4Splitter();
    const segs = [];
    for (let o = 0; o < stream.length; o += 7) segs.push(...s.push(stream.subarray(o, o + 7)));
    segs.push(...s.end());
    expect(segs.map((x) => [x.kind, x.index, x.data.length])).toEqual([['init', 0, 124], ['fragment', 1, 350], ['fragment', 2, 240]]);
    expect(Buffer.concat(segs.map((x) => x.data)).equals(stream)).toBe(true);
    expect(() => new Mp4Splitter().push(Buffer.from([0, 0, 0, 3, 1, 2, 3, 4]))).toThrow(/invalid box size/);
    // The encoder died after writing a moof and half its mdat: that fragment is not emitted.
    const torn = new Mp4Splitter();
    const head = torn.push(Buffer.concat([box('ftyp', 24), box('moov', 100), box('moof', 50), box('mdat', 300), box('moof', 40), box('mdat', 200).subarray(0, 120)]));
    expect([...head, ...torn.end()].map((x) => x.kind + x.index)).toEqual(['init0', 'fragment1']);
    const trailer = new Mp4Splitter();
    trailer.push(Buffer.concat([box('ftyp', 24), box('moov', 100), box('moof', 50), box('mdat', 300), box('mfra', 16)]));
    expect(trailer.end().map((x) => x.data.toString('latin1', 4, 8))).toEqual(['mfra']);
  });
  test('IVF header and frames round-trip; VP8 keyframe size is read', () => {
    const kf = Buffer.from([0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01, 0, 0]);
    const ivf = Buffer.concat([ivfFileHeader(640, 360), ivfFrameHeader(kf.length, 0n), kf]);
    expect(parseIvf(ivf)).toEqual({ width: 640, height: 360, frames: [kf] });
    expect(vp8KeyframeInfo(kf)).toEqual({ width: 640, height: 360 });
    expect(vp8KeyframeInfo(Buffer.from([0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toBeNull();
  });
  test('Annex-B access units split at AUDs', () => {
    const au = (n: number) => Buffer.from([0, 0, 0, 1, 9, 0xf0, 0, 0, 1, 0x65, n]);
    expect(splitAnnexBAccessUnits(Buffer.concat([au(1), au(2)])).map((b) => b[b.length - 1])).toEqual([1, 2]);
  });
});

describe('config', () => {
  test('defaults when nothing is set', () => {
    const c = loadConfig({});
    expect([c.port, c.host, c.recordingsDir, c.video.width, c.video.height, c.video.fps, c.video.bitrate, c.maxRecordings]).toEqual([8080, '127.0.0.1', './recordings', 1280, 720, 30, 2_500_000, 4]);
    expect(Object.isFrozen(c.video)).toBe(true);
  });
  test('every bad value is reported at once, naming the variable', () => {
    try {
      loadConfig({ PORT: 'http', VIDEO_WIDTH: '1281', S3_SSE: 'des', HOST: '0.0.0.0', RTC_MIN_PORT: '50000' });
      throw new Error('expected a ConfigError');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const msg = (err as Error).message;
      for (const v of ['PORT', 'VIDEO_WIDTH', 'S3_SSE', 'HOST', 'RTC_MIN_PORT']) expect(msg).toContain(v);
    }
  });
  test('a wide HOST is allowed once AUTH_SECRET and API_TOKEN are set', () => {
    expect(loadConfig({ HOST: '0.0.0.0', AUTH_SECRET: 's'.repeat(32), API_TOKEN: 't'.repeat(32) }).host).toBe('0.0.0.0');
    expect(() => loadConfig({ HOST: '0.0.0.0', AUTH_SECRET: 's'.repeat(32) })).toThrow(/API_TOKEN/);
  });
});

describe('cli args and errors', () => {
  test('args', () => {
    expect(parseArgs(['--participants', '4', '--churn', '--out=x.mp4'], { participants: 'number', churn: 'boolean', out: 'string' })).toEqual({ participants: 4, churn: true, out: 'x.mp4' });
    expect(() => parseArgs(['--bogus'], { out: 'string' })).toThrow(/unknown argument --bogus/);
    expect(() => parseArgs(['--participants', 'many'], { participants: 'number' })).toThrow(/not a number/);
  });
  test('errors carry code, owner and retryability', () => {
    const e = new TesseraError('REC_ERR_CAPACITY', 'full');
    expect([e.http, e.who, e.retryable, JSON.stringify(e)]).toEqual([503, 'system', true, '{"code":"REC_ERR_CAPACITY","message":"full"}']);
    expect(toTesseraError(new Error('x')).code).toBe('REC_ERR_INTERNAL');
  });
});

describe('recording status', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { nextStatus } = require('../../src/pipeline/Recording') as typeof import('../../src/pipeline/Recording');
  test('moves forward only; available and failed are final; failed is reachable from any live state', () => {
    expect(nextStatus('starting', 'recording')).toBe('recording');
    expect(nextStatus('recording', 'starting')).toBe('recording');
    expect(nextStatus('stopping', 'recording')).toBe('stopping');
    expect(nextStatus('stopping', 'available')).toBe('available');
    expect(nextStatus('available', 'failed')).toBe('available');
    expect(nextStatus('failed', 'available')).toBe('failed');
    for (const s of ['starting', 'recording', 'stopping'] as const) expect(nextStatus(s, 'failed')).toBe('failed');
  });
});
