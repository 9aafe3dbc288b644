/** The recording's own record (times, participants, layouts, gaps), on an injected clock. */
import { RecordingLedger } from '../../src/pipeline/RecordingLedger';

function clock(start = Date.parse('2026-12-03T10:00:00.000Z')) {
  let t = start;
  return { now: () => new Date(t), advance: (ms: number) => (t += ms) };
}

describe('RecordingLedger', () => {
  test('startedAt moves from the request to the clock start, and reports how long that took', () => {
    const c = clock();
    const l = new RecordingLedger({ now: c.now });
    expect(l.info().startedAt).toBe('2026-12-03T10:00:00.000Z');
    c.advance(420);
    expect(l.clockStarted()).toBe(420);
    expect(l.info().startedAt).toBe('2026-12-03T10:00:00.420Z');
  });

  test('one entry per participant across a leave and a rejoin; joinedAt stays the first join', () => {
    const c = clock();
    const l = new RecordingLedger({ now: c.now });
    l.joined('alice', 'Alice');
    c.advance(1000);
    l.joined('bob', 'Bob');
    c.advance(1000);
    l.left('alice');
    expect(l.info().participants).toEqual([
      { id: 'alice', name: 'Alice', joinedAt: '2026-12-03T10:00:00.000Z', leftAt: '2026-12-03T10:00:02.000Z' },
      { id: 'bob', name: 'Bob', joinedAt: '2026-12-03T10:00:01.000Z' },
    ]);
    c.advance(1000);
    l.joined('alice', 'Alice');
    expect(l.info().participants[0]).toEqual({ id: 'alice', name: 'Alice', joinedAt: '2026-12-03T10:00:00.000Z' });
    l.left('nobody'); // a source the ledger never saw: nothing happens
    expect(l.info().participants).toHaveLength(2);
  });

  test('info and manifest hand out copies', () => {
    const l = new RecordingLedger({ now: clock().now });
    l.joined('alice', 'Alice');
    l.layout('grid', ['alice'], false);
    l.info().participants[0].name = 'changed';
    l.manifest().layouts[0].tiles.push('mallory');
    expect(l.info().participants[0].name).toBe('Alice');
    expect(l.manifest().layouts[0].tiles).toEqual(['alice']);
  });

  test('layouts in order, small tiles marked; no interruptions field without one', () => {
    const c = clock();
    const l = new RecordingLedger({ now: c.now });
    l.layout('grid', ['a', 'b'], false);
    c.advance(5000);
    l.layout('grid', ['a', 'b', 'c'], true);
    expect(l.manifest()).toEqual({
      layouts: [
        { at: '2026-12-03T10:00:00.000Z', preset: 'grid', tiles: ['a', 'b'] },
        { at: '2026-12-03T10:00:05.000Z', preset: 'grid', tiles: ['a', 'b', 'c'], smallTiles: true },
      ],
    });
  });

  test('the end: the first of stop and failure counts; available carries the size', () => {
    const c = clock();
    const l = new RecordingLedger({ now: c.now });
    expect(l.info()).toEqual({ startedAt: '2026-12-03T10:00:00.000Z', participants: [] });
    c.advance(60_000);
    l.ended();
    c.advance(2_000);
    l.failed({ code: 'REC_ERR_SINK', message: 'storage write failed' });
    const info = l.info();
    expect(info.endedAt).toBe('2026-12-03T10:01:00.000Z');
    expect(info.error).toEqual({ code: 'REC_ERR_SINK', message: 'storage write failed' });
    const ok = new RecordingLedger({ now: c.now });
    ok.ended();
    ok.available(new Date(c.advance(150)), 6_713_014);
    expect(ok.info()).toMatchObject({ endedAt: '2026-12-03T10:01:02.000Z', availableAt: '2026-12-03T10:01:02.150Z', bytes: 6_713_014 });
  });

  test('a continuing worker keeps the first one\'s start, layouts and gaps; who was there counts as left until seen again', () => {
    const c = clock(Date.parse('2026-12-03T10:05:00.000Z'));
    const l = new RecordingLedger({
      now: c.now,
      resume: {
        startedAt: '2026-12-03T10:00:00.000Z',
        participants: [
          { id: 'alice', name: 'Alice', joinedAt: '2026-12-03T10:00:00.000Z' },
          { id: 'bob', name: 'Bob', joinedAt: '2026-12-03T10:01:00.000Z', leftAt: '2026-12-03T10:02:00.000Z' },
        ],
        layouts: [{ at: '2026-12-03T10:00:00.000Z', preset: 'grid', tiles: ['alice'] }],
        interruptions: [{ at: 300_000, gapMs: 900, reason: 'worker exited (code null, signal SIGKILL)' }],
      },
    });
    expect(l.info().startedAt).toBe('2026-12-03T10:00:00.000Z');
    expect(l.info().participants.map((p) => p.leftAt)).toEqual(['2026-12-03T10:05:00.000Z', '2026-12-03T10:02:00.000Z']);
    l.joined('alice', 'Alice');
    expect(l.info().participants[0].leftAt).toBeUndefined();
    l.layout('grid', ['alice'], false);
    expect(l.manifest().layouts).toHaveLength(2);
    expect(l.manifest().interruptions).toEqual([{ at: 300_000, gapMs: 900, reason: 'worker exited (code null, signal SIGKILL)' }]);
  });
});
