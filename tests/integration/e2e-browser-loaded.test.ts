/**
 * The loaded twin of e2e-browser: four headless Chromiums at normal priority, sharing this
 * machine's two cores with the server and the recording (no background cgroup, no SCHED_IDLE),
 * recording at the product's default 1280×720@30. This is a node packed by an autoscaler: before
 * the worker design such a recording failed (REC_ERR_ENCODER_STALLED after 23 s, a 0-byte MP4).
 * Now the recording may degrade but must end `available`, last the whole recording, decode
 * cleanly and show every person at the end.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { Recorder } from '../../src/pipeline/Recorder';
import type { RecordingInfo } from '../../src/pipeline/types';
import { TesseraServer } from '../../src/server/TesseraServer';
import { FileStorage } from '../../src/storage/FileStorage';
import { joinMeeting, launchIdentity, playingRemoteTiles } from '../helpers/browser-meeting';
import { allFrames, decodeErrors, probe, colourShare } from '../helpers/media';
import { sleep } from '../helpers/rtc-harness';
import { participantStyle } from '../../src/media/SyntheticClip';
import { PLACEHOLDER_COLOUR } from '../../src/pipeline/placeholder';
import { computeLayout, shrinkTiles } from '../../compositor/layout';
import { loadPresets } from '../../compositor/presets';

/** The pixels of rectangle `r` of an RGB picture `w` wide. */
function cropRgb(rgb: Buffer, w: number, r: { x: number; y: number; w: number; h: number }): Buffer {
  const x0 = Math.ceil(r.x), x1 = Math.floor(r.x + r.w), y0 = Math.ceil(r.y), y1 = Math.floor(r.y + r.h);
  const rows: Buffer[] = [];
  for (let y = y0; y < y1; y++) rows.push(rgb.subarray((y * w + x0) * 3, (y * w + x1) * 3));
  return Buffer.concat(rows);
}

jest.setTimeout(330_000);

/** How long a click may wait for the host's starved browser to take it (see the test). */
const CLICK_MS = 90_000;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-e2e-loaded-'));
let server: TesseraServer;
let storage: FileStorage;
const browsers: Browser[] = [];

beforeAll(async () => {
  const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1', RECORDINGS_DIR: path.join(tmp, 'rec') });
  storage = new FileStorage(config.recordingsDir);
  const recorder = new Recorder({ config, storage, logger });
  // As the server's entry point does: a spare worker waits with its modules loaded. Without one
  // the first recording waits for a cold worker, which here (four browsers on two cores, the
  // worker's TypeScript transpiled at load) took 3.3 s in one CI run and 1.8–3.6 s in others.
  recorder.warmUp();
  server = new TesseraServer({ config, recorder, logger });
  await server.listen(0, '127.0.0.1');
});

afterAll(async () => {
  await Promise.all(browsers.map((b) => b.close().catch(() => undefined)));
  await server?.drain();
  await storage?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});


test('four browsers at normal priority on the same two cores: the 720p30 recording ends available, whole and with everyone', async () => {
  const room = 'loaded-room';
  const names = ['Red', 'Green', 'Blue', 'Yellow'];
  for (let i = 1; i <= 4; i++) browsers.push(await launchIdentity(tmp, i, { normal: true }));
  const pages: Page[] = [];
  for (let i = 0; i < 4; i++) pages.push(await joinMeeting(browsers[i], server.url, room, names[i]));
  const t0 = Date.now();
  for (;;) {
    const counts = await Promise.all(pages.map(playingRemoteTiles));
    if (counts.every((c) => c === 3)) break;
    if (Date.now() - t0 > 90_000) throw new Error(`browsers did not see each other: ${counts}`);
    await sleep(500);
  }
  // The clicks bracket the recording: its clock starts after the first click reaches the server
  // and ends at the second. Time is taken around the clicks themselves, not around the
  // indicators: with four browsers on two cores, seeing all four indicators can take seconds
  // (measured: 5 s), which is not recording time lost.
  // A click is an input event that the host's renderer must take, and a starved renderer may
  // not for a long time: in a CI rehearsal on day 28 Playwright's Stop click waited its whole
  // 30 s default at "performing click action" while Red's page was rejoining after its
  // connection failed. How fast a starved browser takes a click is not what this test measures
  // (the recording's duration is checked against the time around each click), so each click
  // may take up to CLICK_MS.
  const clickedStartAt = Date.now();
  await pages[0].click('#record-toggle', { timeout: CLICK_MS });
  // Seeing all four indicators took 5 s here and longer on CI's machine (a click and its
  // broadcast through starved browsers and a stalling event loop): what is waited for is the
  // indicator itself, not its speed under this load.
  for (const p of pages) await p.locator('#recording-indicator').waitFor({ state: 'visible', timeout: 60_000 });
  await sleep(25_000);
  const clickingStopAt = Date.now();
  await pages[0].click('#record-toggle', { timeout: CLICK_MS });
  const clickedStopAt = Date.now();
  for (const p of pages) await p.locator('#recording-indicator').waitFor({ state: 'hidden', timeout: 60_000 });
  const recordedMs = clickedStopAt - clickedStartAt;

  // The indicator goes at `stopping`; the recording is final once it is available (or failed).
  let info: RecordingInfo;
  for (const t = Date.now(); ; await sleep(250)) {
    const list = (await (await fetch(`${server.url}/api/recordings?roomId=${room}`)).json()) as { recordings: RecordingInfo[] };
    info = list.recordings[0];
    if (info.status === 'available' || info.status === 'failed' || Date.now() - t > 60_000) break;
  }
  // eslint-disable-next-line no-console
  console.log(`loaded meeting: ${info.status}, ${info.durationMs} ms recorded of ${recordedMs} ms between the clicks (${Date.parse(info.startedAt) - clickedStartAt} ms from the first click to the clock's start)`, info.error ?? '');
  expect(info.status).toBe('available');
  const file = path.join(tmp, 'rec', info.location.key);
  if (process.env.KEEP_MP4) fs.copyFileSync(file, process.env.KEEP_MP4);
  expect(decodeErrors(file)).toBe('');
  const p = probe(file);
  expect(p.width).toBe(1280);
  // The whole recording: from the clock's start (startedAt) to the stop. At most the time
  // between the clicks (and a frame); at least from the clock's start to the moment the stop
  // click began (the stop reaches the server after it), less half a second. How long the
  // start took from the click is reported, and only bounded loosely: under this load the click's
  // way through a starved browser and the server's stalling event loop took 2–5 s here (the
  // spare worker's own start is measured by the benchmark, unloaded).
  const startedAt = Date.parse(info.startedAt);
  expect(p.videoDuration * 1000).toBeLessThan(recordedMs + 100);
  expect(p.videoDuration * 1000).toBeGreaterThan(clickingStopAt - startedAt - 500);
  expect(startedAt - clickedStartAt).toBeLessThan(15_000);
  // Everyone is in the recording: each person's camera (their colour over 8 % of the picture; a
  // tile is a quarter) in at least half a second of it, and at the end the four-person grid: in
  // the last 10 s a picture whose four tiles are each a camera or a name card. Not "every camera
  // live at the end": in this load the server's one event loop stalls for 1–7 s at a time (four
  // Chromiums take ~1.5 of the 2 cores at the same priority), connections fail and people
  // rejoin (a rejoin is a leave and a join: for a moment three tiles), and a tile quiet for a
  // second shows its name card until the next keyframe (docs/testing.md, days 10 and 11).
  // Degraded, as the issue allows; what must not happen is a person missing from the call's
  // recording, a tile showing neither a camera nor a card, or the recording failing.
  const { frames, w } = allFrames(file, 8);
  // A camera over 4 % of the picture: a tile is a quarter of it, a half-size tile (a level of
  // the ladder past economy, which this load may reach) a sixteenth.
  const seen = names.map((_, i) => frames.filter((f) => colourShare(f, participantStyle(i + 1).hex) > 0.04).length);
  // Each cell judged by the middle of its video rectangle: the whole of a half-size tile, the
  // middle quarter of a whole one.
  const layout = shrinkTiles(computeLayout(loadPresets().get('grid')!, { width: 1280, height: 720, tiles: names.map((n) => ({ id: n, kind: 'camera' as const })) }), 0.5);
  const cellsOf = (f: Buffer) => layout.tiles.map((t) => {
    const cell = cropRgb(f, w, { x: t.video.x / 8, y: t.video.y / 8, w: t.video.w / 8, h: t.video.h / 8 });
    const camera = names.findIndex((_, i) => colourShare(cell, participantStyle(i + 1).hex) > 0.5);
    return camera >= 0 ? names[camera] : colourShare(cell, PLACEHOLDER_COLOUR, 30) > 0.5 ? 'card' : 'neither';
  });
  // The last 10 s: a day-16 rehearsal (10.7 s from the click to the clock, ICE failing for two
  // browsers) ended with two people still on their way back in (a 2-tile grid for the last 3 s).
  const lastFrames = frames.slice(-300);
  const grid = [...lastFrames].reverse().map(cellsOf).find((c) => !c.includes('neither'));
  const cards = frames.map(cellsOf).reduce((n, c) => n + c.filter((x) => x === 'card').length, 0) / (4 * frames.length);
  // eslint-disable-next-line no-console
  console.log('loaded meeting: frames with each camera', seen, '; the last four-tile picture', grid, '; the last picture', cellsOf(frames[frames.length - 1]), `; tiles showing a card: ${Math.round(cards * 100)} %`);
  for (const n of seen) expect(n).toBeGreaterThanOrEqual(15);
  expect(grid).toBeDefined();
});
