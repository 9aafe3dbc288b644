/**
 * The parts a recording's wiring (src/pipeline/Recording.ts) hands its decisions to, each with an
 * injected clock and no FFmpeg: what it does about being short of CPU (LoadGovernor), when a dead
 * epoch is replaced and when its deaths fail the recording (EpochRestarts), the new epoch that
 * waits for its tiles (WaitingEpoch), and the audio track's timeline (RecordingAudio).
 */
import { EventEmitter } from 'node:events';
import pino from 'pino';
import { LoadGovernor, type LoadLook } from '../../src/pipeline/LoadGovernor';
import { EpochRestarts } from '../../src/pipeline/EpochRestarts';
import { WaitingEpoch, KEYFRAME_WAIT_MS, DECODER_WAIT_MS } from '../../src/pipeline/WaitingEpoch';
import { RecordingAudio } from '../../src/pipeline/RecordingAudio';
import { BLOCK_BYTES, PcmJitterBuffer } from '../../src/pipeline/audio';
import type { AudioEncoderEvents } from '../../src/pipeline/AudioEncoder';
import type { FfmpegExit } from '../../src/pipeline/FfmpegProcess';
import type { EpochTile } from '../../src/pipeline/EpochEncoder';

const silent = pino({ level: 'silent' });

describe('LoadGovernor', () => {
  const fps = 30;
  const make = (o: { startShort?: boolean } = {}) => new LoadGovernor<object>({ fps, stallTimeoutMs: 3000, economy: true, smallTiles: true, startShort: o.startShort, startGraceMs: 0, logger: silent });
  // The epoch in charge at a check; `economy`/`small`: what it was started with.
  const look = (owed: number, o: Partial<LoadLook> & { economy?: boolean; small?: boolean } = {}): LoadLook => ({
    owed, owner: true, starting: false, silentMs: 0, depth: 0, pictures: owed, settled: true,
    inEffect: (l) => l.economy === (o.economy ?? false) && l.smallTiles === (o.small ?? false),
    ...o,
  });

  test('a hung epoch is replaced once, and its exit counts as a death; one far behind is replaced but not counted', () => {
    const g = make();
    const hung = {};
    expect(g.check(hung, look(100, { silentMs: 3100 }), 0).replace).toBe('hung');
    // Its exit comes later; the checks meanwhile do not replace it again.
    expect(g.check(hung, look(110, { silentMs: 3200 }), 33).replace).toBeNull();
    expect(g.countsAsDeath(hung)).toBe(true);
    const slow = {};
    expect(g.check(slow, look(300, { silentMs: 10 }), 66).replace).toBe('far behind');
    expect(g.countsAsDeath(slow)).toBe(false);
    // No epoch in charge: nothing to replace.
    expect(g.check(undefined, look(300, { owner: false, silentMs: 10_000 }), 99).replace).toBeNull();
  });

  test('falling behind sheds pictures one step at a time; caught up, it steps back', () => {
    const g = make();
    let now = 0;
    for (; now < 3000; now += 100) g.check({}, look(3, { depth: 3 }), now);
    expect(g.strides.distinctFps).toBe(30);
    // Owing more and more: over half a second behind for a whole second → 15 a second.
    const e = {};
    let owed = 3;
    for (; now < 8000 && g.strides.stride === 1; now += 100) g.check(e, look((owed += 2), { depth: 3 }), now);
    expect(g.strides.distinctFps).toBe(15);
    expect(g.behind).toBeGreaterThan(fps / 2);
    // CPU back: nothing owed beyond the encoder's delay for the hold (5 s) → 30 again.
    for (let end = now + 12_000; now < end && g.strides.stride > 1; now += 100) g.check(e, look(3, { depth: 3, pictures: 3 }), now);
    expect(g.strides.distinctFps).toBe(30);
  });

  test('not settled (a layout change in progress), it does not step back', () => {
    const g = make({ startShort: true });
    let now = 0;
    for (; now < 60_000; now += 100) g.check({}, look(3, { depth: 3, settled: false, economy: true }), now);
    expect(g.strides.economy).toBe(true);
    expect(g.strides.distinctFps).toBeCloseTo(40 / 3);
  });

  test('the level a recording starts short at keeps 12 pictures in every second with one picture lost', () => {
    // Every 30 ticks in a row, at any offset, compose 13 or 14: a picture lost (an epoch's start
    // starving the worker, a picture made before its frames arrived) still leaves 12 in the
    // second, where a stride of 2.5 left 11 (day 30).
    const g = make({ startShort: true });
    expect(g.strides.stride).toBe(2.25);
    for (let from = 0; from < 90; from++) expect(g.strides.composedIn(from, from + 30)).toBeGreaterThanOrEqual(13);
    // A composed tick with nothing new moves a tick later and takes nothing away from the count.
    const made = Array.from({ length: 90 }, (_, t) => t).filter((t) => g.strides.compose(t, t % 4 !== 0));
    for (let k = 0; k < 3; k++) expect(made.filter((t) => t >= k * 30 && t < (k + 1) * 30).length).toBeGreaterThanOrEqual(13);
  });

  test('stepping back out of economy asks for a new epoch at once (x264\'s analysis is fixed for an encoder\'s life); into it does not', () => {
    const g = make({ startShort: true });
    expect(g.strides.economy).toBe(true);
    let now = 0;
    const decisions: Array<{ at: number; relayout: boolean; economy: boolean }> = [];
    for (; now < 30_000; now += 100) {
      const d = g.check({}, look(3, { depth: 3, economy: true }), now);
      decisions.push({ at: now, relayout: d.relayout, economy: g.strides.economy });
    }
    const out = decisions.findIndex((d) => !d.economy);
    expect(out).toBeGreaterThan(0);
    expect(decisions[out].relayout).toBe(true);
    expect(decisions.filter((d) => d.relayout)).toHaveLength(1);
  });
});

describe('EpochRestarts', () => {
  test('a replacement waits 50 ms, doubling to 1.6 s while none produces; a picture resets it', () => {
    const r = new EpochRestarts();
    expect([1, 2, 3, 4, 5, 6, 7].map(() => r.nextDelayMs())).toEqual([50, 100, 200, 400, 800, 1600, 1600]);
    r.produced();
    expect(r.nextDelayMs()).toBe(50);
  });

  test('three deaths within a minute fail the recording; spread wider, they do not', () => {
    let now = 0;
    const r = new EpochRestarts({ now: () => now });
    expect(r.died()).toBe(false);
    now = 30_000;
    expect(r.died()).toBe(false);
    now = 59_000;
    expect(r.died()).toBe(true);
    expect(r.recentDeaths).toBe(3);
    const spread = new EpochRestarts({ now: () => now });
    for (now = 0; now < 300_000; now += 31_000) expect(spread.died()).toBe(false);
    expect(spread.recentDeaths).toBe(2);
  });
});

describe('WaitingEpoch', () => {
  const tiles = (...ids: string[]): EpochTile[] => ids.map((sourceId) => ({ sourceId, name: sourceId, w: 640, h: 360 }));
  const handle = (direct: boolean) => ({ direct: direct ? {} : null, killed: 0, kill() { this.killed++; } });

  test('begins once every tile is ready, or after its wait: a keyframe\'s for direct epochs, a decoder\'s for decoded tiles', () => {
    for (const [direct, limit] of [[true, KEYFRAME_WAIT_MS], [false, DECODER_WAIT_MS]] as const) {
      const w = new WaitingEpoch<ReturnType<typeof handle>>();
      let began = 0;
      const ready = new Set<string>(['a']);
      w.wait(handle(direct), tiles('a', 'b'), 1000, () => began++);
      expect(w.poll(1500, (t, d) => d === direct && ready.has(t.sourceId))).toBe(false);
      ready.add('b');
      expect(w.poll(1600, (t) => ready.has(t.sourceId))).toBe(true);
      expect(began).toBe(1);
      expect(w.handle).toBeNull();
      // Nobody ready: it begins at its limit, not before.
      w.wait(handle(direct), tiles('c'), 0, () => began++);
      expect(w.poll(limit - 1, () => false)).toBe(false);
      expect(w.poll(limit, () => false)).toBe(true);
      expect(began).toBe(2);
    }
  });

  test('every poll asks about every tile, also after one that is not ready (so each can be asked for a keyframe again)', () => {
    const w = new WaitingEpoch<ReturnType<typeof handle>>();
    w.wait(handle(true), tiles('a', 'b', 'c'), 0, () => undefined);
    const asked: string[] = [];
    expect(w.poll(10, (t) => (asked.push(t.sourceId), t.sourceId === 'c'))).toBe(false);
    expect(asked).toEqual(['a', 'b', 'c']);
    asked.length = 0;
    expect(w.poll(20, (t) => (asked.push(t.sourceId), t.sourceId !== 'a'))).toBe(false);
    expect(asked).toEqual(['a', 'b', 'c']);
    expect(w.poll(30, (t) => (asked.push(t.sourceId), true))).toBe(true);
  });

  test('a tile ready at one poll is asked with wasReady at the next, and begin is told which were ready', () => {
    const w = new WaitingEpoch<ReturnType<typeof handle>>();
    let readyOnce: number[] | null = null;
    w.wait(handle(true), tiles('a', 'b', 'c'), 0, (r) => (readyOnce = [...r.readyOnce].sort()));
    // Ready for a moment each, never together (short replay windows while shedding): a keeps its
    // readiness when its caller holds it to it (here: whatever was ready once stays so).
    const windows: Record<string, number> = { a: 100, b: 400, c: 700 };
    const calls: string[] = [];
    const sticky = (now: number) => (t: EpochTile, _d: boolean, wasReady: boolean) => {
      calls.push(`${t.sourceId}${wasReady ? '+' : ''}`);
      return wasReady || Math.abs(now - windows[t.sourceId]) < 150;
    };
    expect(w.poll(100, sticky(100))).toBe(false);
    expect(w.poll(400, sticky(400))).toBe(false);
    expect(calls).toEqual(['a', 'b', 'c', 'a+', 'b', 'c']);
    expect(readyOnce).toBeNull();
    expect(w.poll(700, sticky(700))).toBe(true);
    expect(readyOnce).toEqual([0, 1, 2]);
    // Timed out: begin is told only the ones that were ever ready.
    let outcome = { waitedMs: 0, notReady: 0 };
    w.wait(handle(true), tiles('a', 'b'), 100, (r) => ((readyOnce = [...r.readyOnce]), (outcome = r)));
    expect(w.poll(500, (t) => t.sourceId === 'b')).toBe(false);
    expect(w.poll(100 + KEYFRAME_WAIT_MS, () => false)).toBe(true);
    expect(readyOnce).toEqual([1]);
    expect({ waitedMs: outcome.waitedMs, notReady: outcome.notReady }).toEqual({ waitedMs: KEYFRAME_WAIT_MS, notReady: 2 });
  });

  test('a newer layout kills the one waiting; its death is forgotten; the stop kills it', () => {
    const w = new WaitingEpoch<ReturnType<typeof handle>>();
    const first = handle(true);
    const second = handle(true);
    w.wait(first, tiles('a'), 0, () => undefined);
    w.wait(second, tiles('a', 'b'), 10, () => undefined);
    expect(first.killed).toBe(1);
    expect(w.tiles.map((t) => t.sourceId)).toEqual(['a', 'b']);
    // The first one's exit is not the waiting one's: nothing to retry.
    expect(w.died(first)).toBe(false);
    expect(w.died(second)).toBe(true);
    expect(w.handle).toBeNull();
    w.wait(first, tiles('a'), 20, () => undefined);
    w.kill();
    expect(first.killed).toBe(2);
    expect(w.tiles).toEqual([]);
  });
});

describe('RecordingAudio', () => {
  class Encoder extends EventEmitter<AudioEncoderEvents> {
    written: Buffer[] = [];
    write(pcm: Buffer): void {
      this.written.push(pcm);
    }
    async finish(): Promise<FfmpegExit> {
      return { kind: 'stopped', code: 0, signal: null, stderr: '' } as FfmpegExit;
    }
    kill(): void {}
  }

  test('AAC frames go out on the recording\'s timeline: less the prebuffer, after a continued worker\'s ticks, none past the end', () => {
    const enc = new Encoder();
    const out: number[] = [];
    const audio = new RecordingAudio(enc, { tickBase: 0, fps: 30, out: (pos) => out.push(pos), onExit: () => undefined });
    // The first 60 ms (2 880 samples) are the prebuffer's, before the file's start.
    expect(audio.basePos).toBe(-2880);
    for (let k = 0; k < 6; k++) enc.emit('packet', Buffer.alloc(10), k * 1024);
    expect(out).toEqual([2048 - 2880, 3072 - 2880, 4096 - 2880, 5120 - 2880].filter((p) => p >= 0));
    // The stop: nothing from sample 2 000 on (the last picture ends there).
    out.length = 0;
    audio.endAt(2000);
    enc.emit('packet', Buffer.alloc(10), 4096);
    enc.emit('packet', Buffer.alloc(10), 5120);
    expect(out).toEqual([4096 - 2880]);
    // A worker continuing after 300 ticks (10 s) starts at sample 480 000, less the prebuffer.
    const next = new RecordingAudio(new Encoder(), { tickBase: 300, fps: 30, out: () => undefined, onExit: () => undefined });
    expect(next.basePos).toBe(480_000 - 2880);
  });

  test('each source\'s sound waits as long as its pictures do (lip sync), one 20-ms block per clock block', () => {
    let now = 0;
    const a = new PcmJitterBuffer({ now: () => now });
    const b = new PcmJitterBuffer({ now: () => now });
    const enc = new Encoder();
    const audio = new RecordingAudio(enc, { tickBase: 0, fps: 30, out: () => undefined, onExit: () => undefined });
    // Both sources send a click in their 10th packet, at the same moment.
    const packet = (k: number) => {
      const p = Buffer.alloc(BLOCK_BYTES);
      if (k === 10) p.writeInt16LE(10_000, 0);
      return p;
    };
    const clickAt = (pictureDelayMs: number, buf: PcmJitterBuffer) => {
      const levels: number[] = [];
      let at = -1;
      for (let k = 0; k < 40; k++) {
        now = k * 20;
        buf.push(packet(k), now);
        const before = enc.written.length;
        levels.push(...audio.block(now, [{ buffer: buf, pictureDelayMs }]));
        expect(enc.written.length).toBe(before + 1);
        expect(enc.written[enc.written.length - 1].length).toBe(BLOCK_BYTES);
        if (at < 0 && enc.written[enc.written.length - 1].readInt16LE(0) !== 0) at = k;
      }
      expect(levels).toHaveLength(40);
      return at;
    };
    const plain = clickAt(0, a);
    const delayed = clickAt(60, b);
    // Pictures that wait 60 ms longer for their tick: the sound is 60 ms (three blocks) later.
    expect(delayed - plain).toBe(3);
  });
});
