/**
 * The clock a worker judges quiet sources and hung epochs on (src/pipeline/UpstreamClock.ts),
 * with an injected wall clock: it runs while the server's messages come, stands still once
 * they stop for longer than the slack, and carries on from there when they come again. And what
 * it is for, through TileContent: a stall of the server shows each tile's last picture, not its
 * name card, while a source that is really quiet still gets its card.
 */
import { UpstreamClock } from '../../src/pipeline/UpstreamClock';
import { TileContent, type TileSource } from '../../src/pipeline/TileContent';
import { SourceVideo } from '../../src/pipeline/DirectFeed';

function wall() {
  let t = 50_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

test('runs with wall time while the server is heard within the slack', () => {
  const w = wall();
  const c = new UpstreamClock({ slackMs: 300, now: w.now });
  const t0 = c.now();
  for (let i = 0; i < 20; i++) {
    w.advance(100);
    c.heard();
  }
  expect(c.now() - t0).toBe(2000);
  expect(c.stalledMs).toBe(0);
});

test('stands still in a stall beyond the slack, and resumes from where it stood', () => {
  const w = wall();
  const c = new UpstreamClock({ slackMs: 300, now: w.now });
  const t0 = c.now();
  w.advance(100);
  c.heard();
  w.advance(200);
  expect(c.now() - t0).toBe(300); // within the slack: time runs
  w.advance(5000); // the server is silent for 5.2 s
  expect(c.now() - t0).toBe(400); // 100 heard + the 300 slack, then nothing
  c.heard();
  expect(c.now() - t0).toBe(400); // continuous at the resumption
  expect(c.stalledMs).toBe(4900);
  w.advance(100);
  c.heard();
  expect(c.now() - t0).toBe(500);
  // Never runs backwards.
  let last = c.now();
  for (const step of [50, 400, 10, 2000, 1]) {
    w.advance(step);
    expect(c.now()).toBeGreaterThanOrEqual(last);
    last = c.now();
    if (step !== 2000) c.heard();
  }
});

test('on this clock a stall of the server keeps the tiles\' last pictures; a source quiet while others are heard gets its card', () => {
  const w = wall();
  const clock = new UpstreamClock({ slackMs: 300, now: w.now });
  const mk = (id: string): TileSource & { pictures: Buffer[] } => {
    const pictures: Buffer[] = [];
    let last: Buffer | null = null;
    return {
      pictures,
      video: { latestAt: 0, take: () => (last = pictures.shift() ?? last), get lastShown() { return last; } },
      tile: new SourceVideo({ gopFrames: 60, askEveryMs: 300, request: () => undefined, now: () => clock.now() }),
      card: Buffer.from(`card-${id}`),
      codedCards: { vp8: null, h264: null },
    };
  };
  const a = mk('a'), b = mk('b');
  const sources = new Map([['a', a], ['b', b]]);
  const content = new TileContent({ source: (id) => sources.get(id), videoTimeoutMs: 1000, stallTimeoutMs: 3000, camera: { w: 4, h: 2 }, now: () => clock.now() });
  const pa = Buffer.from('pa'), pb = Buffer.from('pb');
  a.pictures.push(pa);
  b.pictures.push(pb);
  clock.heard();
  a.video.latestAt = b.video.latestAt = clock.now();
  let tick = content.rawTick();
  expect([tick('a'), tick('b')]).toEqual([pa, pb]);

  // The server stalls for 4 s: nothing from anyone. Both tiles keep their last picture.
  w.advance(4000);
  tick = content.rawTick();
  expect([tick('a'), tick('b')]).toEqual([pa, pb]);

  // It is back: b's frames come, a's do not (a's camera is off). Heartbeats keep the clock running.
  for (let i = 0; i < 12; i++) {
    w.advance(100);
    clock.heard();
    b.video.latestAt = clock.now();
  }
  tick = content.rawTick();
  expect([tick('a'), tick('b')]).toEqual([a.card, pb]);
});
