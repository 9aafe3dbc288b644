/**
 * Layout changes as tick bookkeeping (src/pipeline/EpochSchedule.ts), with stand-in epochs and a
 * tick counter instead of FFmpeg and a clock: make-before-break, a new epoch dying before its
 * first picture, the owner dying, shed ticks, draining.
 */
import { EpochSchedule, type EpochControl, type ScheduledEpoch } from '../../src/pipeline/EpochSchedule';

class FakeEpoch implements EpochControl {
  killed = false;
  ended = false;
  constructor(readonly name: string) {}
  kill(): void {
    this.killed = true;
  }
  end(): void {
    this.ended = true;
  }
}

function setup() {
  let ticks = 0;
  let now = 0;
  const out: string[] = [];
  let drained = false;
  const s = new EpochSchedule<FakeEpoch>({ now: () => now, ticks: () => ticks, emit: (t, au) => out.push(`${t}:${au.toString()}`), drained: () => (drained = true) });
  const fed: Record<string, number[]> = {};
  /** Make tick `ticks` (feeding the epochs) and advance the clock. */
  const tick = (shed = false, idleSuperseded = false) => {
    const t = ticks++;
    s.feed(t, shed, (e) => (fed[e.handle.name] ??= []).push(t), idleSuperseded);
    now += 33;
  };
  /** Epoch e answers its oldest fed tick with a picture named after it. */
  const answer = (e: ScheduledEpoch<FakeEpoch>, n = 1) => {
    for (let k = 0; k < n; k++) s.output(e, Buffer.from(`${e.handle.name}${e.fed[0]}`), k === 0);
  };
  return { s, out, fed, tick, answer, isDrained: () => drained };
}

test('the first epoch owns from its first tick; pictures leave in tick order as they come', () => {
  const { s, out, tick, answer } = setup();
  const a = s.begin(new FakeEpoch('A'));
  expect(a.ownFrom).toBe(0);
  tick();
  tick();
  tick();
  expect(out).toEqual([]); // owed, not yet encoded
  answer(a, 2);
  expect(out).toEqual(['0:A0', '1:A1']);
  expect(s.next).toBe(2);
  expect(s.starting(a)).toBe(false);
});

test('make-before-break: a new layout takes over at its first tick once its first picture is out; the old one is ended', () => {
  const { s, out, fed, tick, answer } = setup();
  const a = s.begin(new FakeEpoch('A'));
  tick();
  tick();
  answer(a, 2);
  const b = s.begin(new FakeEpoch('B')); // fed from tick 2
  expect(b.ownFrom).toBe(Infinity);
  tick();
  tick();
  answer(a, 2); // A's pictures for ticks 2, 3 are held back: B may take over there
  expect(out).toEqual(['0:A0', '1:A1']);
  answer(b); // B's first picture (for tick 2): B owns from 2, A is ended
  expect(a.handle.ended).toBe(true);
  expect([a.ownUntil, b.ownFrom]).toEqual([2, 2]);
  answer(b);
  expect(out).toEqual(['0:A0', '1:A1', '2:B2', '3:B3']);
  tick();
  expect(fed.A).toEqual([0, 1, 2, 3]); // A is fed no more after the switch
  expect(fed.B).toEqual([2, 3, 4]);
});

test('a new epoch that dies before its first picture changes nothing: the old one goes on, its held pictures leave', () => {
  const { s, out, tick, answer } = setup();
  const a = s.begin(new FakeEpoch('A'));
  tick();
  answer(a);
  const b = s.begin(new FakeEpoch('B'));
  tick();
  tick();
  answer(a, 2);
  expect(out).toEqual(['0:A0']);
  const r = s.exited(b, false);
  expect(r).toEqual({ unexpected: true, replace: true }); // nothing else is starting: try again
  expect(out).toEqual(['0:A0', '1:A1', '2:A2']);
  expect(s.epochs).toEqual([a]);
});

test('a newer layout kills the one still warming up, which never owned a tick', () => {
  const { s, tick, answer } = setup();
  const a = s.begin(new FakeEpoch('A'));
  tick();
  answer(a);
  const b = s.begin(new FakeEpoch('B'));
  tick();
  const c = s.begin(new FakeEpoch('C'));
  expect(b.handle.killed).toBe(true);
  expect(s.epochs.map((e) => e.handle.name)).toEqual(['A', 'C']);
  // B's exit (we killed it) is expected.
  expect(s.exited(b, false)).toEqual({ unexpected: false, replace: false });
  tick();
  answer(c);
  expect(c.ownFrom).toBe(2);
});

test('the owner dies: its owed ticks repeat the last picture, and the replacement owns from its first tick at once', () => {
  const { s, out, tick, answer } = setup();
  const a = s.begin(new FakeEpoch('A'));
  tick();
  tick();
  tick();
  answer(a);
  expect(s.exited(a, false)).toEqual({ unexpected: true, replace: true });
  expect(out).toEqual(['0:A0']);
  expect(s.repeats).toBe(2); // ticks 1 and 2: nothing of their own in the file
  expect(s.next).toBe(3);
  const b = s.begin(new FakeEpoch('B'));
  expect(b.ownFrom).toBe(3); // nothing alive to show meanwhile
  tick();
  answer(b);
  expect(out).toEqual(['0:A0', '3:B3']);
});

test('shed ticks are not fed and send nothing; the count is kept', () => {
  const { s, out, fed, tick, answer } = setup();
  const a = s.begin(new FakeEpoch('A'));
  tick();
  tick(true);
  tick();
  tick(true);
  answer(a, 2);
  expect(fed.A).toEqual([0, 2]);
  expect(out).toEqual(['0:A0', '2:A2']);
  expect(s.shed).toBe(2);
  expect(s.next).toBe(4);
});

test('composing every third tick, the second tick shed shows the next picture early: pictures centred on their frames', () => {
  const { s, out, tick, answer } = setup();
  const a = s.begin(new FakeEpoch('A'));
  tick(); // 0
  tick(true); // 1
  tick(true); // 2: nearer picture 3 than picture 0, and tick 3 is not made yet
  answer(a);
  expect(out).toEqual(['0:A0']);
  expect(s.next).toBe(2); // waits for the next tick
  tick(); // 3
  expect(s.next).toBe(2); // waits for its picture
  answer(a);
  expect(out).toEqual(['0:A0', '2:A3']); // picture 3 from tick 2 to 4
  tick(true); // 4: the last picture stays
  tick(true); // 5
  tick(); // 6
  answer(a);
  expect(out).toEqual(['0:A0', '2:A3', '5:A6']);
  expect(s.shed).toBe(4);
  expect(s.next).toBe(7);
});

test('stopping right after a shed tick: it keeps the last picture, nothing waits for a tick never made', () => {
  const { s, out, tick, answer, isDrained } = setup();
  const a = s.begin(new FakeEpoch('A'));
  tick();
  tick(true);
  tick(true);
  answer(a);
  s.drain();
  expect(out).toEqual(['0:A0']);
  expect(isDrained()).toBe(true);
});

test('a layout change while ticks are shed: the shed ticks after the switch stay shed, nothing waits for them', () => {
  const { s, out, fed, tick, answer } = setup();
  const a = s.begin(new FakeEpoch('A'));
  tick();
  answer(a);
  const b = s.begin(new FakeEpoch('B')); // fed from tick 1
  tick(true); // 1: shed
  tick(); // 2
  tick(true); // 3: shed
  answer(a, 1); // A's picture for tick 2
  answer(b, 1); // B's first picture (tick 2) switches the layout at tick 1
  tick(); // 4
  answer(b, 1);
  expect(fed.B).toEqual([2, 4]);
  expect(out).toEqual(['0:A0', '2:B2', '4:B4']);
  expect(s.shed).toBe(2);
  expect(s.next).toBe(5);
});

test('short of CPU, the epoch being replaced composes nothing the new one will own; if the new one dies first, it composes again', () => {
  const { s, out, fed, tick, answer } = setup();
  const a = s.begin(new FakeEpoch('A'));
  tick(false, true);
  answer(a);
  const b = s.begin(new FakeEpoch('B')); // fed from tick 1
  // What a tick would compose (whether it has anything new is asked of these): B alone.
  expect(s.composing(1, true).map((e) => e.handle)).toEqual([b.handle]);
  expect(s.composing(1, false).map((e) => e.handle)).toEqual([a.handle, b.handle]);
  tick(false, true);
  tick(false, true);
  expect(fed.A).toEqual([0]); // idle while B warms up
  expect(fed.B).toEqual([1, 2]);
  answer(b, 2);
  expect(out).toEqual(['0:A0', '1:B1', '2:B2']);
  expect(s.shed).toBe(0);
  // Again, but the new one dies before its first picture: the old one goes on from the next tick.
  const c = s.begin(new FakeEpoch('C')); // fed from tick 3
  tick(false, true);
  s.exited(c, false);
  tick(false, true);
  expect(fed.B).toEqual([1, 2, 4]);
  answer(b);
  expect(out).toEqual(['0:A0', '1:B1', '2:B2', '4:B4']);
  expect(s.shed).toBe(1); // tick 3 keeps B's picture of tick 2
  expect(s.next).toBe(5);
});

test('drain: a warming epoch is killed, the owner ended; drained once every tick up to the stop has left', () => {
  const { s, out, tick, answer, isDrained } = setup();
  const a = s.begin(new FakeEpoch('A'));
  tick();
  tick();
  const b = s.begin(new FakeEpoch('B'));
  tick();
  s.drain();
  expect(s.finalTick).toBe(3);
  expect([a.handle.ended, b.handle.killed]).toEqual([true, true]);
  expect(isDrained()).toBe(false);
  answer(a, 3);
  expect(out).toEqual(['0:A0', '1:A1', '2:A2']);
  expect(isDrained()).toBe(true);
  // Exits while draining are expected: no replacement.
  expect(s.exited(a, false)).toEqual({ unexpected: false, replace: false });
});

test('the last fed tick of a superseded epoch ends it', () => {
  const { s, tick, answer } = setup();
  const a = s.begin(new FakeEpoch('A'));
  tick();
  answer(a);
  s.begin(new FakeEpoch('B'));
  a.feedUntil = 3; // as when a switch happened at tick 3
  a.handle.ended = false;
  tick();
  expect(a.handle.ended).toBe(false);
  tick(); // tick 2 = feedUntil - 1
  expect(a.handle.ended).toBe(true);
});

test('drain at an earlier tick (a stop read late): ticks made after it never leave', () => {
  const { s, out, tick, answer, isDrained } = setup();
  const a = s.begin(new FakeEpoch('A'));
  for (let k = 0; k < 5; k++) tick();
  s.drain(3);
  expect(s.finalTick).toBe(3);
  answer(a, 5);
  expect(out).toEqual(['0:A0', '1:A1', '2:A2']);
  expect(isDrained()).toBe(true);
});

test('an ended epoch that exits owing pictures: the owed ticks it owned are named, and they repeat the picture before', () => {
  const { s, out, tick, answer } = setup();
  const a = s.begin(new FakeEpoch('A'));
  for (let k = 0; k < 5; k++) tick();
  answer(a); // A is four pictures behind
  const b = s.begin(new FakeEpoch('B')); // fed from tick 5
  tick();
  answer(b); // B takes over at 5; A owns [0, 5) and is ended
  expect([a.handle.ended, a.ownUntil]).toEqual([true, 5]);
  expect(s.unanswered(a)).toEqual([1, 2, 3, 4]);
  answer(a); // it puts out one more, then exits without the rest
  expect(s.unanswered(a)).toEqual([2, 3, 4]);
  expect(s.exited(a, false)).toEqual({ unexpected: false, replace: false });
  expect(out).toEqual(['0:A0', '1:A1', '5:B5']);
  expect(s.repeats).toBe(3);
  // An epoch that put out everything it owned owes nothing at its exit.
  answer(b);
  expect(s.unanswered(b)).toEqual([]);
});

test('at a drain, pictures past the final tick are not counted as owed', () => {
  const { s, tick, answer } = setup();
  const a = s.begin(new FakeEpoch('A'));
  for (let k = 0; k < 5; k++) tick();
  answer(a, 2);
  s.drain(3);
  expect(s.unanswered(a)).toEqual([2]);
});
