/**
 * The parts of the worker design that need no worker: the wire protocol, the server's MP4 muxer
 * continuing one worker's stream with the next one's, and admission.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { backlog, encode, flush, LAZY_MS, MessageReader, send, type Message } from '../../src/worker/protocol';
import { Mp4Muxer } from '../../src/storage/Mp4Muxer';
import { AccessUnitSplitter, avcCodecString, isKeyframe } from '../../src/media/annexb';
import { AdtsSplitter } from '../../src/media/adts';
import { admit, committedCores, recordingCost, startsShort } from '../../src/pipeline/admission';
import { CostCalibration, MAX_FACTOR, MIN_SAMPLES, WARMUP_MS } from '../../src/pipeline/CostCalibration';
import { AAC_FRAME_SAMPLES, AudioEncoder, WRITE_BLOCKS } from '../../src/pipeline/AudioEncoder';
import { BLOCK_SAMPLES } from '../../src/pipeline/audio';
import { logger } from '../../src/logger';
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

  describe('sending', () => {
    let server: net.Server;
    let a: net.Socket;
    let b: net.Socket;
    const chunks: Buffer[] = [];
    const received: Array<{ m: Message; at: number }> = [];
    beforeEach(async () => {
      chunks.length = 0;
      received.length = 0;
      const sockPath = path.join(os.tmpdir(), `tessera-proto-${process.pid}.sock`);
      fs.rmSync(sockPath, { force: true });
      const accepted = new Promise<net.Socket>((res) => (server = net.createServer(res)));
      await new Promise<void>((res) => server.listen(sockPath, res));
      a = net.connect(sockPath);
      b = await accepted;
      const r = new MessageReader();
      b.on('data', (c: Buffer) => {
        chunks.push(c);
        r.push(c, (m) => received.push({ m, at: performance.now() }));
      });
    });
    afterEach(async () => {
      a.destroy();
      b.destroy();
      await new Promise((res) => server.close(res));
    });
    const until = async (n: number) => {
      const t0 = Date.now();
      while (received.length < n && Date.now() - t0 < 2000) await new Promise((res) => setTimeout(res, 2));
    };

    test('the messages of one turn leave as one write, whole and in order', async () => {
      const frame = Buffer.alloc(20_000, 9);
      send(a, 4, { n: 1, t: 3000, k: true }, frame);
      for (let k = 0; k < 50; k++) send(a, 5, { n: 1, t: k * 960, é: 'ü' }, Buffer.from([k]));
      send(a, 6, {});
      expect(backlog(a)).toBeGreaterThan(20_000);
      await until(52);
      expect(received.map((x) => x.m.type)).toEqual([4, ...Array(50).fill(5), 6]);
      expect(received[0].m.payload!.equals(frame)).toBe(true);
      expect(received.slice(1, 51).map((x) => x.m.payload![0])).toEqual([...Array(50).keys()]);
      expect(received[7].m.header).toEqual({ n: 1, t: 6 * 960, é: 'ü' });
      // One write of ~20 kB: the reader may see it cut by the kernel, never as 52 pieces.
      expect(chunks.length).toBeLessThanOrEqual(2);
    });

    test('lazy messages wait for company; any other message takes them with it', async () => {
      // They leave on the wall clock's grid of LAZY_MS (so every outbox of a process leaves in one wake-up).
      // Sent just after a grid line, they wait for the next one. (Where the send lands on the
      // grid is read, not assumed: on a loaded machine the timer that aims just past a line can
      // fire tens of ms late, and a CI run did.)
      await new Promise((r) => setTimeout(r, LAZY_MS - (Date.now() % LAZY_MS) + 2));
      const t0 = performance.now();
      const due = LAZY_MS - (Date.now() % LAZY_MS);
      send(a, 104, { t: 1, k: true }, Buffer.from([1]), LAZY_MS);
      send(a, 110, { p: 0 }, Buffer.from([2]), LAZY_MS);
      await until(2);
      expect(received.length).toBe(2);
      expect(received[0].at - t0).toBeGreaterThanOrEqual(due - 2);
      expect(received[0].at - t0).toBeLessThan(due + 25);
      expect(chunks.length).toBe(1);
      const t1 = performance.now();
      send(a, 110, { p: 1024 }, Buffer.from([3]), LAZY_MS);
      send(a, 102, { info: 'state' });
      await until(4);
      expect(received.map((x) => x.m.type)).toEqual([104, 110, 110, 102]);
      expect(received[3].at - t1).toBeLessThan(LAZY_MS);
    });

    test('flush hands the queue over at once; a closed socket takes nothing', async () => {
      send(a, 110, { p: 0 }, Buffer.from([1]), LAZY_MS);
      flush(a);
      expect(backlog(a)).toBe(a.writableLength);
      await until(1);
      expect(received).toHaveLength(1);
      a.destroy();
      expect(send(a, 110, { p: 1 }, Buffer.from([1]))).toBe(false);
    });
  });

  test('a corrupt length is an error, not a hang or a huge allocation', () => {
    const r = new MessageReader();
    const bad = Buffer.alloc(16);
    bad.writeUInt32BE(0xfffffff0, 0);
    expect(() => r.push(bad, () => undefined)).toThrow(/bad message size/);
  });
});

describe('MP4 muxer (the server side of a recording)', () => {
  let dir: string;
  /** An x264 stream as an epoch makes it: `frames` access units, a keyframe every 30. */
  const encode = (name: string, frames: number, colour: string) => {
    const f = path.join(dir, name);
    execFileSync(DEBIAN_FFMPEG, ['-v', 'error', '-f', 'lavfi', '-i', `color=c=${colour}:s=160x90:r=30:d=${frames / 30}`, '-c:v', 'libx264', '-preset', 'ultrafast', '-x264-params', 'aud=1:bframes=0', '-g', '30', '-f', 'h264', f]);
    const sp = new AccessUnitSplitter();
    const aus = sp.push(fs.readFileSync(f));
    const last = sp.end();
    return last ? [...aus, last] : aus;
  };
  const aac = () => {
    const f = path.join(dir, 'a.aac');
    execFileSync(DEBIAN_FFMPEG, ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=4', '-ac', '1', '-c:a', 'aac', '-f', 'adts', f]);
    return new AdtsSplitter().push(fs.readFileSync(f)).map((x) => x.data);
  };
  beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-mux-')); });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('a second stream continues the first in one MP4: stale media dropped, a gap held, every prefix of whole fragments plays', async () => {
    const first = encode('a.h264', 45, 'red');
    const second = encode('b.h264', 45, 'blue');
    expect(first.length).toBe(45);
    expect(isKeyframe(first[0]) && !isKeyframe(first[1])).toBe(true);
    expect(avcCodecString(first[0])).toMatch(/^avc1\.[0-9a-f]{6}$/);
    const audio = aac();
    const segments: Buffer[] = [];
    const mux = new Mp4Muxer({ fps: 30, width: 160, height: 90, fragmentMs: 1000, onSegment: (s) => segments.push(s.data) });
    first.forEach((au, t) => mux.video(t, au, isKeyframe(au)));
    // The first worker dies after tick 44; the next continues at tick 60 (a gap of 15 ticks)...
    mux.expectKeyframe();
    mux.video(10, second[0], true); // ...a tick back in time is dropped,
    mux.video(61, second[1], false); // a picture before the new keyframe is dropped,
    second.forEach((au, k) => mux.video(60 + k, au, isKeyframe(au)));
    audio.forEach((f, k) => mux.audio(k * 1024, f));
    mux.audio(0, audio[0]); // audio back in time is dropped too
    await mux.finalize();
    expect(mux.error).toBeNull();
    const file = path.join(dir, 'out.mp4');
    fs.writeFileSync(file, Buffer.concat(segments));
    expect(execFileSync(DEBIAN_FFMPEG, ['-v', 'error', '-xerror', '-i', file, '-f', 'null', '-'], { encoding: 'utf8' })).toBe('');
    const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_type,nb_read_frames,duration', '-of', 'json', file], { encoding: 'utf8' }));
    const v = probe.streams.find((s: { codec_type: string }) => s.codec_type === 'video');
    expect(Number(v.nb_read_frames)).toBe(90);
    // 105 ticks: the gap's 15 ticks are the first stream's last picture held.
    expect(Number(v.duration)).toBeCloseTo(105 / 30, 2);
    // The file is init + whole fragments: each prefix of them decodes.
    const init = segments[0];
    expect(init.toString('latin1', 4, 8)).toBe('ftyp');
    const prefix = path.join(dir, 'prefix.mp4');
    fs.writeFileSync(prefix, Buffer.concat(segments.slice(0, 3)));
    expect(execFileSync(DEBIAN_FFMPEG, ['-v', 'error', '-xerror', '-i', prefix, '-f', 'null', '-'], { encoding: 'utf8' })).toBe('');
  });

  test('a long call costs the muxer no memory per packet: 20 minutes of packets, the heap grows under 2 MB, and the closing mfra still lists every fragment', async () => {
    // mediabunny kept every written sample's record (~150 B) to the end: 13 MB for these 20 minutes.
    // Measured in a process of its own (see the helper for why).
    encode('long.h264', 60, 'gray');
    aac();
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(__dirname, '../helpers/muxer-heap-child.ts'), path.join(dir, 'long.h264'), path.join(dir, 'a.aac')], { encoding: 'utf8', timeout: 100_000 });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { grown: number; error: string | null; moofs: number; mfra: string };
    expect(out.error).toBeNull();
    expect(out.grown).toBeLessThan(2e6);
    const moofs = out.moofs;
    // The last segment is the mfra: the video's tfra has an entry for each fragment, at its
    // first picture's time (a keyframe every 2 s, so every fragment starts on one of them).
    const mfra = Buffer.from(out.mfra, 'base64');
    expect(mfra.toString('latin1', 4, 8)).toBe('mfra');
    const tfra = mfra.indexOf('tfra') + 4; // after the type: version/flags, track id, field sizes, count
    expect(mfra.readUInt32BE(tfra + 4)).toBe(1); // the video track
    const count = mfra.readUInt32BE(tfra + 12);
    expect(count).toBeGreaterThanOrEqual(moofs - 1);
    const times = Array.from({ length: count }, (_, k) => Number(mfra.readBigUInt64BE(tfra + 16 + 28 * k)));
    const step = times[1] - times[0];
    expect(step).toBeGreaterThan(0);
    expect(times).toEqual(times.map((_, k) => k * step));
  });

  test('a first picture that came late (a start that hung) is shown from t = 0: players read the length of the call, not the call plus the wait', async () => {
    const aus = encode('late.h264', 45, 'yellow');
    const audio = aac(); // 4 s from 0; the video's pictures are ticks 45..89 (1.5–3 s)
    const segments: Buffer[] = [];
    const mux = new Mp4Muxer({ fps: 30, width: 160, height: 90, fragmentMs: 1000, onSegment: (s) => segments.push(s.data) });
    audio.slice(0, 141).forEach((f, k) => mux.audio(k * 1024, f)); // 3.0 s
    aus.forEach((au, k) => mux.video(45 + k, au, isKeyframe(au)));
    await mux.finalize(90);
    expect(mux.firstTick).toBe(45);
    const file = path.join(dir, 'late.mp4');
    fs.writeFileSync(file, Buffer.concat(segments));
    expect(execFileSync(DEBIAN_FFMPEG, ['-v', 'error', '-xerror', '-i', file, '-f', 'null', '-'], { encoding: 'utf8' })).toBe('');
    const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_type,nb_read_frames,start_time,duration:format=duration', '-of', 'json', file], { encoding: 'utf8' }));
    const v = probe.streams.find((s: { codec_type: string }) => s.codec_type === 'video');
    expect(Number(v.nb_read_frames)).toBe(45);
    expect(Number(v.start_time)).toBe(0);
    // Started at its first picture (1.5 s), FFmpeg's reader (ffprobe, Chromium) took it for 4.5 s.
    expect(Number(probe.format.duration)).toBeCloseTo(3, 1);
  });

  test('a recording whose last ticks composed nothing new still ends at its last tick: the last picture is held to the end', async () => {
    const aus = encode('c.h264', 30, 'green');
    const segments: Buffer[] = [];
    const mux = new Mp4Muxer({ fps: 30, width: 160, height: 90, fragmentMs: 1000, onSegment: (s) => segments.push(s.data) });
    aus.forEach((au, t) => mux.video(t, au, isKeyframe(au)));
    await mux.finalize(45); // ticks 30..44 were repeats (shed, or an epoch that did not start in time)
    expect(mux.ticks).toBe(45);
    const file = path.join(dir, 'held.mp4');
    fs.writeFileSync(file, Buffer.concat(segments));
    expect(execFileSync(DEBIAN_FFMPEG, ['-v', 'error', '-xerror', '-i', file, '-f', 'null', '-'], { encoding: 'utf8' })).toBe('');
    const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=nb_read_frames,duration', '-of', 'json', file], { encoding: 'utf8' }));
    expect(Number(probe.streams[0].nb_read_frames)).toBe(30);
    expect(Number(probe.streams[0].duration)).toBeCloseTo(45 / 30, 2);
  });
});

describe('audio encoder (real FFmpeg)', () => {
  test('takes the mixed blocks WRITE_BLOCKS at a time, and every sample ends up in place at the finish', async () => {
    const enc = new AudioEncoder({ ffmpegPath: DEBIAN_FFMPEG, audioBitrate: 64_000, logger: logger.child({ test: 'aenc' }) });
    let writes = 0;
    const write = enc.proc.stdin.write.bind(enc.proc.stdin);
    (enc.proc.stdin as any).write = (...a: any[]) => (writes++, write(...(a as [Buffer])));
    const positions: number[] = [];
    enc.on('packet', (_f, pos) => positions.push(pos));
    const blocks = 2 * WRITE_BLOCKS + 2;
    for (let b = 0; b < blocks; b++) {
      const pcm = Buffer.alloc(BLOCK_SAMPLES * 2);
      for (let i = 0; i < BLOCK_SAMPLES; i++) pcm.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * (b * BLOCK_SAMPLES + i)) / 48000)), i * 2);
      enc.write(pcm);
    }
    expect(writes).toBe(2); // two whole batches; the last 2 blocks wait
    const exit = await enc.finish();
    expect(exit.kind).toBe('stopped');
    expect(writes).toBe(3); // the rest goes at the finish
    // Every input sample is in a frame, and the frames follow on without a gap.
    expect(positions.length).toBeGreaterThanOrEqual(Math.ceil((blocks * BLOCK_SAMPLES) / AAC_FRAME_SAMPLES));
    expect(positions).toEqual(positions.map((_, k) => k * AAC_FRAME_SAMPLES));
  }, 20_000);
});

describe('admission', () => {
  const model = { base: 0.35, perSource: 0.05 };
  const at = (...sources: number[]) => sources.map((n) => recordingCost(model, n));
  test('admits what fits in the usable share of the budget, refuses the rest', () => {
    expect(recordingCost(model, 4)).toBeCloseTo(0.55);
    // 2 cores × 0.8 = 1.6: two four-person recordings fit, a third does not.
    expect(admit({ budgetCores: 2, usable: 0.8, charged: at(4), cost: recordingCost(model, 4) }).ok).toBe(true);
    const third = admit({ budgetCores: 2, usable: 0.8, charged: at(4, 4), cost: recordingCost(model, 4) });
    expect(third.ok).toBe(false);
    expect(third.free).toBeCloseTo(0.5);
    // Nine people cost more than four: next to two small ones, a nine-person one does not fit.
    expect(admit({ budgetCores: 2, usable: 0.8, charged: at(2, 2), cost: recordingCost(model, 4) }).ok).toBe(true);
    expect(admit({ budgetCores: 2, usable: 0.8, charged: at(2, 2), cost: recordingCost(model, 9) }).ok).toBe(false);
  });

  test('the first recording is always admitted (a budget too small is a configuration error, not a 503), and starts degraded if it does not fit', () => {
    const alone = admit({ budgetCores: 0.5, usable: 0.8, charged: [], cost: recordingCost(model, 9) });
    expect(alone.ok).toBe(true);
    expect(startsShort(alone)).toBe(true);
    // 0.45 cores (the throttled case): a 3-person start costs 0.5 > 0.36.
    expect(startsShort(admit({ budgetCores: 0.45, usable: 0.8, charged: [], cost: recordingCost(model, 3) }))).toBe(true);
    // What fits starts at full quality; what is refused does not start at all.
    expect(startsShort(admit({ budgetCores: 2, usable: 0.8, charged: at(4), cost: recordingCost(model, 4) }))).toBe(false);
    expect(startsShort(admit({ budgetCores: 2, usable: 0.8, charged: at(4, 4), cost: recordingCost(model, 4) }))).toBe(false);
  });
});

describe('admission counts the server process beyond its headroom', () => {
  const model = { base: 0.35, perSource: 0.05 };
  test('a server within its headroom takes nothing from recordings; beyond it, the excess is taken', () => {
    // 2 cores × 0.8: 0.4 of headroom for the server itself.
    const base = { budgetCores: 2, usable: 0.8, charged: [recordingCost(model, 4)], cost: recordingCost(model, 4) };
    expect(committedCores({ ...base, serverCores: 0.3 })).toBeCloseTo(0.55);
    expect(admit({ ...base, serverCores: 0.4 }).ok).toBe(true);
    // A busy meeting: the server needs 1 core, 0.6 more than its headroom. 1.6 − 0.55 − 0.6 = 0.45 left.
    expect(committedCores({ ...base, serverCores: 1 })).toBeCloseTo(1.15);
    const busy = admit({ ...base, serverCores: 1 });
    expect(busy.ok).toBe(false);
    expect(busy.free).toBeCloseTo(0.45);
    // The first recording is still always admitted, and starts degraded if it does not fit.
    const alone = admit({ ...base, charged: [], serverCores: 1.5 });
    expect(alone.ok).toBe(true);
    expect(startsShort(alone)).toBe(true);
  });
});

describe('CostCalibration: the cost model corrected by what recordings measure', () => {
  const model = { base: 0.1, perSource: 0.05 }; // 4 sources: 0.3
  const full = (cores: number, workerMs = 20_000, sources = 4) => ({ sources, cores, full: true, keepingUp: true, workerMs });
  const feed = (c: CostCalibration, id: string, n: number, s: ReturnType<typeof full>) => {
    for (let k = 0; k < n; k++) c.observe(id, s);
  };

  test('a node where recordings cost twice the model: new ones cost twice, and the process refuses what no longer fits', () => {
    const c = new CostCalibration(model, { learn: true });
    expect(c.cost(4)).toBeCloseTo(0.3);
    feed(c, 'a', MIN_SAMPLES - 1, full(0.6));
    expect(c.factor).toBe(1); // not enough samples yet
    feed(c, 'a', 1, full(0.6));
    expect(c.factor).toBeCloseTo(2);
    expect(c.cost(4)).toBeCloseTo(0.6);
    expect(c.charge('a', 4)).toBeCloseTo(0.6);
    // 1 core × 0.8: with the configured model a second four-person recording fits (0.3 + 0.3),
    // with what this node measures it does not (0.6 + 0.6).
    expect(admit({ budgetCores: 1, usable: 0.8, charged: [recordingCost(model, 4)], cost: recordingCost(model, 4) }).ok).toBe(true);
    expect(admit({ budgetCores: 1, usable: 0.8, charged: [c.charge('a', 4)], cost: c.cost(4) }).ok).toBe(false);
  });

  test('learns nothing from a worker\'s start, a degraded or lagging recording, or a reading of nothing', () => {
    const c = new CostCalibration(model, { learn: true });
    feed(c, 'a', 20, full(0.9, WARMUP_MS - 1));
    feed(c, 'a', 20, { ...full(0.9), full: false });
    feed(c, 'a', 20, { ...full(0.9), keepingUp: false });
    feed(c, 'a', 20, full(0));
    feed(c, 'a', 20, full(Number.NaN));
    expect(c.samples).toBe(0);
    expect(c.factor).toBe(1);
    // The degraded and lagging readings still count against the recording itself.
    expect(c.charge('a', 4)).toBeCloseTo(0.9);
  });

  test('never below the configured model, never above MAX_FACTOR; off with learn: false', () => {
    const cheap = new CostCalibration(model, { learn: true });
    feed(cheap, 'a', 30, full(0.05)); // cameras off: cheaper than the model
    expect(cheap.factor).toBe(1);
    expect(cheap.charge('a', 4)).toBeCloseTo(0.3);
    const odd = new CostCalibration(model, { learn: true });
    feed(odd, 'a', 30, full(9));
    expect(odd.factor).toBe(MAX_FACTOR);
    const off = new CostCalibration(model, { learn: false });
    feed(off, 'a', 30, full(0.6));
    expect(off.factor).toBe(1);
    // Still charged what it measures: that is not a model, it is what the recording uses.
    expect(off.charge('a', 4)).toBeCloseTo(0.6);
  });

  test('follows the node as it changes, and forgets an ended recording\'s cores but not what it taught', () => {
    const c = new CostCalibration(model, { learn: true });
    feed(c, 'a', 40, full(0.6));
    expect(c.factor).toBeCloseTo(2);
    feed(c, 'a', 60, full(0.9)); // a slower hour: three times the model
    expect(c.factor).toBeGreaterThan(2.8);
    feed(c, 'a', 100, full(0.45)); // and back
    expect(c.factor).toBeLessThan(1.6);
    c.forget('a');
    expect(c.charge('a', 4)).toBeCloseTo(c.cost(4));
    expect(c.factor).toBeGreaterThan(1.4);
    // One odd second moves a running recording's charge by a fifth of the jump, not all of it.
    const d = new CostCalibration(model, { learn: true });
    feed(d, 'b', 10, { ...full(0.4), full: false });
    d.observe('b', { ...full(1.4), full: false });
    expect(d.charge('b', 4)).toBeCloseTo(0.6);
  });
});
