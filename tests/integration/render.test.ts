/**
 * Re-rendering (issue 12): a recording made with tracks — three synthetic participants with
 * churn (participant 3 joins at 4 s, participant 2 leaves at 8 s) and a screen share from 1.5 s
 * — composed again from its tracks with the screenshare, speaker and grid layouts (participant 2
 * sends H.264, so one track is Matroska, the others WebM). Every check
 * decodes the MP4 a user gets: each participant's colour in the cell the layout code computes at
 * times before and after the join and the leave, the screen share on the whole stage, the speaker
 * on the stage as the audio says (participant 1 talks until 4 s, participant 3 after), lip sync
 * from the sync marker against the tone, and the render's duration equal to the recording's.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { runSyntheticSession, participantName } from '../../src/media/syntheticSession';
import { makeSyntheticClip, participantStyle } from '../../src/media/SyntheticClip';
import { SyntheticSource } from '../../src/media/SyntheticSource';
import { renderRecording, type RenderResult } from '../../src/render/Renderer';
import type { Manifest, RenderInfo } from '../../src/pipeline/types';
import { computeLayout, type Layout, type TileInput } from '../../compositor/layout';
import { loadPresets } from '../../compositor/presets';
import { BUNDLED_FFMPEG, DEBIAN_FFMPEG, allFrames, avOffsetMs, colourDistance, colourShare, decodeErrors, hexRgb, markerRect, meanColour, probe } from '../helpers/media';
import { PLACEHOLDER_COLOUR } from '../../src/pipeline/placeholder';

jest.setTimeout(120_000);

const presets = loadPresets();
const W = 1280, H = 720, FPS = 30;
const SECONDS = 12;
const SCREEN = { id: 'p1-screen', index: 5 }; // the share shows participant 5's colour (magenta)
let dir: string;
let manifest: Manifest;
let recordingMs: number;
const renders = new Map<string, { file: string; result: RenderResult; wallMs: number }>();

/** Who is on the canvas at `t` seconds by the session's own script (tiles in join order). */
function present(t: number): TileInput[] {
  const tiles: TileInput[] = [{ id: 'p1', kind: 'camera' }];
  if (t < 8) tiles.push({ id: 'p2', kind: 'camera' });
  if (t >= 1.5) tiles.push({ id: SCREEN.id, kind: 'screen' });
  if (t >= 4) tiles.push({ id: 'p3', kind: 'camera' });
  return tiles;
}
const colourOf = (id: string) => participantStyle(id === SCREEN.id ? SCREEN.index : Number(id.slice(1))).rgb;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-render-'));
  const config = loadConfig({ FFMPEG_PATH: DEBIAN_FFMPEG, TESSERA_X264_PRESET: 'ultrafast' });
  const screenClip = await makeSyntheticClip(DEBIAN_FFMPEG, { index: SCREEN.index }, logger);
  const out = path.join(dir, 'rec.mp4');
  let screen: SyntheticSource | undefined;
  const r = await runSyntheticSession({
    participants: 3,
    seconds: SECONDS,
    churn: true,
    tracks: true,
    // Participant 2 sends H.264 (its track is Matroska), the others VP8 (WebM).
    codec: (i) => (i === 2 ? 'h264' : 'vp8'),
    out,
    config,
    ffmpegPath: DEBIAN_FFMPEG,
    logger,
    // Participant 2 never talks; participant 1 talks until participant 3 joins and talks.
    hooks: { beforeStart: (_rec, sources) => void (sources.get(2)!.audioEnabled = false) },
    events: [
      {
        at: 1.5,
        action: (c) => {
          // A silent share (no screen audio): the speaker layout follows the microphones.
          screen = new SyntheticSource({ id: SCREEN.id, participantId: 'p1', name: participantName(1), kind: 'screen', clip: screenClip });
          screen.audioEnabled = false;
          c.recording.addSource(screen.start());
        },
      },
      { at: 4, action: (c) => void (c.sources.get(1)!.audioEnabled = false) },
    ],
  });
  screen?.close();
  expect(r.info.status).toBe('available');
  manifest = JSON.parse(fs.readFileSync(path.join(dir, 'rec.json'), 'utf8')) as Manifest;
  recordingMs = manifest.durationMs!;
  expect(manifest.tracks!.find((t) => t.sourceId === 'p2' && t.kind === 'camera')).toMatchObject({ codec: 'h264', container: 'mkv' });
  // eslint-disable-next-line no-console
  console.log(`recorded ${recordingMs} ms with ${manifest.tracks!.length} tracks: ${manifest.tracks!.map((t) => `${t.kind} of ${t.sourceId} ${t.start}…${t.end} ms`).join(', ')}`);
  const renderWith = async (layout: string, bin: string) => {
    const file = path.join(dir, `${layout}.mp4`);
    const t0 = performance.now();
    const result = await renderRecording({
      manifest,
      trackFile: (t) => path.join(dir, t.location.key),
      layout,
      out: file,
      presets,
      config: loadConfig({ FFMPEG_PATH: bin }),
      ffmpegPath: bin,
      logger,
      workDir: path.join(dir, `work-${layout}`),
    });
    renders.set(layout, { file, result, wallMs: performance.now() - t0 });
  };
  // Debian's 5.1 and the bundled 4.1 FFmpeg both render (the live recorder supports both).
  await renderWith('screenshare', BUNDLED_FFMPEG);
  await renderWith('speaker', DEBIAN_FFMPEG);
  await renderWith('grid', DEBIAN_FFMPEG);
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Distance of each expected tile's colour from what the render shows there at `t` seconds. */
function misses(file: string, layout: Layout, t: number): object[] {
  const v = framesOf(file);
  const img = { w: v.w, h: v.h, rgb: v.frames[Math.round(t * v.fps)] };
  return layout.tiles.flatMap((tile) => {
    const got = meanColour(img, tile.video, 4);
    const d = Math.round(colourDistance(got, colourOf(tile.id)));
    return d < 45 ? [] : [{ t, tile: tile.id, got: got.map(Math.round), want: colourOf(tile.id), distance: d }];
  });
}

const decoded = new Map<string, ReturnType<typeof allFrames>>();
function framesOf(file: string): ReturnType<typeof allFrames> {
  let v = decoded.get(file);
  if (!v) decoded.set(file, (v = allFrames(file, 4)));
  return v;
}

test.each(['screenshare', 'speaker', 'grid'])('%s render: clean, as long as the recording, faster than real time', (layout) => {
  const { file, result, wallMs } = renders.get(layout)!;
  const p = probe(file);
  // eslint-disable-next-line no-console
  console.log(`${layout}: ${result.epochs} epochs, ${(recordingMs / 1000).toFixed(1)} s of media in ${(wallMs / 1000).toFixed(1)} s (${result.speed.toFixed(2)}× real time)`);
  expect(decodeErrors(file)).toBe('');
  expect({ size: [p.width, p.height], fps: p.frameRate, video: p.videoCodec, audio: p.audioCodec }).toEqual({ size: [W, H], fps: FPS, video: 'h264', audio: 'aac' });
  expect(p.videoFrames).toBe(manifest.video.frames);
  expect(Math.abs(p.videoDuration * 1000 - recordingMs)).toBeLessThanOrEqual(1000 / FPS);
  expect(Math.abs(p.audioDuration * 1000 - recordingMs)).toBeLessThanOrEqual(50);
  expect(result.speed).toBeGreaterThan(1);
});

test('screenshare render: the screen on the whole stage whenever shared, every camera in its strip cell, before and after the join and the leave', () => {
  const file = renders.get('screenshare')!.file;
  const preset = presets.get('screenshare')!;
  for (const t of [0.8, 3, 6, 7.3, 10.5]) {
    const layout = computeLayout(preset, { width: W, height: H, tiles: present(t) });
    expect(misses(file, layout, t)).toEqual([]);
    if (t >= 1.5) {
      // The stage is the screen's: its whole video rectangle is the share's colour.
      const stage = layout.tiles.find((x) => x.id === SCREEN.id)!;
      expect(stage.video.w).toBeGreaterThan(W * 0.75);
      const v = framesOf(file);
      const crop = cropRgb(v, stage.video, Math.round(t * v.fps));
      expect(colourShare(crop, participantStyle(SCREEN.index).hex)).toBeGreaterThan(0.85);
    }
  }
});

test('speaker render: the one talking on the stage (participant 1, then participant 3), everyone else in the strip', () => {
  const file = renders.get('speaker')!.file;
  const preset = presets.get('speaker')!;
  for (const [t, speaker] of [[0.8, 'p1'], [3, 'p1'], [7.3, 'p3'], [10.5, 'p3']] as const) {
    const layout = computeLayout(preset, { width: W, height: H, tiles: present(t), speakerId: speaker });
    expect(layout.tiles[0].id).toBe(speaker);
    expect(misses(file, layout, t)).toEqual([]);
  }
});

test('grid render: every tile where the grid puts it, before and after the join and the leave', () => {
  const file = renders.get('grid')!.file;
  for (const t of [0.8, 3, 6, 7.3, 10.5]) {
    expect(misses(file, computeLayout(presets.get('grid')!, { width: W, height: H, tiles: present(t) }), t)).toEqual([]);
  }
});

test('lip sync within 40 ms in the renders: the talker\'s sync marker against their tone', () => {
  const results: Record<string, number> = {};
  const check = (name: string, file: string, layout: Layout, id: string, from: number, to: number) => {
    const tile = layout.tiles.find((x) => x.id === id)!;
    const r = avOffsetMs(file, markerRect(tile.video), participantStyle(Number(id.slice(1))).toneHz, from, to);
    results[name] = r.medianMs;
    expect(r.pairs).toBeGreaterThanOrEqual(3);
    expect(Math.abs(r.medianMs)).toBeLessThanOrEqual(40);
  };
  const grid = (t: number) => computeLayout(presets.get('grid')!, { width: W, height: H, tiles: present(t) });
  check('grid, participant 1', renders.get('grid')!.file, grid(2), 'p1', 1.7, 3.9);
  check('grid, participant 3', renders.get('grid')!.file, grid(9), 'p3', 8.3, 11.5);
  const speaker = computeLayout(presets.get('speaker')!, { width: W, height: H, tiles: present(9), speakerId: 'p3' });
  check('speaker stage, participant 3', renders.get('speaker')!.file, speaker, 'p3', 8.3, 11.5);
  // eslint-disable-next-line no-console
  console.log(`lip sync (audio − video, ms): ${JSON.stringify(results)}`);
});

function cropRgb(v: { w: number; h: number; frames: Buffer[] }, r: { x: number; y: number; w: number; h: number }, k: number): Buffer {
  const s = 4;
  const x0 = Math.ceil(r.x / s), x1 = Math.floor((r.x + r.w) / s), y0 = Math.ceil(r.y / s), y1 = Math.floor((r.y + r.h) / s);
  const out = Buffer.alloc((x1 - x0) * (y1 - y0) * 3);
  let o = 0;
  for (let y = y0; y < y1; y++) {
    v.frames[k].copy(out, o, (y * v.w + x0) * 3, (y * v.w + x1) * 3);
    o += (x1 - x0) * 3;
  }
  return out;
}

test('npm run render -- --manifest rec.json --layout grid, as the README gives it: stored beside the recording and listed in its manifest; bad arguments exit 2', () => {
  const root = path.resolve(__dirname, '..', '..');
  const run = (args: string[]) => spawnSync('npm', ['run', '--silent', 'render', '--', ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, LOG_LEVEL: 'warn', FFMPEG_PATH: DEBIAN_FFMPEG, TESSERA_X264_PRESET: 'ultrafast' }, timeout: 90_000 });
  const r = run(['--manifest', path.join(dir, 'rec.json'), '--layout', 'grid']);
  expect(r.status).toBe(0);
  const render = JSON.parse(r.stdout.trim().split('\n').pop()!) as RenderInfo;
  expect(render).toMatchObject({ id: 'grid-1', status: 'available', location: { kind: 'file', key: 'rec.renders/grid-1.mp4' }, durationMs: recordingMs });
  expect(fs.statSync(path.join(dir, 'rec.renders', 'grid-1.mp4')).size).toBe(render.bytes);
  expect((JSON.parse(fs.readFileSync(path.join(dir, 'rec.json'), 'utf8')) as Manifest).renders).toEqual([render]);
  const bad = run(['--manifest', path.join(dir, 'rec.json'), '--layout', 'mosaic']);
  expect({ status: bad.status, stderr: bad.stderr }).toEqual({ status: 2, stderr: expect.stringMatching(/unknown layout "mosaic"; known: grid, screenshare, speaker/) });
  expect(run(['--layout', 'grid']).status).toBe(2);
});

test('a track cut short (a crash mid-write) renders up to its cut, then its name card, as live for a sender gone quiet', async () => {
  const cutDir = path.join(dir, 'cut');
  fs.mkdirSync(cutDir);
  const cam = manifest.tracks!.find((t) => t.sourceId === 'p3' && t.kind === 'camera')!;
  const cutFile = path.join(cutDir, 'p3-camera.webm');
  const whole = fs.readFileSync(path.join(dir, cam.location.key));
  fs.writeFileSync(cutFile, whole.subarray(0, Math.floor(whole.length * 0.6))); // about 4.0 + 0.6 × 7.9 s ≈ 8.8 s
  const file = path.join(cutDir, 'grid.mp4');
  await renderRecording({
    manifest: { ...manifest, tracks: manifest.tracks!.map((t) => (t.id === cam.id ? { ...t, state: 'incomplete' as const } : t)) },
    trackFile: (t) => (t.id === cam.id ? cutFile : path.join(dir, t.location.key)),
    layout: 'grid',
    out: file,
    presets,
    config: loadConfig({ FFMPEG_PATH: DEBIAN_FFMPEG, TESSERA_X264_PRESET: 'ultrafast' }),
    ffmpegPath: DEBIAN_FFMPEG,
    logger,
    workDir: path.join(cutDir, 'work'),
  });
  expect(decodeErrors(file)).toBe('');
  const grid = computeLayout(presets.get('grid')!, { width: W, height: H, tiles: present(10.5) });
  expect(misses(file, computeLayout(presets.get('grid')!, { width: W, height: H, tiles: present(6) }), 6)).toEqual([]);
  const v = framesOf(file);
  const p3 = meanColour({ w: v.w, h: v.h, rgb: v.frames[Math.round(11.5 * v.fps)] }, grid.tiles.find((t) => t.id === 'p3')!.video, 4);
  expect(colourDistance(p3, hexRgb(PLACEHOLDER_COLOUR))).toBeLessThan(45);
  expect(misses(file, grid, 10.5).filter((m) => (m as { tile: string }).tile !== 'p3')).toEqual([]);
});
