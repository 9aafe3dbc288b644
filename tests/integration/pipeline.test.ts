/**
 * The recording engine end to end with real FFmpeg (both the bundled 4.1 build and Debian's
 * 5.1): synthetic participants → decoders → pacer → compositor → encoder → file. Every check
 * decodes the MP4 a user would get and looks for each participant's colour at the cell the
 * layout code computed and for each participant's tone in the audio.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { runSyntheticSession, type SyntheticSessionOptions } from '../../src/media/syntheticSession';
import { participantStyle } from '../../src/media/SyntheticClip';
import type { SyntheticSource } from '../../src/media/SyntheticSource';
import { PLACEHOLDER_COLOUR } from '../../src/pipeline/placeholder';
import { LATE_START } from '../../src/worker/WorkerRecording';
import { computeLayout, type Layout } from '../../compositor/layout';
import { loadPresets } from '../../compositor/presets';
import {
  BUNDLED_FFMPEG, DEBIAN_FFMPEG, allFrames, avOffsetMs, markerRect, audioSamples, colourDistance, decodeErrors, frameAt, hexRgb, meanColour, peak, probe, toneShare,
} from '../helpers/media';
import { playInChromium } from '../helpers/player';

jest.setTimeout(180_000);

const presets = loadPresets();
const W = 1280, H = 720, FPS = 30;
let dir: string;
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-pipe-')); });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function gridFor(indices: number[]): Layout {
  return computeLayout(presets.get('grid')!, { width: W, height: H, tiles: indices.map((i) => ({ id: `p${i}`, kind: 'camera' as const })) });
}

function record(bin: string, o: Partial<SyntheticSessionOptions> & { participants: number; seconds: number; env?: Record<string, string> }, name: string) {
  const out = path.join(dir, `${name}.mp4`);
  const config = loadConfig({ FFMPEG_PATH: bin, TESSERA_X264_PRESET: 'ultrafast', ...o.env });
  return runSyntheticSession({ out, config, ffmpegPath: bin, logger, ...o }).then((r) => ({ ...r, out }));
}

/** Colour distance that still counts as "that participant's colour" after x264 and scaling. */
const SAME = 45;

function expectColoursAt(img: { w: number; h: number; rgb: Buffer }, layout: Layout, indices: number[], scale = 1) {
  // Every miss at once, with what was there instead (a name card, the background, a neighbour).
  const misses = indices.flatMap((i) => {
    const tile = layout.tiles.find((t) => t.id === `p${i}`)!;
    const got = meanColour(img, tile.video, scale);
    const want = participantStyle(i).rgb;
    const distance = Math.round(colourDistance(got, want));
    return distance < SAME ? [] : [{ participant: i, want, got: got.map(Math.round), distance }];
  });
  expect(misses).toEqual([]);
}

/**
 * Participant 4 joining participants 1–3 (their grid of three, then of four): the pictures from
 * 1 s in (the recording's own start is behind it) where one of 1–3 is in neither grid, and how
 * long after joining participant 4 was first in its cell.
 */
function joinPictures(out: string, joinedMs: number) {
  const before = gridFor([1, 2, 3]), after = gridFor([1, 2, 3, 4]);
  const v = allFrames(out, 4);
  const shows = (f: Buffer, layout: Layout, i: number) =>
    colourDistance(meanColour({ w: v.w, h: v.h, rgb: f }, layout.tiles.find((t) => t.id === `p${i}`)!.video, 4), participantStyle(i).rgb) < SAME;
  const missing = v.frames.flatMap((f, k) => (k < v.fps ? [] : [1, 2, 3].filter((i) => !shows(f, before, i) && !shows(f, after, i)).map((i) => `p${i} at ${(k / v.fps).toFixed(2)} s`)));
  const first = v.frames.findIndex((f) => shows(f, after, 4));
  return { after, missing, first, inAfterS: first < 0 ? Infinity : first / v.fps - joinedMs / 1000 };
}

const binaries: [string, string][] = [['Debian 5.1', DEBIAN_FFMPEG], ['bundled 4.1', BUNDLED_FFMPEG]];

describe.each(binaries)('recording engine with %s FFmpeg', (label, bin) => {
  const tag = label.split(' ')[0].toLowerCase();

  // Every grid size with Debian's 5.1; with the bundled 4.1 (the same graph, another build) the
  // smallest, the usual and the largest: the suite's time is near its 30-minute budget.
  test.each(tag === 'debian' ? [1, 2, 4, 6, 9] : [1, 4, 9])('%i participants (VP8 and H.264 senders): every colour at its computed cell, every tone, no clipping', async (n) => {
    // Odd participants send VP8, even ones H.264 (Annex-B access units), as browsers may.
    // Participants 7+ repeat the colours of 1+ (in other cells) but beep tones of their own: until
    // day 26 they repeated the tones too and joined 250 ms late (half a beep period) to keep two
    // identical tones from being superposed, but on a loaded machine the offset in the mix is not
    // that (a late timer, each source's audio start), and in CI participants 3 and 9 cancelled.
    const early = Array.from({ length: Math.min(n, 6) }, (_, k) => k + 1);
    // A graph starting with many inputs takes a while on a loaded 2-core machine (and, until
    // day 24, a decoder process per person with an H.264 sender: CI's machine took over 3 s for
    // six and for nine): what is asked here is where each tile is, so the tiles are looked at in
    // the last second of a 6-s call, once their start is behind them (how long the nine took is
    // reported below). The bundled build's four go through decoder processes
    // (TESSERA_DIRECT_DECODE=false), so decoded tiles' lip sync is checked too.
    const seconds = 6;
    const decoded = tag !== 'debian' && n === 4;
    const r = await record(bin, {
      participants: n, seconds, codec: (i) => (i % 2 ? 'vp8' : 'h264'), initial: early,
      ...(decoded ? { env: { TESSERA_DIRECT_DECODE: 'false' } } : {}),
      events: n > 6 ? [{ at: 0.25, action: (c) => { for (let i = 7; i <= n; i++) c.join(i); } }] : [],
    }, `${tag}-grid-${n}`);
    expect(r.info.status).toBe('available');
    expect(decodeErrors(r.out)).toBe('');
    const p = probe(r.out);
    expect([p.videoCodec, p.pixFmt, p.audioCodec, p.width, p.height]).toEqual(['h264', 'yuv420p', 'aac', W, H]);
    const indices = Array.from({ length: n }, (_, k) => k + 1);
    expectColoursAt(frameAt(r.out, seconds - 1), gridFor(indices), indices);
    if (n > 6) {
      // Reported, not asserted (the churn test asserts a joiner within 1 s): how long a burst of
      // three joins takes to reach the file while nine decoders and the new graph start.
      const v = allFrames(r.out, 4);
      const full = gridFor(indices);
      const complete = v.frames.findIndex((f) =>
        indices.every((i) => colourDistance(meanColour({ w: v.w, h: v.h, rgb: f }, full.tiles.find((t) => t.id === `p${i}`)!.video, 4), participantStyle(i).rgb) < SAME));
      console.log(`${label}: all ${n} tiles in the file ${Math.round((complete * 1000) / FPS) - 250} ms after participants 7–${n} joined`);
    }
    const audio = audioSamples(r.out, 1, 2.5);
    for (const hz of new Set(indices.map((i) => participantStyle(i).toneHz))) expect({ hz, share: toneShare(audio, hz) > 0.02 }).toEqual({ hz, share: true });
    // A tone nobody sends is absent (the check can fail).
    expect(toneShare(audio, 1760)).toBeLessThan(0.002);
    expect(peak(audioSamples(r.out))).toBeLessThan(1.0);
    if (n === 4) {
      // Lip sync, VP8 and H.264 decoded inside the epoch (Debian) or by decoder processes
      // (bundled): each participant's marker against their tone, from 2 s in. Each source's
      // audio waits as long as its pictures, decoder included; before day 22 decoded tiles'
      // waited only for the tick, and with Debian's 5.1 (which holds a frame inside) audio ran
      // 32-93 ms early, the H.264 sender's most.
      const grid = gridFor(indices);
      const sync = indices.map((i) => ({ participant: i, ...avOffsetMs(r.out, markerRect(grid.tiles.find((t) => t.id === `p${i}`)!.video), participantStyle(i).toneHz, 2) }));
      console.log(`${label}, ${decoded ? 'decoded tiles' : 'decoded in the epoch'}: lip sync ${sync.map((x) => `p${x.participant} ${x.medianMs} ms (${x.pairs})`).join(', ')}`);
      expect(sync.filter((x) => x.pairs < 4 || Math.abs(x.medianMs) > 40)).toEqual([]);
    }
  });

  test('churn (npm run demo --churn): a late joiner and a leaver re-flow the grid within 1 s, no gap, no freeze, duration = wall time', async () => {
    // Run as a user runs it: the demo CLI in its own process (spawning FFmpeg children blocks
    // the event loop in proportion to the spawning process's memory, so the recorder is not run
    // inside this test runner's large heap).
    const out = path.join(dir, `${tag}-churn.mp4`);
    const cli = spawnSync('npm', ['run', '--silent', 'demo', '--', '--participants', '4', '--seconds', '9', '--churn', '--out', out], {
      cwd: path.resolve(__dirname, '..', '..'), encoding: 'utf8', timeout: 120_000,
      env: { ...process.env, FFMPEG_PATH: bin, TESSERA_X264_PRESET: 'ultrafast', LOG_LEVEL: 'warn' },
    });
    expect(cli.status).toBe(0);
    const r = JSON.parse(cli.stdout.trim().split('\n').pop()!) as { status: string; wallMs: number; timeline: { index: number; joinedMs: number | null; leftMs: number | null }[] };
    expect(r.status).toBe('available');
    expect(decodeErrors(out)).toBe('');
    const p = probe(out);
    const expectedFrames = Math.round((r.wallMs / 1000) * FPS);
    expect(Math.abs(p.videoFrames - expectedFrames)).toBeLessThanOrEqual(1);
    expect(Math.abs(p.videoDuration * 1000 - r.wallMs)).toBeLessThanOrEqual(100);
    expect(Math.abs(p.audioDuration - p.videoDuration)).toBeLessThan(0.1);

    const scale = 4;
    const v = allFrames(out, scale);
    const joined = r.timeline[3].joinedMs!, left = r.timeline[1].leftMs!;
    const layouts = { before: gridFor([1, 2, 3]), during: gridFor([1, 2, 3, 4]), after: gridFor([1, 3, 4]) };
    const matches = (f: Buffer, layout: Layout, indices: number[]) =>
      indices.every((i) => colourDistance(meanColour({ w: v.w, h: v.h, rgb: f }, layout.tiles.find((t) => t.id === `p${i}`)!.video, scale), participantStyle(i).rgb) < SAME);
    const frameMs = (k: number) => (k * 1000) / FPS;
    const firstMatch = (from: number, layout: Layout, idx: number[]) => v.frames.findIndex((f, k) => frameMs(k) >= from && matches(f, layout, idx));
    // Before the join: three tiles.
    expect(matches(v.frames[Math.floor(((joined - 500) / 1000) * FPS)], layouts.before, [1, 2, 3])).toBe(true);
    const joinFrame = firstMatch(joined, layouts.during, [1, 2, 3, 4]);
    expect(joinFrame).toBeGreaterThan(0);
    expect(frameMs(joinFrame) - joined).toBeLessThanOrEqual(1000);
    const leaveFrame = firstMatch(left, layouts.after, [1, 3, 4]);
    expect(leaveFrame).toBeGreaterThan(0);
    // eslint-disable-next-line no-console
    console.log(`churn (${label}): joiner in the grid ${Math.round(frameMs(joinFrame) - joined)} ms after joining, leaver out ${Math.round(frameMs(leaveFrame) - left)} ms after leaving`);
    expect(frameMs(leaveFrame) - left).toBeLessThanOrEqual(1000);
    // No freeze: the grey patches move every frame, so identical consecutive frames mean nothing
    // new reached the canvas. A visible freeze (100 ms = 3 frames) never happens; single repeats
    // (every source late in the same tick, e.g. a CPU-starved test machine) stay under 1%.
    // Counted from 1 s in: before that, tiles show name cards until each decoder's first frame.
    let repeats = 0, run = 0, longest = 0;
    for (let k = FPS + 1; k < v.frames.length; k++) {
      if (v.frames[k].equals(v.frames[k - 1])) { repeats++; run++; longest = Math.max(longest, run); } else run = 0;
    }
    expect(longest).toBeLessThan(2);
    expect(repeats).toBeLessThanOrEqual(Math.ceil(v.frames.length * 0.01));
    // Lip sync: participant 1's sync marker (lit while its tone beeps) against the tone, in the
    // first and the last third: in sync within 100 ms and no drift. Each median sits on the
    // 33.3 ms frame grid (± a 5 ms audio hop), so two windows can differ by one frame step by
    // sampling alone (43 ms seen once in a CI rehearsal); two steps or more is a trend.
    const p1 = markerRect(layouts.before.tiles[0].video);
    const early = avOffsetMs(out, p1, participantStyle(1).toneHz, 0.5, joined / 1000);
    const late = avOffsetMs(out, markerRect(layouts.after.tiles[0].video), participantStyle(1).toneHz, (left + 1000) / 1000);
    expect(early.pairs).toBeGreaterThanOrEqual(3);
    expect(late.pairs).toBeGreaterThanOrEqual(3);
    expect(Math.abs(early.medianMs)).toBeLessThanOrEqual(100);
    expect(Math.abs(late.medianMs)).toBeLessThanOrEqual(100);
    expect(Math.abs(late.medianMs - early.medianMs)).toBeLessThan((2 * 1000) / FPS);
    // The leaver's tone stops, the joiner's starts.
    const endAudio = audioSamples(out, (left + 600) / 1000, 2);
    expect(toneShare(endAudio, participantStyle(4).toneHz)).toBeGreaterThan(0.02);
    expect(toneShare(endAudio, participantStyle(2).toneHz)).toBeLessThan(0.005);
    const manifest = JSON.parse(fs.readFileSync(out.replace(/\.mp4$/, '.json'), 'utf8'));
    expect(manifest.participants.map((x: { id: string; leftAt?: string }) => [x.id, !!x.leftAt])).toEqual([['p1', false], ['p2', true], ['p3', false], ['p4', false]]);
    expect(manifest.layouts.map((l: { tiles: string[] }) => l.tiles.join(','))).toEqual(['p1,p2,p3', 'p1,p2,p3,p4', 'p1,p3,p4']);
  });
});

describe('recording engine: faults and drains (Debian 5.1)', () => {
  const bin = DEBIAN_FFMPEG;

  test('camera off keeps the last frame then shows the name card; microphone off keeps the others audible; garbage is isolated', async () => {
    // Participant 3 sends H.264, and its garbage reaches the decoder inside the epoch (a slice
    // header in front): FFmpeg's error puts its tile on its card until a keyframe.
    const r = await record(bin, {
      participants: 3,
      seconds: 7,
      codec: (i) => (i === 3 ? 'h264' : 'vp8'),
      events: [
        { at: 2, action: (c) => { c.sources.get(1)!.videoEnabled = false; } },
        { at: 2, action: (c) => { c.sources.get(2)!.audioEnabled = false; } },
        { at: 2, action: (c) => { c.sources.get(3)!.garbage = true; } },
      ],
    }, 'faults');
    expect(r.info.status).toBe('available');
    expect(decodeErrors(r.out)).toBe('');
    const layout = gridFor([1, 2, 3]);
    const tile = (i: number) => layout.tiles.find((t) => t.id === `p${i}`)!.video;
    // 0.5 s after the camera went off: still the last frame (red), not black.
    const early = frameAt(r.out, 2.5);
    expect(colourDistance(meanColour(early, tile(1)), participantStyle(1).rgb)).toBeLessThan(SAME);
    // After the 1 s timeout: the name card, for the camera-off and the garbage sender.
    const late = frameAt(r.out, 4.5);
    expect(colourDistance(meanColour(late, tile(1)), hexRgb(PLACEHOLDER_COLOUR))).toBeLessThan(25);
    expect(colourDistance(meanColour(late, tile(3)), hexRgb(PLACEHOLDER_COLOUR))).toBeLessThan(25);
    // Participant 2 (microphone off) is still on video.
    expect(colourDistance(meanColour(late, tile(2)), participantStyle(2).rgb)).toBeLessThan(SAME);
    const quiet = audioSamples(r.out, 3, 3.5);
    expect(toneShare(quiet, participantStyle(1).toneHz)).toBeGreaterThan(0.02);
    expect(toneShare(quiet, participantStyle(3).toneHz)).toBeGreaterThan(0.02);
    expect(toneShare(quiet, participantStyle(2).toneHz)).toBeLessThan(0.002);
    expect(toneShare(audioSamples(r.out, 0.5, 1.4), participantStyle(2).toneHz)).toBeGreaterThan(0.02);
  });

  test('a Safari (H.264) participant joining a VP8 meeting: the others stay on screen, the newcomer is in within 2 s, in lip sync', async () => {
    // The newcomer's H.264 is decoded inside the layout's FFmpeg, as the others' VP8 is (one
    // input per tile, each of its source's codec). Until day 24 the first H.264 frame switched
    // every source to a decoder process of its own: first the whole grid showed name cards for a
    // second (fixed on day 23), and in a 0.45-core quota the newcomer never appeared at all.
    const r = await record(bin, {
      participants: 4, seconds: 7, initial: [1, 2, 3], codec: (i) => (i === 4 ? 'h264' : 'vp8'),
      events: [{ at: 2.5, action: (c) => c.join(4) }],
    }, 'h264-join');
    expect(r.info.status).toBe('available');
    expect(decodeErrors(r.out)).toBe('');
    // From 1 s in, every picture shows 1–3 in the old grid or the new one.
    const { after, missing, first, inAfterS } = joinPictures(r.out, r.timeline[3].joinedMs!);
    expect(missing.slice(0, 6)).toEqual([]);
    // The newcomer is in within 2 s of joining (a new epoch, from the newcomer's first keyframe)
    // and stays, with everyone else in the new grid.
    expect(first).toBeGreaterThan(0);
    expect(inAfterS).toBeLessThan(2);
    expectColoursAt(frameAt(r.out, 6.5), after, [1, 2, 3, 4]);
    // Lip sync after the join: a VP8 sender, and the H.264 newcomer.
    const sync = [1, 4].map((i) => ({ participant: i, ...avOffsetMs(r.out, markerRect(after.tiles[i - 1].video), participantStyle(i).toneHz, 5) }));
    expect(sync.filter((x) => x.pairs < 3 || Math.abs(x.medianMs) > 40)).toEqual([]);
    // eslint-disable-next-line no-console
    console.log(`H.264 joiner: in the grid ${Math.round(inAfterS * 1000)} ms after joining; lip sync ${sync.map((x) => `p${x.participant} ${Math.round(x.medianMs)} ms`).join(', ')}`);
  });

  test('a join just before a sender\'s group outgrows the replay limit: the others are asked again while the new layout waits, and the newcomer is in without waiting out the second', async () => {
    // A new layout replays each source's frames since its last keyframe (up to 2 s) and waits
    // for the newcomer's first keyframe. Here every sender answers a keyframe request 250 ms
    // later, the newcomer's first frames are mid-group, and it joins when participant 1's group
    // (3 s long) is 1.9 s old: replayable when the layout is made, too old 0.1 s later, while
    // the layout still waits. Until day 33 nobody asked participant 1 for a keyframe then: the
    // layout waited its whole second (the newcomer in 1.04 s after joining, every run), and
    // started with a card for any tile whose keyframe had not come by then.
    let age = -1;
    const r = await record(bin, {
      participants: 4, seconds: 9, initial: [1, 2, 3], clipSeconds: 3,
      events: [{
        at: 3,
        action: (c) => {
          const p1 = c.sources.get(1)!;
          for (const s of c.sources.values()) s.keyframeDelayMs = 250;
          const until = performance.now() + 4000;
          const poll = setInterval(() => {
            const now = performance.now();
            if ((now - p1.lastKeyframeAt >= 1900 && now - p1.lastKeyframeAt < 1930) || now > until) {
              clearInterval(poll);
              age = now - p1.lastKeyframeAt;
              c.join(4, { startFrame: 45 });
              c.sources.get(4)!.keyframeDelayMs = 250;
            }
          }, 2);
        },
      }],
    }, 'late-group');
    expect(age).toBeGreaterThanOrEqual(1900);
    expect(age).toBeLessThan(1930);
    expect(r.info.status).toBe('available');
    expect(decodeErrors(r.out)).toBe('');
    const { missing, first, inAfterS } = joinPictures(r.out, r.timeline[3].joinedMs!);
    // eslint-disable-next-line no-console
    console.log(`join ${Math.round(age)} ms into participant 1's group: newcomer in the grid ${Math.round(inAfterS * 1000)} ms after joining; missing ${missing.length}`);
    // From 1 s in, every picture shows 1–3 in the old grid or the new one: no card at the switch.
    expect(missing.slice(0, 6)).toEqual([]);
    // In once the keyframes asked for are (0.25 s each, one after the other: 0.34–0.47 s when
    // measured), not after the second the layout may wait.
    expect(first).toBeGreaterThan(0);
    expect(inAfterS).toBeLessThan(0.9);
  });

  test('a first keyframe the decoder cannot use: it asks for another after a second, and the tile shows the participant', async () => {
    // Set before any frame reaches the recording: the keyframe answering its first request is cut.
    // The clips loop every 5 s, so the next keyframe only comes sooner if the decoder asks.
    let p1: SyntheticSource | undefined;
    const r = await record(bin, { participants: 2, seconds: 4, clipSeconds: 5, hooks: { beforeStart: (_rec, sources) => { p1 = sources.get(1)!; p1.truncateKeyframes = 1; } } }, 'badkey');
    expect(p1!.truncateKeyframes).toBe(0); // the cut keyframe was sent
    expect(p1!.keyframeRequests).toBeGreaterThanOrEqual(2);
    expect(r.info.status).toBe('available');
    expect(decodeErrors(r.out)).toBe('');
    expectColoursAt(frameAt(r.out, 2.5), gridFor([1, 2]), [1, 2]);
  });

  test('a frame damaged in the middle of a group: the tile never shows the garbage the frames after it would decode to, asks for a keyframe, and goes on', async () => {
    // The clips loop every 10 s, so without a keyframe asked for, the group would run to the end.
    let p1: SyntheticSource | undefined, asksBefore = 0;
    const r = await record(bin, {
      participants: 2, seconds: 5, clipSeconds: 10,
      hooks: { beforeStart: (_rec, sources) => { p1 = sources.get(1)!; } },
      events: [{ at: 1.5, action: () => { asksBefore = p1!.keyframeRequests; p1!.damageFrames = 1; } }],
    }, 'damaged');
    expect(p1!.damageFrames).toBe(0); // the damaged frame was sent
    expect(p1!.keyframeRequests).toBeGreaterThan(asksBefore);
    expect(r.info.status).toBe('available');
    expect(decodeErrors(r.out)).toBe('');
    // Inter frames decoded against a picture they were not made from come out as blocks of
    // strong colour over the tile (measured: up to 20 % of the tile, where the clip itself has
    // about 2 %, in its noise patch). Per picture, the share of such pixels in participant 1's tile.
    const v = allFrames(r.out, 4);
    const rect = gridFor([1, 2]).tiles.find((t) => t.id === 'p1')!.video;
    const red = participantStyle(1).rgb;
    const foreign = v.frames.map((f) => {
      let n = 0, all = 0;
      for (let y = Math.floor(rect.y / 4); y < Math.floor((rect.y + rect.h) / 4); y++) {
        for (let x = Math.floor(rect.x / 4); x < Math.floor((rect.x + rect.w) / 4); x++, all++) {
          const o = (y * v.w + x) * 3;
          const px: [number, number, number] = [f[o], f[o + 1], f[o + 2]];
          if (Math.max(...px) - Math.min(...px) > 80 && colourDistance(px, red) > 120) n++;
        }
      }
      return (100 * n) / all;
    });
    const before = Math.max(...foreign.slice(Math.round(v.fps / 2), Math.round(v.fps * 1.4)));
    const after = Math.max(...foreign.slice(Math.round(v.fps * 1.5)));
    expect(after).toBeLessThan(before + 1.5);
    expectColoursAt(frameAt(r.out, 4.5), gridFor([1, 2]), [1, 2]);
  });

  test('a decoder and a compositor killed mid-recording are replaced; the recording goes on, on wall time (decoder processes: TESSERA_DIRECT_DECODE=0)', async () => {
    const r = await record(bin, {
      participants: 3,
      seconds: 8,
      env: { TESSERA_DIRECT_DECODE: 'false' },
      events: [
        { at: 2, action: (c) => c.recording.debugKill({ decoder: 'p1' }) },
        { at: 4, action: (c) => c.recording.debugKill('compositor') },
      ],
    }, 'kills');
    expect(r.info.status).toBe('available');
    expect(r.recording.stats.decoderRestarts).toBeGreaterThanOrEqual(1);
    expect(r.recording.stats.compositorRestarts).toBeGreaterThanOrEqual(1);
    expect(decodeErrors(r.out)).toBe('');
    // On wall time: the dead epoch's ticks hold its last picture (one longer sample), so the
    // file is as long as the capture.
    const p = probe(r.out);
    expect(Math.abs(p.videoDuration * 1000 - r.wallMs)).toBeLessThanOrEqual(100);
    expectColoursAt(frameAt(r.out, 7), gridFor([1, 2, 3]), [1, 2, 3]);
  });

  test('a hung compositor (stopped, producing nothing) is killed after the stall timeout and replaced', async () => {
    const r = await record(bin, { participants: 2, seconds: 9, events: [{ at: 2, action: (c) => c.recording.debugHangCompositor() }] }, 'hang');
    expect(r.info.status).toBe('available');
    expect(r.recording.stats.compositorRestarts).toBeGreaterThanOrEqual(1);
    expect(decodeErrors(r.out)).toBe('');
    // On wall time: the dead epoch's ticks hold its last picture (one longer sample), so the
    // file is as long as the capture.
    const p = probe(r.out);
    expect(Math.abs(p.videoDuration * 1000 - r.wallMs)).toBeLessThanOrEqual(100);
    expectColoursAt(frameAt(r.out, 8.5), gridFor([1, 2]), [1, 2]);
  });

  test('a first compositor that hangs before its first picture: replaced, the MP4 is as long as the call and starts at 0, the manifest lists the wait', async () => {
    // Seen at 0.30 cores (docs/workers.md, day 36): the first picture 4.8 s late, and players
    // reading the file as 4.8 s longer than the call. The hook stops the first epoch as it begins.
    const r = await record(bin, { participants: 2, seconds: 8, events: [{ at: 0, action: (c) => c.recording.debugHangCompositor() }] }, 'hang-start');
    expect(r.info.status).toBe('available');
    expect(r.recording.stats.compositorRestarts).toBeGreaterThanOrEqual(1);
    expect(decodeErrors(r.out)).toBe('');
    const p = probe(r.out);
    expect(Math.abs(p.formatDuration * 1000 - r.wallMs)).toBeLessThanOrEqual(150);
    expect(Math.abs(p.videoDuration * 1000 - r.wallMs)).toBeLessThanOrEqual(150);
    const manifest = JSON.parse(fs.readFileSync(r.out.replace(/\.mp4$/, '.json'), 'utf8'));
    expect(manifest.interruptions).toEqual([{ at: 0, gapMs: expect.any(Number), reason: LATE_START }]);
    expect(manifest.interruptions[0].gapMs).toBeGreaterThanOrEqual(2000); // the stall timeout (3 s) and the replacement's start
    expectColoursAt(frameAt(r.out, 7), gridFor([1, 2]), [1, 2]);
  });

  test('the encoder killed mid-recording: a new worker continues the recording into the same MP4', async () => {
    const r = await record(bin, { participants: 2, seconds: 7, events: [{ at: 3.5, action: (c) => c.recording.debugKill('encoder') }] }, 'enc-kill');
    expect(r.info.status).toBe('available');
    expect(r.recording.workerRestarts).toBe(1);
    expect(decodeErrors(r.out)).toBe('');
    const manifest = JSON.parse(fs.readFileSync(r.out.replace(/\.mp4$/, '.json'), 'utf8'));
    expect(manifest.interruptions).toEqual([expect.objectContaining({ reason: expect.stringMatching(/encoder died/) })]);
    // On wall time across the gap, and both sides of it have the participants.
    expect(Math.abs(probe(r.out).videoDuration * 1000 - r.wallMs)).toBeLessThanOrEqual(150);
    expectColoursAt(frameAt(r.out, 1.5), gridFor([1, 2]), [1, 2]);
    expectColoursAt(frameAt(r.out, 6.5), gridFor([1, 2]), [1, 2]);
  });

  test('an encoder that keeps dying fails the recording with a clear error; its playable prefix is kept and listed', async () => {
    const kill = (at: number) => ({ at, action: (c: { recording: { debugKill(w: 'encoder'): void } }) => c.recording.debugKill('encoder') });
    const r = await record(bin, { participants: 2, seconds: 9, events: [kill(2.5), kill(4), kill(5.5), kill(7)] }, 'enc-kills');
    expect(r.info.status).toBe('failed');
    expect(r.info.error).toEqual({ code: 'REC_ERR_ENCODER_DIED', message: expect.stringMatching(/encoder died.*giving up/) });
    const manifest = JSON.parse(fs.readFileSync(r.out.replace(/\.mp4$/, '.json'), 'utf8'));
    expect(manifest).toMatchObject({ status: 'failed', error: { code: 'REC_ERR_ENCODER_DIED' } });
    // Whole fragments only (each written as soon as its mdat is complete): it decodes cleanly,
    // and the manifest says how much of it there is.
    const p = probe(r.out);
    expect(p.videoFrames).toBeGreaterThanOrEqual(FPS * 2);
    expect(Math.abs(p.videoDuration * 1000 - manifest.durationMs)).toBeLessThanOrEqual(100);
    expect(decodeErrors(r.out)).toBe('');
  });

  test('stop is a drain: the last second is in the file, which decodes cleanly and plays and seeks in Chromium', async () => {
    const seconds = 6;
    const r = await record(bin, { participants: 2, seconds, initial: [1], events: [{ at: seconds - 2.5, action: (c) => c.join(2) }] }, 'drain');
    expect(r.info.status).toBe('available');
    expect(decodeErrors(r.out)).toBe('');
    const p = probe(r.out);
    // Nothing cut off: the file is as long as the capture, and its last second is live.
    expect(Math.abs(p.videoDuration * 1000 - r.wallMs)).toBeLessThanOrEqual(100);
    // A few ticks before the end: the last picture may be held to the recording's last tick, and
    // FFmpeg's -ss skips a picture that starts before the time asked for.
    expectColoursAt(frameAt(r.out, p.videoDuration - 0.12), gridFor([1, 2]), [1, 2]);
    const last = allFrames(r.out, 4).frames.slice(-FPS);
    expect(last.filter((f, k) => k > 0 && f.equals(last[k - 1])).length).toBeLessThanOrEqual(1);
    const tail = audioSamples(r.out, p.videoDuration - 0.6, 0.6);
    expect(toneShare(tail, participantStyle(1).toneHz)).toBeGreaterThan(0.02);
    expect(toneShare(tail, participantStyle(2).toneHz)).toBeGreaterThan(0.02);
    const played = await playInChromium(r.out, 2.5);
    expect(played.error).toBeNull();
    expect(played.videoWidth).toBe(W);
    expect(Math.abs(played.duration - p.formatDuration)).toBeLessThan(0.2);
    expect(played.endedOrNearEnd).toBe(true);
    expect(played.seekedTo).toBeCloseTo(2.5, 0);
  });
});
