/**
 * What each tile shows (src/pipeline/TileContent.ts), with stand-in sources and an injected
 * clock: live pictures, name cards after the video timeout, a leaver's last picture then card,
 * the waiting tile, and the VP8 cards direct epochs get.
 */
import { TileContent, WAITING_ID, type TileSource } from '../../src/pipeline/TileContent';
import { SourceVideo } from '../../src/pipeline/DirectFeed';
import { SOLID_CARD_H264, SOLID_CARD_VP8 } from '../../src/pipeline/placeholder';

const camera = { w: 4, h: 2 };

function setup() {
  let now = 10_000;
  const sources = new Map<string, TileSource & { pictures: Buffer[] }>();
  const add = (id: string) => {
    const pictures: Buffer[] = [];
    let last: Buffer | null = null;
    const s = {
      pictures,
      video: {
        latestAt: 0,
        take: () => (last = pictures.shift() ?? last),
        get lastShown() {
          return last;
        },
      },
      tile: new SourceVideo({ gopFrames: 60, askEveryMs: 300, request: () => undefined, now: () => now }),
      card: Buffer.from(`card-${id}`),
      codedCards: { vp8: null as Buffer | null, h264: null as Buffer | null },
    };
    sources.set(id, s);
    return s;
  };
  const content = new TileContent({ source: (id) => sources.get(id), videoTimeoutMs: 1000, stallTimeoutMs: 1000, camera, now: () => now });
  return { content, sources, add, advance: (ms: number) => (now += ms), now: () => now };
}

/** A VP8 keyframe header good enough for SourceVideo. */
function key(): Buffer {
  const b = Buffer.alloc(20);
  const tag = 0 | (1 << 4) | (5 << 5);
  b[0] = tag & 0xff; b[1] = (tag >> 8) & 0xff; b[2] = (tag >> 16) & 0xff;
  b[3] = 0x9d; b[4] = 0x01; b[5] = 0x2a;
  b.writeUInt16LE(640, 6);
  b.writeUInt16LE(360, 8);
  return b;
}

test('raw tiles: a live source\'s next picture (the same one for every epoch in a tick), its last again, its card after the timeout', () => {
  const { content, add, advance, now } = setup();
  const a = add('a');
  const p1 = Buffer.from('p1'), p2 = Buffer.from('p2');
  a.pictures.push(p1, p2);
  a.video.latestAt = now();
  let tick = content.rawTick();
  expect(tick('a')).toBe(p1);
  expect(tick('a')).toBe(p1); // a second epoch in the same tick: same picture, not the next
  tick = content.rawTick();
  expect(tick('a')).toBe(p2);
  tick = content.rawTick();
  expect(tick('a')).toBe(p2); // nothing new in time: the last one again
  advance(1001);
  expect(content.rawTick()('a')).toBe(a.card);
});

test('a leaver\'s tile shows its last picture until the timeout, then its card, until no epoch shows it', () => {
  const { content, sources, add, advance, now } = setup();
  const a = add('a');
  a.pictures.push(Buffer.from('last'));
  a.video.latestAt = now();
  content.rawTick()('a');
  content.depart('a', a);
  sources.delete('a');
  const shown = content.rawTick()('a');
  expect(shown.toString()).toBe('last');
  expect(shown).not.toBe(a.video.lastShown); // a copy: the decoder's buffer goes back to its pool
  advance(1001);
  expect(content.rawTick()('a')).toBe(a.card);
  content.forgetDeparted(() => false);
  expect(content.rawTick()('a').length).toBe((camera.w * camera.h * 3) / 2); // unknown now: a plain card
});

test('the waiting tile shows its card; direct epochs get cards of their input\'s codec: the source\'s, a leaver\'s, the waiting one, else the plain one', () => {
  const { content, sources, add } = setup();
  expect(content.rawTick()(WAITING_ID)).toBe(content.waitingCard);
  expect(content.codedCard(WAITING_ID)).toBe(SOLID_CARD_VP8);
  content.waitingVp8 = Buffer.from('waiting-vp8');
  expect(content.codedCard(WAITING_ID).toString()).toBe('waiting-vp8');
  const a = add('a');
  expect(content.codedCard('a')).toBe(SOLID_CARD_VP8); // not rendered yet
  expect(content.codedCard('a', 'h264')).toBe(SOLID_CARD_H264);
  a.codedCards.vp8 = Buffer.from('a-vp8');
  a.codedCards.h264 = Buffer.from('a-h264');
  expect(content.codedCard('a').toString()).toBe('a-vp8');
  expect(content.codedCard('a', 'h264').toString()).toBe('a-h264');
  content.depart('a', a);
  sources.delete('a');
  expect(content.codedCard('a').toString()).toBe('a-vp8');
  expect(content.codedCard('a', 'h264').toString()).toBe('a-h264');
});

test('a direct epoch\'s tile is live while its VP8 comes, for the shorter of the video timeout and half the stall timeout', () => {
  const { content, add, advance } = setup();
  const a = add('a');
  expect(content.live('a')).toBe(false);
  a.tile.take('vp8', key(), true);
  expect(content.live('a')).toBe(true);
  expect(content.live('a', 'vp8')).toBe(true);
  expect(content.live('a', 'h264')).toBe(false); // an H.264 input cannot take it: its card
  advance(500);
  expect(content.live('a')).toBe(true);
  advance(1);
  expect(content.live('a')).toBe(false); // stall timeout 1000: a quiet input stalls the picture, so its card at 500
  expect(content.live('nobody')).toBe(false);
});
