/** The recording's parts that decide things over time, driven by an injected clock (no FFmpeg). */
import { SpeakerDetector } from '../../src/pipeline/SpeakerDetector';
import { StrideController } from '../../src/pipeline/StrideController';
import { LagMonitor } from '../../src/pipeline/LagMonitor';
import { Pacer } from '../../src/pipeline/Pacer';

describe('SpeakerDetector', () => {
  const everyone = () => true;
  function feed(d: SpeakerDetector, ids: string[], levels: number[], blocks: number) {
    for (let i = 0; i < blocks; i++) d.addLevels(ids, levels);
  }

  test('a new speaker takes the stage only after being the loudest for 1.5 s', () => {
    const d = new SpeakerDetector();
    feed(d, ['a', 'b'], [0.5, 0.1], 50);
    expect(d.decide(0, everyone)).toBeUndefined(); // candidate from now
    expect(d.decide(1400, everyone)).toBeUndefined();
    expect(d.decide(1500, everyone)).toBe('a');
    expect(d.speaker).toBe('a');
    expect(d.decide(1600, everyone)).toBeUndefined(); // no change while a stays loudest
  });

  test('two people talking over each other do not make the stage flap', () => {
    const d = new SpeakerDetector();
    feed(d, ['a', 'b'], [0.5, 0.1], 50);
    d.decide(0, everyone);
    d.decide(1500, everyone);
    for (let k = 0; k < 10; k++) {
      // b is louder for 0.5 s at a time only
      feed(d, ['a', 'b'], k % 2 ? [0.9, 0.1] : [0.1, 0.9], 25);
      expect(d.decide(2000 + k * 500, everyone)).toBeUndefined();
    }
    expect(d.speaker).toBe('a');
  });

  test('silence and people who left are never chosen', () => {
    const d = new SpeakerDetector();
    feed(d, ['a'], [0.001], 100);
    expect(d.decide(0, everyone)).toBeUndefined();
    expect(d.decide(5000, everyone)).toBeUndefined();
    feed(d, ['b'], [0.8], 50);
    d.decide(0, (id) => id !== 'b');
    expect(d.decide(5000, (id) => id !== 'b')).toBeUndefined();
  });
});

describe('StrideController', () => {
  const make = () => new StrideController({ fps: 30, strides: [2], upAfterMs: 2000, downAfterMs: 5000 });

  test('more than half a second behind: every second tick is composed; never fewer', () => {
    const s = make();
    expect(s.update(10, 0)).toBeNull();
    expect(s.update(20, 100)).toBeNull(); // behind, but not yet for a second
    expect(s.update(20, 1100)).toBe('up');
    expect(s.distinctFps).toBe(15);
    expect([0, 1, 2, 3].map((t) => s.composes(t))).toEqual([true, false, true, false]);
    expect(s.update(90, 5000)).toBeNull(); // at the floor of 15 distinct pictures
    expect(s.update(90, 9000)).toBeNull();
    expect(s.stride).toBe(2);
  });

  test('a start grace: a backlog of under a second waits it out; more than a second does not', () => {
    const s = new StrideController({ fps: 30, strides: [2], upAfterMs: 2000, downAfterMs: 5000, startGraceMs: 5000 });
    expect(s.update(0, 0)).toBeNull(); // the first update starts the grace
    for (let t = 600; t < 5000; t += 100) expect(s.update(25, t)).toBeNull(); // 25 behind: waited out
    expect(s.update(25, 5000)).toBe('up'); // still behind when the grace ends: a shortage
    const urgent = new StrideController({ fps: 30, strides: [2], upAfterMs: 2000, downAfterMs: 5000, startGraceMs: 5000 });
    urgent.update(0, 0);
    urgent.update(40, 600);
    expect(urgent.update(40, 1100)).toBe('up'); // more than a second behind: at once, as without a grace
  });

  test('one step at a time, and back to every tick only after 5 s without a backlog', () => {
    const s = make();
    s.update(20, 0);
    s.update(20, 1000);
    expect(s.stride).toBe(2);
    expect(s.update(1, 4000)).toBeNull(); // caught up, but not for long enough
    expect(s.update(1, 6100)).toBe('down');
    expect(s.stride).toBe(1);
    expect(s.composes(1)).toBe(true);
    s.update(20, 6200);
    expect(s.update(20, 7500)).toBeNull(); // within 2 s of the last change
    expect(s.update(20, 8200)).toBe('up');
  });

  test('with economy: 30, 15, 12, then 12 with x264 economy, then 10 with it; economy held 20 s, out of it last', () => {
    const s = new StrideController({ fps: 30, strides: [2, 2.5, 3], economy: true, upAfterMs: 2000, downAfterMs: 5000 });
    const seen: string[] = [];
    const changes: number[] = [];
    const at = () => `${s.distinctFps}${s.economy ? '+economy' : ''}`;
    s.update(20, 0);
    for (let t = 1000; t <= 14_000; t += 100) if (s.update(20, t)) { seen.push(at()); changes.push(t); }
    expect(seen).toEqual(['15', '12', '12+economy', '10+economy']); // and no further
    expect(s.stride).toBe(3);
    const into10 = changes[3];
    expect(s.update(1, into10 + 4900)).toBeNull();
    const back = into10 + 5100;
    expect(s.update(1, back)).toBe('down'); // 10 → 12 is a stride: 5 s
    expect(at()).toBe('12+economy');
    // Economy itself is held 20 s (a new epoch took it), from the last change.
    expect(s.update(1, back + 19_900)).toBeNull();
    expect(s.update(1, back + 20_100)).toBe('down');
    expect(at()).toBe('12');
    // Short again within a minute of leaving economy: back in it, and it stays twice as long (40 s).
    for (let t = back + 21_000; t <= back + 26_000 && s.update(20, t) !== 'up'; t += 100);
    expect(at()).toBe('12+economy');
    expect(s.holdMs).toBe(40_000);
  });

  test('with small tiles: half-size tiles after 12 with economy and before 10, held 20 s; without economy after 12', () => {
    const s = new StrideController({ fps: 30, strides: [2, 2.5, 3], economy: true, smallTiles: true, upAfterMs: 2000, downAfterMs: 5000 });
    const at = () => `${s.distinctFps}${s.economy ? '+economy' : ''}${s.smallTiles ? '+small' : ''}`;
    const seen: string[] = [];
    const changes: number[] = [];
    s.update(20, 0);
    for (let t = 1000; t <= 20_000; t += 100) if (s.update(20, t)) { seen.push(at()); changes.push(t); }
    expect(seen).toEqual(['15', '12', '12+economy', '12+economy+small', '10+economy+small']); // and no further
    // 10 → 12 is a stride step (5 s); small tiles themselves are held 4 × downAfter from then.
    const into10 = changes[4];
    expect(s.update(1, into10 + 4900)).toBeNull();
    const back = into10 + 5100;
    expect(s.update(1, back)).toBe('down');
    expect(at()).toBe('12+economy+small');
    expect(s.update(1, back + 19_900)).toBeNull();
    expect(s.update(1, back + 20_100)).toBe('down');
    expect(at()).toBe('12+economy');
    // Taken again within a minute: held twice as long.
    for (let t = back + 21_000; t <= back + 30_000 && s.update(20, t) !== 'up'; t += 100);
    expect(at()).toBe('12+economy+small');
    expect(s.holdMs).toBe(40_000);

    const n = new StrideController({ fps: 30, strides: [2, 2.5, 3], smallTiles: true, upAfterMs: 2000, downAfterMs: 5000 });
    const nseen: string[] = [];
    n.update(20, 0);
    for (let t = 1000; t <= 20_000; t += 100) if (n.update(20, t)) nseen.push(`${n.distinctFps}${n.economy ? '+economy' : ''}${n.smallTiles ? '+small' : ''}`);
    expect(nseen).toEqual(['15', '12', '12+small', '10+small']);
  });

  test('startShort: starts at 12 with economy, held 20 s from the first update, then steps back like any level', () => {
    const s = new StrideController({ fps: 30, strides: [2, 2.5, 3], economy: true, smallTiles: true, upAfterMs: 2000, downAfterMs: 5000, startShort: true });
    const at = () => `${s.distinctFps}${s.economy ? '+economy' : ''}${s.smallTiles ? '+small' : ''}`;
    expect(at()).toBe('12+economy');
    expect(s.update(0, 100_000)).toBeNull(); // the hold counts from the start, not from time 0
    expect(s.update(0, 119_900)).toBeNull();
    expect(s.update(0, 120_100)).toBe('down');
    expect(at()).toBe('12');
    expect(s.update(0, 125_200)).toBe('down');
    expect(at()).toBe('15');
    // Behind from the start instead: the next rung up, as from any level.
    const b = new StrideController({ fps: 30, strides: [2, 2.5, 3], economy: true, smallTiles: true, upAfterMs: 2000, downAfterMs: 5000, startShort: true });
    b.update(20, 0);
    let seen = '';
    for (let t = 100; t <= 3000 && !seen; t += 100) if (b.update(20, t)) seen = `${b.distinctFps}${b.economy ? '+economy' : ''}${b.smallTiles ? '+small' : ''}`;
    expect(seen).toBe('12+economy+small');
    // Without economy: it starts at 12.
    expect(new StrideController({ fps: 30, strides: [2, 2.5, 3], upAfterMs: 2000, downAfterMs: 5000, startShort: true }).distinctFps).toBe(12);
  });

  test('a level that waits for its epoch (economy) is not stepped past until it is in effect, unless more than 2 s behind', () => {
    const s = new StrideController({ fps: 30, strides: [2, 2.5, 3], economy: true, upAfterMs: 2000, downAfterMs: 5000 });
    s.update(40, 0, 40, true, true);
    for (let t = 1000; t <= 7000 && !s.economy; t += 100) s.update(40, t, 40, true, true);
    expect(`${s.distinctFps}${s.economy ? '+economy' : ''}`).toBe('12+economy');
    // 1.3 s behind (urgent, before), economy not yet in an epoch: stays.
    for (let t = 8000; t <= 20_000; t += 100) expect(s.update(40, t, 40, true, false)).toBeNull();
    // More than 2 s behind: on to 10.
    expect(s.update(61, 20_100, 61, true, false)).toBeNull();
    expect(s.update(61, 21_200, 61, true, false)).toBe('up');
    expect(s.distinctFps).toBe(10);
    // In effect: the usual rule (half a second behind for a second).
    const e = new StrideController({ fps: 30, strides: [2, 2.5, 3], economy: true, upAfterMs: 2000, downAfterMs: 5000 });
    e.update(40, 0);
    for (let t = 1000; t <= 7000 && !e.economy; t += 100) e.update(40, t);
    expect(e.update(20, 10_000, 20, true, true)).toBe('up');
    expect(e.distinctFps).toBe(10);
  });

  test('no step back while a backlog is still being worked off, however long since the last change', () => {
    const s = make();
    s.update(20, 0);
    expect(s.update(20, 1000)).toBe('up');
    // Nothing new owed (behind 0: the backlog shrinks), but 40 frames still owed.
    expect(s.update(0, 9000, 40)).toBeNull();
    expect(s.update(0, 9100, 2)).toBe('down');
  });

  test('more than a second behind: the ladder climbs twice as fast (half a second behind, a step a second)', () => {
    const s = new StrideController({ fps: 30, strides: [2, 2.5, 3], economy: true, upAfterMs: 2000, downAfterMs: 5000 });
    s.update(65, 0);
    expect(s.update(65, 400)).toBeNull();
    expect(s.update(65, 500)).toBe('up');
    expect(s.update(124, 1400)).toBeNull();
    expect(s.update(124, 1600)).toBe('up');
    expect(s.update(113, 2700)).toBe('up');
    expect(s.update(63, 3800)).toBe('up');
    expect(s.economy).toBe(true);
    // Half a second to a second behind: a step every 2 s, as before.
    const t = make();
    t.update(20, 0);
    expect(t.update(20, 900)).toBeNull();
    expect(t.update(20, 1000)).toBe('up');
  });

  test('no step back while a layout change is in progress (two epochs), however calm it looks', () => {
    const s = make();
    s.update(20, 0);
    expect(s.update(20, 1000)).toBe('up');
    expect(s.update(0, 9000, 0, false)).toBeNull();
    expect(s.update(0, 9100, 0, true)).toBe('down');
  });

  test('a level taken again within a minute of leaving it is held twice as long, up to 2 minutes; a calm minute resets it', () => {
    const s = make();
    const shortAgain = (t: number) => {
      s.update(20, t);
      return s.update(20, t + 1000);
    };
    expect(shortAgain(0)).toBe('up');
    expect(s.holdMs).toBe(5000);
    expect(s.update(0, 6100)).toBe('down');
    expect(shortAgain(9000)).toBe('up'); // 15 a second again 3 s after leaving it
    expect(s.holdMs).toBe(10_000);
    expect(s.update(0, 10_000 + 9_900)).toBeNull(); // held twice as long
    expect(s.update(0, 10_000 + 10_100)).toBe('down');
    let t = 22_000;
    for (const hold of [20_000, 40_000, 80_000, 120_000, 120_000]) {
      expect(shortAgain(t)).toBe('up');
      expect(s.holdMs).toBe(hold);
      t += 1000 + hold + 100;
      expect(s.update(0, t)).toBe('down');
      t += 2000;
    }
    // A calm minute at full rate: the next shortage starts from 5 s again.
    expect(shortAgain(t + 60_000)).toBe('up');
    expect(s.holdMs).toBe(5000);
  });

  /** A ladder of the recording's strides, behind for 2 s: at 12 pictures a second. */
  function atTwelve(): StrideController {
    const s = new StrideController({ fps: 30, strides: [2, 2.5, 3], upAfterMs: 0, downAfterMs: 5000 });
    for (const t of [0, 1000, 2000]) s.update(20, t);
    return s;
  }

  test('12 distinct pictures a second: ticks 2 and 3 apart in turn, 12 in every 30', () => {
    const s = atTwelve();
    expect(s.distinctFps).toBe(12);
    const composed = Array.from({ length: 90 }, (_, t) => t).filter((t) => s.composes(t));
    expect(composed.slice(0, 6)).toEqual([0, 3, 5, 8, 10, 13]);
    for (let k = 0; k < 3; k++) expect(s.composedIn(k * 30, (k + 1) * 30)).toBe(12);
    s.update(20, 3000);
    expect([0, 1, 2, 3, 4, 5, 6].map((t) => s.composes(t))).toEqual([true, false, false, true, false, false, true]);
  });

  test('a composed tick with nothing new moves to the next one, never onto or past the next composed tick: the count stays', () => {
    const s = atTwelve();
    expect(s.stride).toBe(2.5);
    // Nothing new at ticks 3 and 4: the pattern's 3 moves to 4, where it is made anyway (5 is the
    // pattern's). 13 moves to 14 likewise; 15 moves to 16, which has something new.
    const stale = new Set([3, 4, 13, 14, 15]);
    const made = Array.from({ length: 60 }, (_, t) => t).filter((t) => s.compose(t, !stale.has(t)));
    expect(made.slice(0, 8)).toEqual([0, 4, 5, 8, 10, 14, 16, 18]);
    expect(made.filter((t) => t < 30)).toHaveLength(12);
    expect(made.filter((t) => t >= 30)).toHaveLength(12);
    expect(s.deferred).toBe(3);
    // At full rate every tick is composed, fresh or not.
    const full = new StrideController({ fps: 30, strides: [2, 2.5, 3], upAfterMs: 0, downAfterMs: 5000 });
    expect([0, 1, 2].map((t) => full.compose(t, false))).toEqual([true, true, true]);
  });
});

describe('Pacer', () => {
  /** A clock that only moves when told; timers and immediates run in order as time passes. */
  function fakeClock() {
    let now = 0;
    let queue: { at: number; fn: () => void; id: number }[] = [];
    let ids = 0;
    const add = (at: number, fn: () => void) => (queue.push({ at, fn, id: ++ids }), ids);
    const clear = (h: unknown) => (queue = queue.filter((q) => q.id !== h));
    return {
      clock: { now: () => now, setTimeout: (fn: () => void, ms: number) => add(now + ms, fn), clearTimeout: clear, setImmediate: (fn: () => void) => add(now, fn), clearImmediate: clear },
      /** Moves time to `t`, running what falls due; `busy` ms pass inside each callback. */
      advance(t: number, busy = 0) {
        for (;;) {
          queue.sort((a, b) => a.at - b.at || a.id - b.id);
          const next = queue[0];
          if (!next || next.at > t) break;
          queue.shift();
          now = Math.max(now, next.at);
          next.fn();
          now += busy;
        }
        now = Math.max(now, t);
      },
    };
  }

  test('runs one video tick per 1/fps and one audio block per 20 ms, in time order, on wall time', () => {
    const f = fakeClock();
    const log: string[] = [];
    const p = new Pacer({ fps: 25, clock: f.clock, hooks: { video: (t) => log.push(`v${t}`), audio: (b) => log.push(`a${b}`), checked: () => undefined } });
    p.start(0);
    f.advance(999);
    expect(p.ticks).toBe(25);
    expect(p.blocks).toBe(50);
    expect(log.slice(0, 6)).toEqual(['a0', 'v0', 'a1', 'a2', 'v1', 'a3']);
  });

  test('a start in the past (a continued recording) makes the missed ticks at once', () => {
    const f = fakeClock();
    let ticks = 0;
    const p = new Pacer({ fps: 30, clock: f.clock, hooks: { video: () => ticks++, audio: () => undefined, checked: () => undefined } });
    f.advance(5000);
    p.start(5000 - 1500);
    f.advance(5000);
    expect(ticks).toBe(46); // 1.5 s × 30 + the tick due now
  });

  test('what arrives while the clock catches up is stamped by wall time, not in the past (nextTickAt)', () => {
    const f = fakeClock();
    const p = new Pacer({ fps: 30, clock: f.clock, hooks: { video: () => undefined, audio: () => undefined, checked: () => undefined } });
    f.advance(5000);
    p.start(5000 - 1500); // 45 ticks behind
    expect(p.ticks).toBe(0);
    expect(p.nextTickAt()).toBe(46);
    f.advance(5000);
    expect(p.nextTickAt()).toBe(p.ticks); // caught up: the next tick to run
    f.advance(5010);
    expect(p.nextTickAt()).toBe(46);
  });

  test('an event loop that is slow catches up: the counts still equal wall time', () => {
    const f = fakeClock();
    const p = new Pacer({ fps: 30, clock: f.clock, hooks: { video: () => undefined, audio: () => undefined, checked: () => undefined } });
    p.start(0);
    f.advance(10_000, 30); // every callback takes 30 ms
    // It yields between ticks only while less than 100 ms behind, so it never trails by more.
    expect(300 - p.ticks).toBeLessThanOrEqual(3);
    expect(500 - p.blocks).toBeLessThanOrEqual(5);
    expect(p.ticks).toBeLessThanOrEqual(301);
  });

  test('stop(now) runs what is due and nothing after', () => {
    const f = fakeClock();
    const p = new Pacer({ fps: 30, clock: f.clock, hooks: { video: () => undefined, audio: () => undefined, checked: () => undefined } });
    p.start(0);
    f.advance(500);
    p.stop(1000);
    expect(p.ticks).toBe(31);
    f.advance(5000);
    expect(p.ticks).toBe(31);
  });
});

describe('LagMonitor', () => {
  const fps = 30;
  const make = () => new LagMonitor({ fps, stallTimeoutMs: 3000 });
  const look = (owed: number, o: Partial<{ owner: boolean; starting: boolean; silentMs: number; depth: number; pictures: number; stride: number }> = {}) => ({ owed, owner: true, starting: false, silentMs: 0, depth: 0, ...o });

  test('hung: owes more than the stall timeout of ticks and silent for it; far behind: owes more than 2 × (stall + 1 s), unless starting', () => {
    const m = make();
    expect(m.replace(look(100, { silentMs: 3100 }))).toBe('hung');
    expect(m.replace(look(100, { silentMs: 2900 }))).toBeNull(); // producing: slow, not hung
    expect(m.replace(look(80, { silentMs: 10_000 }))).toBeNull(); // owes little: nothing to replace it for
    expect(m.replace(look(241))).toBe('far behind');
    expect(m.replace(look(241, { starting: true }))).toBeNull(); // a continuing worker's first epoch owes the missed ticks
    expect(m.replace(look(1000, { owner: false, silentMs: 10_000 }))).toBeNull();
  });

  test('behind counts pictures owed, each worth `stride` ticks: shedding does not look like falling behind', () => {
    const m = make();
    let now = 0;
    // At every tick: x264's lookahead and the pipes hold 12 pictures, 12 ticks.
    for (; now < 3000; now += 100) expect(m.behind(look(12, { pictures: 12, depth: 12, stride: 1 }), now)).toBe(0);
    // One tick in three: the same 12 pictures span 36 ticks. Not behind.
    for (; now < 6000; now += 100) expect(m.behind(look(36, { pictures: 12, depth: 12, stride: 3 }), now)).toBe(0);
    // 5 pictures more than that, growing: behind by the 15 ticks they span.
    expect(m.behind(look(51, { pictures: 17, depth: 12, stride: 3 }), now)).toBe(15);
  });

  test('a backlog being worked off is not behind', () => {
    const m = make();
    let now = 0;
    for (; now < 3000; now += 100) m.behind(look(12, { depth: 10 }), now);
    // A layout change left 60 owed; they shrink by 20 a second (gone in under 3 s). Once that
    // shows (1.5 s on): not behind while they do (the StrideController sheds only for a whole
    // second behind).
    const seen: number[] = [];
    for (let owed = 60; owed > 12; now += 100, owed -= 2) seen.push(m.behind(look(owed, { depth: 10 }), now));
    expect(seen.slice(15)).toEqual(seen.slice(15).map(() => 0));
    // Shrinking too slowly to be gone within 3 s (60 owed, 5 fewer a second): still behind.
    const slow = make();
    let t = 0;
    for (; t < 3000; t += 100) slow.behind(look(12, { depth: 10 }), t);
    for (let owed = 62; t < 5000; t += 100, owed -= 0.5) slow.behind(look(owed, { depth: 10 }), t);
    expect(slow.behind(look(52, { depth: 10 }), t)).toBe(40);
    // Growing again: behind.
    for (let owed = 30; now < 7600; now += 100, owed += 2) m.behind(look(owed, { depth: 10 }), now);
    expect(m.behind(look(62, { depth: 10 }), now)).toBe(50);
  });

  test('behind is owing more than the encoder\'s own delay and more than the lowest backlog of the last 10 s', () => {
    const m = make();
    let now = 0;
    // A steady backlog of 12 ticks (the pipes, x264's lookahead): not behind.
    for (; now < 5000; now += 100) expect(m.behind(look(12, { depth: 10 }), now)).toBe(0);
    // Owing more and more: behind by what it owes beyond the steady 12.
    expect(m.behind(look(40, { depth: 10 }), now)).toBe(28);
    expect(m.behind(look(40, { starting: true }), now)).toBe(0);
    // 10 s later the old baseline is forgotten: a backlog that stays is the new normal, up to
    // half a second of pictures beyond the encoder's delay (10 + 15 here).
    for (; now < 17_000; now += 100) m.behind(look(20, { depth: 10 }), now);
    expect(m.behind(look(20, { depth: 10 }), now)).toBe(0);
    // Seconds of queued work standing is behind however long it stands (day 12, 0.40 cores: 60
    // pictures at 15 a second; the next join took the epoch past the far-behind bound).
    for (; now < 29_000; now += 100) m.behind(look(40, { depth: 10 }), now);
    expect(m.behind(look(40, { depth: 10 }), now)).toBe(15);
  });

  test('a steady backlog near the far-behind bound is behind however long it stands: the ladder must not step back into a replacement', () => {
    const m = make();
    let now = 0;
    // 0.30 cores, day 11: ~100 pictures owed at one tick in two (200 ticks of wall time) for 10 s.
    for (; now < 12_000; now += 100) m.behind(look(200, { depth: 10, pictures: 100, stride: 2 }), now);
    // Behind by all it owes beyond the encoder's delay and half a second (25 pictures): 150 ticks.
    expect(m.farBehindTicks).toBe(240);
    expect(m.behind(look(200, { depth: 10, pictures: 100, stride: 2 }), now)).toBe(150);
    // Working it off, 10 pictures a second: too slow to be gone within 3 s, still behind.
    for (let owed = 200; owed > 150; owed -= 2, now += 100) m.behind(look(owed, { depth: 10, pictures: owed / 2, stride: 2 }), now);
    expect(m.behind(look(150, { depth: 10, pictures: 75, stride: 2 }), now)).toBe(100);
    expect(m.backlog).toBe(100);
    // Below half the bound, working a backlog off is not behind.
    for (let owed = 118; owed > 60; owed -= 2, now += 100) m.behind(look(owed, { depth: 10, pictures: owed / 2, stride: 2 }), now);
    expect(m.behind(look(60, { depth: 10, pictures: 30, stride: 2 }), now)).toBe(0);
    // Below half the bound, a standing backlog is normal up to half a second of pictures beyond
    // the encoder's delay (25 here): 50 standing is behind by the 25 more, 50 ticks at 1 in 2.
    const n = make();
    for (now = 0; now < 12_000; now += 100) n.behind(look(100, { depth: 10, pictures: 50, stride: 2 }), now);
    expect(n.behind(look(100, { depth: 10, pictures: 50, stride: 2 }), now)).toBe(50);
    for (now = 12_000; now < 24_000; now += 100) n.behind(look(40, { depth: 10, pictures: 20, stride: 2 }), now);
    expect(n.behind(look(40, { depth: 10, pictures: 20, stride: 2 }), now)).toBe(0);
  });

  test('an encoder\'s own delay is at most a second of pictures: a slow start that leaves seconds owed, not shrinking, is behind', () => {
    const m = make();
    let now = 0;
    for (; now < 3000; now += 100) m.behind(look(12, { depth: 10 }), now);
    // A new layout's epoch put out its first picture owing 120 (its start took 4 s of a small
    // quota) and works them off no faster than they come: behind by all beyond a second's worth.
    for (; now < 5000; now += 100) m.behind(look(120, { depth: 120 }), now);
    expect(m.behind(look(120, { depth: 120 }), now)).toBe(90);
  });
});
