import { CODEC_CHANGE_MS, DirectFeed, GopCache, MAX_DIRECT_PIXELS, SourceVideo, SUBTICKS } from '../../src/pipeline/DirectFeed';
import { execFileSync } from 'node:child_process';
import { ivfFileHeader, ivfFrameHeader, vp8FrameOk, vp8KeyframeInfo } from '../../src/media/ivf';
import fs from 'node:fs';
import { SOLID_CARD_VP8, SOLID_CARD_H264, PLACEHOLDER_COLOUR, solidFrame, renderCodedNameCard } from '../../src/pipeline/placeholder';
import { AccessUnitSplitter, h264FrameOk, h264ParameterSets, nalTypes } from '../../src/media/annexb';
import { buildFilterGraph } from '../../compositor/filterGraph';
import { computeLayout } from '../../compositor/layout';
import { loadPresets } from '../../compositor/presets';
import { epochEncoderArgs, encoderSettingsOf } from '../../compositor/ffmpegArgs';
import { loadConfig } from '../../src/config';

/** A VP8 frame header: keyframes carry the start code and a size; first partition of `part` bytes. */
function vp8(key: boolean, part = 5, extra = 10, w = 640, h = 360): Buffer {
  const head = key ? 10 : 3;
  const b = Buffer.alloc(head + part + extra);
  const tag = (key ? 0 : 1) | (0 << 1) | (1 << 4) | (part << 5);
  b[0] = tag & 0xff; b[1] = (tag >> 8) & 0xff; b[2] = (tag >> 16) & 0xff;
  if (key) {
    b[3] = 0x9d; b[4] = 0x01; b[5] = 0x2a;
    b.writeUInt16LE(w, 6);
    b.writeUInt16LE(h, 8);
  }
  return b;
}

function recorder() {
  const writes: { tile: number; frame: Buffer; pts: number }[] = [];
  const feed = new DirectFeed(2, (tile, frame, pts) => writes.push({ tile, frame, pts }));
  return { writes, feed };
}

const CARD = Buffer.from('card');
const FFMPEG = 'node_modules/@ffmpeg-installer/linux-x64/ffmpeg';

describe('direct epochs: what each tile input gets (DirectFeed)', () => {
  test('a new epoch starts each tile from its frames since the keyframe, or from its card; stamps are the picture in 1/SUBTICKS', () => {
    const { writes, feed } = recorder();
    const k = vp8(true), p1 = vp8(false), p2 = vp8(false);
    feed.begin([[k, p1, p2], null], () => CARD);
    expect(writes.map((w) => [w.tile, w.pts, w.frame === CARD])).toEqual([
      [0, 0, false], [0, 1, false], [0, 2, false],
      [1, 0, true],
    ]);
    expect(feed.synced(0)).toBe(true);
    expect(feed.synced(1)).toBe(false);
  });

  test('after a card a tile takes its source again only from a keyframe; frames of one tick get rising stamps', () => {
    const { writes, feed } = recorder();
    feed.begin([null, null], () => CARD);
    feed.tick(() => true, () => CARD);
    writes.length = 0;
    expect(feed.frame(0, vp8(false), false)).toBe(false); // an inter frame after the card: dropped
    expect(writes).toHaveLength(0);
    expect(feed.frame(0, vp8(true), true)).toBe(true);
    expect(feed.frame(0, vp8(false), false)).toBe(true);
    expect(writes.map((w) => w.pts)).toEqual([SUBTICKS, SUBTICKS + 1]);
    // Arrived (by wall time) two pictures ahead of the clock, which is catching up.
    feed.frame(0, vp8(false), false, 2);
    expect(writes[2].pts).toBe(3 * SUBTICKS);
  });

  test('catching up, a frame captured for a later picture goes to the next one when its tile has nothing for it (no repeated picture); on time it keeps its own', () => {
    const { writes, feed } = recorder();
    feed.begin([[vp8(true)], [vp8(true)]], () => CARD);
    feed.tick(() => true, () => CARD); // picture 0 composed; the next is picture 1
    writes.length = 0;
    // The clock catches up: both tiles' next frames were captured for ticks after picture 1's.
    feed.frame(0, vp8(false), false, 1, true);
    feed.frame(1, vp8(false), false, 1, true);
    // Then tile 0's next, also for later: picture 1 has a frame of tile 0, so it waits its turn.
    feed.frame(0, vp8(false), false, 1, true);
    feed.frame(0, vp8(false), false, 2, true);
    expect(writes.map((w) => [w.tile, w.pts])).toEqual([[0, SUBTICKS], [1, SUBTICKS], [0, 2 * SUBTICKS], [0, 3 * SUBTICKS]]);
    // On time (a tick's timer about to fire), a frame for the tick after stays there.
    feed.tick(() => true, () => CARD);
    feed.tick(() => true, () => CARD);
    feed.tick(() => true, () => CARD); // the next is picture 4; tile 1 has nothing for it
    writes.length = 0;
    feed.frame(1, vp8(false), false, 1);
    expect(writes.map((w) => [w.tile, w.pts])).toEqual([[1, 5 * SUBTICKS]]);
  });

  test('fresh: the next picture has a source frame in some tile (or is the first); cards and frames for later pictures do not count', () => {
    const { feed } = recorder();
    feed.begin([[vp8(true)], null], () => CARD);
    expect(feed.fresh()).toBe(true); // the first picture
    feed.tick(() => true, () => CARD);
    expect(feed.fresh()).toBe(false); // only the card went to tile 1
    feed.frame(0, vp8(false), false, 1); // captured for the picture after the next
    expect(feed.fresh()).toBe(false);
    feed.tick(() => true, () => CARD);
    expect(feed.fresh()).toBe(true); // now it is the next one's
    feed.tick(() => true, () => CARD);
    expect(feed.fresh()).toBe(false);
    feed.frame(0, vp8(false), false);
    expect(feed.fresh()).toBe(true);
  });

  test('every tick, a tile that is not live or not in step gets its card (the frame sync waits for every input), once per tick', () => {
    const { writes, feed } = recorder();
    feed.begin([[vp8(true)], null], () => CARD);
    writes.length = 0;
    feed.tick(() => true, () => CARD); // tile 1 already has its card for picture 0
    expect(writes).toHaveLength(0);
    feed.tick(() => true, () => CARD);
    expect(writes.map((w) => [w.tile, w.pts])).toEqual([[1, SUBTICKS]]);
    writes.length = 0;
    // Tile 0's source goes quiet: card, and out of step until its next keyframe.
    feed.tick((i) => i !== 0, () => CARD);
    expect(writes.map((w) => [w.tile, w.pts])).toEqual([[0, 2 * SUBTICKS], [1, 2 * SUBTICKS]]);
    expect(feed.synced(0)).toBe(false);
    feed.desync(1);
    expect(feed.synced(1)).toBe(false);
  });

  test('end: two more cards, for the two pictures after the last, so every picture up to the last comes out; nothing is written after', () => {
    const { writes, feed } = recorder();
    feed.begin([[vp8(true)], [vp8(true)]], () => CARD);
    feed.tick(() => true, () => CARD);
    feed.tick(() => true, () => CARD);
    writes.length = 0;
    feed.end(() => CARD);
    expect(writes.map((w) => [w.tile, w.pts, w.frame === CARD])).toEqual([[0, 2 * SUBTICKS, true], [0, 3 * SUBTICKS, true], [1, 2 * SUBTICKS, true], [1, 3 * SUBTICKS, true]]);
    writes.length = 0;
    feed.frame(0, vp8(false), false);
    feed.tick(() => true, () => CARD);
    expect(writes).toHaveLength(0);
  });
});

describe('GopCache', () => {
  test('keeps the frames since the last keyframe, forgets a group longer than its bound', () => {
    const g = new GopCache(3);
    g.push(vp8(false), false);
    expect(g.frames()).toBeNull(); // nothing from a keyframe yet
    const k = vp8(true);
    g.push(k, true);
    g.push(vp8(false), false);
    expect(g.frames()).toHaveLength(2);
    expect(g.frames()![0]).toBe(k);
    expect(g.frames(1)).toBeNull(); // more than asked for
    g.push(vp8(false), false);
    g.push(vp8(false), false);
    expect(g.frames()).toBeNull(); // beyond its bound: forgotten until the next keyframe
    g.push(k, true);
    expect(g.frames()).toHaveLength(1);
  });
});

describe('VP8 frame headers (what reaches a decoder inside an epoch)', () => {
  test('well-formed frames pass; junk, a wrong keyframe flag, a bad version or an oversized partition do not', () => {
    expect(vp8FrameOk(vp8(true), true)).toBe(true);
    expect(vp8FrameOk(vp8(false), false)).toBe(true);
    expect(vp8FrameOk(vp8(true), false)).toBe(false);
    expect(vp8FrameOk(vp8(false), true)).toBe(false);
    expect(vp8FrameOk(vp8(false, 50, 0).subarray(0, 20), false)).toBe(false);
    const badVersion = vp8(false);
    badVersion[0] |= 7 << 1;
    expect(vp8FrameOk(badVersion, false)).toBe(false);
    const noStart = vp8(true);
    noStart[3] = 0;
    expect(vp8FrameOk(noStart, true)).toBe(false);
    expect(vp8FrameOk(Buffer.alloc(2), false)).toBe(false);
  });
});

describe('a direct epoch\'s FFmpeg arguments', () => {
  test('VP8 inputs on pipes without graph rebuilds, letterboxed first, one picture per tick out', () => {
    const config = loadConfig({});
    const layout = computeLayout(loadPresets().get('grid')!, { width: 1280, height: 720, tiles: [{ id: 'a', kind: 'camera' }, { id: 'b', kind: 'camera' }] });
    const { graph, output } = buildFilterGraph(layout, {
      fps: 30, background: '#181818', inputSize: () => ({ w: 640, h: 360 }),
      inputFilter: () => 'scale=640:360:force_original_aspect_ratio=decrease', pace: true,
    });
    expect(graph).toMatch(/^\[0:v\]scale=640:360:force_original_aspect_ratio=decrease[,[]/);
    expect(graph).toMatch(/fps=30:round=down,format=yuv420p\[out\]$/);
    const args = epochEncoderArgs(['vp8', 'vp8'], graph, output, encoderSettingsOf(config, { width: 1280, height: 720, fps: 30 })).join(' ');
    expect(args).toContain('-threads 1 -reinit_filter 0 -probesize 32 -analyzeduration 0 -thread_queue_size 64 -f ivf -i pipe:3');
    expect(args).toContain('-f ivf -i pipe:4');
    // An H.264 input: each picture out as soon as its frame is in.
    const mixed = epochEncoderArgs(['vp8', 'h264'], graph, output, encoderSettingsOf(config, { width: 1280, height: 720, fps: 30 })).join(' ');
    expect(mixed).toContain('-threads 1 -reinit_filter 0 -probesize 32 -analyzeduration 0 -thread_queue_size 64 -f ivf -i pipe:3');
    expect(mixed).toContain('-threads 1 -flags low_delay -reinit_filter 0 -probesize 32 -analyzeduration 0 -thread_queue_size 64 -f ivf -i pipe:4');
  });
});

/** Access units of a short x264 clip (as a browser sends: constrained baseline, no B-frames); keyframes every `gop`. */
function h264Clip(frames: number, gop: number, size = '640x360'): Buffer[] {
  const out = execFileSync(FFMPEG, ['-v', 'error', '-f', 'lavfi', '-i', `testsrc=s=${size}:r=30`, '-frames:v', String(frames), '-pix_fmt', 'yuv420p', '-c:v', 'libx264', '-preset', 'ultrafast', '-profile:v', 'baseline', '-g', String(gop), '-x264-params', 'aud=1', '-f', 'h264', 'pipe:1']);
  const split = new AccessUnitSplitter();
  const aus = split.push(out);
  aus.push(split.end()!);
  return aus;
}

/** Decodes IVF (H.264) with `bin` to yuv420p frames of 640×360 (letterboxed, as a direct epoch's input). */
function decodeH264(bin: string, frames: Buffer[]): Buffer[] {
  const ivf = Buffer.concat([ivfFileHeader(640, 360, 30, 1, 'H264'), ...frames.flatMap((f, i) => [ivfFrameHeader(f.length, BigInt(i)), f])]);
  const raw = execFileSync(bin, ['-v', 'error', '-threads', '1', '-reinit_filter', '0', '-f', 'ivf', '-i', 'pipe:0', '-vf', 'scale=640:360', '-vsync', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'yuv420p', 'pipe:1'], { input: ivf, maxBuffer: 1 << 28 });
  const size = 640 * 360 * 1.5;
  return Array.from({ length: raw.length / size }, (_, k) => raw.subarray(k * size, (k + 1) * size));
}

describe('H.264 in direct epochs', () => {
  test('h264FrameOk: Annex B with sane NAL headers and a slice; a keyframe has its IDR, SPS and PPS within the size limit', () => {
    const [key, inter] = h264Clip(2, 30);
    expect(h264FrameOk(key, true, MAX_DIRECT_PIXELS)).toBe(true);
    expect(h264FrameOk(inter, false, MAX_DIRECT_PIXELS)).toBe(true);
    expect(h264FrameOk(inter, true, MAX_DIRECT_PIXELS)).toBe(false); // no IDR
    expect(h264FrameOk(key, true, 640 * 360 - 1)).toBe(false); // too big
    expect(h264FrameOk(Buffer.from('junk junk junk'), false, MAX_DIRECT_PIXELS)).toBe(false);
    const forbidden = Buffer.from(inter);
    forbidden[forbidden.indexOf(Buffer.from([0, 0, 1]), 4) + 3] |= 0x80; // the slice's header
    expect(h264FrameOk(forbidden, false, MAX_DIRECT_PIXELS)).toBe(false);
    const idrOnly = h264ParameterSets(key)!;
    expect(nalTypes(idrOnly)).toEqual([7, 8]);
    const at = key.indexOf(Buffer.from([0, 0, 1, 0x65]));
    expect(at).toBeGreaterThan(0);
    expect(h264FrameOk(key.subarray(at), true, MAX_DIRECT_PIXELS)).toBe(false); // IDR without SPS/PPS
  });

  test('SourceVideo: a keyframe without SPS and PPS gets the last ones; a codec change needs a keyframe and is not taken twice within CODEC_CHANGE_MS', () => {
    let now = 1000;
    const v = new SourceVideo({ gopFrames: 60, askEveryMs: 300, request: () => undefined, now: () => now });
    const [key, inter] = h264Clip(2, 30);
    expect(v.take('h264', key, true)).toBe(key);
    expect(v.codec).toBe('h264');
    expect(v.live(1000, 'h264')).toBe(true);
    expect(v.live(1000, 'vp8')).toBe(false);
    const bare = key.subarray(key.indexOf(Buffer.from([0, 0, 1, 0x65])));
    const fixed = v.take('h264', bare, true)!;
    expect(nalTypes(fixed)).toEqual([7, 8, 5]);
    expect(v.take('h264', inter, false)).toBe(inter);
    expect(v.gop.frames()).toHaveLength(2);
    // Another codec: not from an inter frame, and not again within CODEC_CHANGE_MS.
    expect(v.take('vp8', vp8(false), false)).toBeNull();
    expect(v.codec).toBe('h264');
    now += CODEC_CHANGE_MS;
    expect(v.take('vp8', vp8(true), true)).not.toBeNull();
    expect(v.codec).toBe('vp8');
    expect(v.gop.frames()).toHaveLength(1); // the H.264 group is gone
    now += CODEC_CHANGE_MS - 1;
    expect(v.take('h264', key, true)).toBeNull();
    expect(v.codec).toBe('vp8');
    now += 1;
    expect(v.take('h264', key, true)).toBe(key);
    expect(v.codec).toBe('h264');
  });

  test('SourceVideo: the negotiated codec stands until the first frame, which may change it at once if a keyframe', () => {
    // What a recording's first layout gives a source that has sent nothing yet: an input of its
    // negotiated codec (an H.264 sender got a VP8 input, then a second epoch at its first frame).
    let now = 1000;
    const hinted = (codec: 'vp8' | 'h264' | null) => new SourceVideo({ gopFrames: 60, askEveryMs: 300, request: () => undefined, now: () => now, codec });
    const [key, inter] = h264Clip(2, 30);
    const v = hinted('h264');
    expect(v.codec).toBe('h264');
    expect(v.live(1000)).toBe(false); // nothing received yet: its card shows
    expect(v.take('h264', key, true)).toBe(key);
    expect(v.live(1000, 'h264')).toBe(true);
    expect(v.take('h264', inter, false)).toBe(inter);
    expect(hinted(null).codec).toBeNull();
    // A wrong hint: a keyframe of the other codec changes it at once (no CODEC_CHANGE_MS to wait),
    // an inter frame of it does not.
    const w = hinted('vp8');
    expect(w.take('h264', inter, false)).toBeNull();
    expect(w.codec).toBe('vp8');
    expect(w.take('h264', key, true)).toBe(key);
    expect(w.codec).toBe('h264');
    now += 1;
    expect(w.take('h264', inter, false)).toBe(inter);
  });

  test.each([['bundled 4.1', FFMPEG], ['Debian 5.1', '/usr/bin/ffmpeg']])('a card between a sender\'s pictures decodes in one decoder, both ways (%s)', (_label, bin) => {
    if (!fs.existsSync(bin)) return;
    // The sender at 1280×720; the plain card (640×360, its own SPS and PPS) for three pictures;
    // then the sender again from its next keyframe.
    const clip = h264Clip(60, 30, '1280x720');
    const frames = decodeH264(bin, [...clip.slice(0, 20), SOLID_CARD_H264, SOLID_CARD_H264, SOLID_CARD_H264, ...clip.slice(30, 40)]);
    expect(frames).toHaveLength(33);
    const want = solidFrame(640, 360, PLACEHOLDER_COLOUR);
    for (const k of [20, 21, 22]) for (const at of [0, 640 * 180 + 320, 640 * 360 + 100, 640 * 360 * 1.25 + 100]) expect(Math.abs(frames[k][at] - want[at])).toBeLessThanOrEqual(2);
    // After the card, the sender's picture again (testsrc is far from the card's flat colour).
    expect(frames[23].equals(frames[22])).toBe(false);
    expect(decodeH264(bin, clip.slice(30, 31))[0].equals(frames[23])).toBe(true);
  });

  test('name cards as H.264 (renderCodedNameCard): each an IDR with its SPS and PPS showing its name on the placeholder colour', async () => {
    const config = loadConfig({});
    const logger = { child: () => logger, debug() {}, info() {}, warn() {}, error() {} } as never;
    const size = { w: 640, h: 360 };
    const [a, b] = await Promise.all([renderCodedNameCard(FFMPEG, size, 'Ada Lovelace', config.fontFile, 'h264', logger), renderCodedNameCard(FFMPEG, size, 'Bo', config.fontFile, 'h264', logger)]);
    expect(a && b).toBeTruthy();
    const want = solidFrame(640, 360, PLACEHOLDER_COLOUR);
    for (const card of [a!, b!]) {
      expect(h264FrameOk(card, true, MAX_DIRECT_PIXELS)).toBe(true);
      const [raw] = decodeH264(FFMPEG, [card]);
      expect(Math.abs(raw[640 * 10 + 10] - want[640 * 10 + 10])).toBeLessThanOrEqual(3);
      expect(Math.max(...raw.subarray(640 * 180, 640 * 181))).toBeGreaterThan(150);
    }
    expect(decodeH264(FFMPEG, [a!])[0].equals(decodeH264(FFMPEG, [b!])[0])).toBe(false);
  });
});

describe('the plain card as VP8 (SOLID_CARD_VP8)', () => {
  test('is a 640×360 keyframe that decodes to the placeholder colour', () => {
    expect(vp8KeyframeInfo(SOLID_CARD_VP8)).toEqual({ width: 640, height: 360 });
    expect(vp8FrameOk(SOLID_CARD_VP8, true)).toBe(true);
    const ivf = Buffer.concat([ivfFileHeader(640, 360), ivfFrameHeader(SOLID_CARD_VP8.length, 0n), SOLID_CARD_VP8]);
    const raw = execFileSync('node_modules/@ffmpeg-installer/linux-x64/ffmpeg', ['-v', 'error', '-f', 'ivf', '-i', 'pipe:0', '-f', 'rawvideo', '-pix_fmt', 'yuv420p', 'pipe:1'], { input: ivf });
    const want = solidFrame(640, 360, PLACEHOLDER_COLOUR);
    expect(raw.length).toBe(want.length);
    for (const at of [0, 640 * 180 + 320, 640 * 360 + 100, 640 * 360 * 1.25 + 100]) expect(Math.abs(raw[at] - want[at])).toBeLessThanOrEqual(2);
  });
});

describe('name cards as VP8 (renderCodedNameCard)', () => {
  test('cards requested together (one batched FFmpeg) are each a keyframe showing its name on the placeholder colour', async () => {
    const config = loadConfig({});
    const ffmpeg = 'node_modules/@ffmpeg-installer/linux-x64/ffmpeg';
    const logger = { child: () => logger, debug() {}, info() {}, warn() {}, error() {} } as never;
    const size = { w: 640, h: 360 };
    const [a, b] = await Promise.all([renderCodedNameCard(ffmpeg, size, 'Ada Lovelace', config.fontFile, 'vp8', logger), renderCodedNameCard(ffmpeg, size, 'Bo', config.fontFile, 'vp8', logger)]);
    expect(a && b).toBeTruthy();
    expect(a!.equals(b!)).toBe(false);
    const want = solidFrame(640, 360, PLACEHOLDER_COLOUR);
    for (const card of [a!, b!]) {
      expect(vp8KeyframeInfo(card)).toEqual({ width: 640, height: 360 });
      const ivf = Buffer.concat([ivfFileHeader(640, 360), ivfFrameHeader(card.length, 0n), card]);
      const raw = execFileSync(ffmpeg, ['-v', 'error', '-f', 'ivf', '-i', 'pipe:0', '-f', 'rawvideo', '-pix_fmt', 'yuv420p', 'pipe:1'], { input: ivf });
      expect(raw.length).toBe(want.length);
      expect(Math.abs(raw[640 * 10 + 10] - want[640 * 10 + 10])).toBeLessThanOrEqual(3); // the card's colour in a corner
      expect(Math.max(...raw.subarray(640 * 180, 640 * 181))).toBeGreaterThan(150); // the name, light, across the middle
    }
    // Without a font: no card (the caller shows the plain one), and no FFmpeg.
    expect(await renderCodedNameCard(ffmpeg, size, 'Ada', null, 'vp8', logger)).toBeNull();
  });
});

describe('SourceVideo (a source as the direct epochs see it)', () => {
  test('junk and absurd sizes never reach an epoch and make the source not live; good frames do; keyframe asks are spaced', () => {
    let now = 1000, asks = 0;
    const v = new SourceVideo({ gopFrames: 60, askEveryMs: 300, request: () => asks++, now: () => now });
    expect(v.live(1000)).toBe(false); // nothing yet
    expect(v.take('vp8', vp8(true), true)).not.toBeNull();
    expect(v.take('vp8', vp8(false), false)).not.toBeNull();
    expect(v.gop.frames()).toHaveLength(2);
    expect(v.live(1000)).toBe(true);
    expect(v.take('vp8', Buffer.from('junk junk junk'), false)).toBeNull();
    expect(v.gop.frames()).toBeNull(); // a new epoch cannot start from a broken group
    expect(asks).toBe(1); // and the sender is asked for a keyframe
    expect(v.take('vp8', vp8(true, 5, 10, 8192, 8192), true)).toBeNull(); // 64 Mpixel
    now += 1001;
    expect(v.live(1000)).toBe(false); // only junk for a second: its card
    v.askKeyframe();
    v.askKeyframe();
    now += 299;
    v.askKeyframe();
    expect(asks).toBe(2);
    now += 1;
    v.askKeyframe();
    expect(asks).toBe(3);
    // Through a decoder process (raw tiles): live, and for an input of its codec only.
    v.decoded('h264');
    expect(v.lastVideoAt).toBe(now);
    expect(v.live(1000)).toBe(true);
    expect(v.live(1000, 'vp8')).toBe(false);
  });

  test('after a refused frame its stream waits for a keyframe: the frames that predict from it never reach an epoch; one is asked for', () => {
    let now = 1000, asks = 0;
    const v = new SourceVideo({ gopFrames: 60, askEveryMs: 300, request: () => asks++, now: () => now });
    expect(v.take('vp8', vp8(true), true)).not.toBeNull();
    expect(v.take('vp8', vp8(false), false)).not.toBeNull();
    // One damaged frame in the middle of a group (cut short of its first partition).
    expect(v.take('vp8', vp8(false, 50, 10).subarray(0, 20), false)).toBeNull();
    expect(asks).toBe(1);
    // Well-formed frames after it decode against a picture they were not made from: held back.
    for (let k = 0; k < 5; k++, now += 33) expect(v.take('vp8', vp8(false), false)).toBeNull();
    expect(v.live(1000)).toBe(true); // the last good picture stays up meanwhile
    expect(v.gop.frames()).toBeNull();
    now += 300;
    expect(v.take('vp8', vp8(false), false)).toBeNull();
    expect(asks).toBe(2); // asked again, spaced
    now += 1000;
    expect(v.live(1000)).toBe(false); // no keyframe within the video timeout: the card
    expect(v.refused).toBe(7); // the damaged one and the six held back
    // The keyframe: the stream goes on from it.
    expect(v.take('vp8', vp8(true), true)).not.toBeNull();
    expect(v.take('vp8', vp8(false), false)).not.toBeNull();
    expect(v.gop.frames()).toHaveLength(2);
    expect(v.live(1000)).toBe(true);
    // A frame of another codec that is not a keyframe is refused but breaks nothing: it is not of this stream.
    expect(v.take('h264', Buffer.from([0, 0, 0, 1, 0x41, 1, 2, 3]), false)).toBeNull();
    expect(v.take('vp8', vp8(false), false)).not.toBeNull();
  });
});
