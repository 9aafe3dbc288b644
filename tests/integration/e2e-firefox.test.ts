/**
 * Firefox in the meeting and in the recording, end to end: Chromium (Red, the contract's fake
 * camera and 440 Hz beeps) and two Firefox ESRs with Firefox's fake camera (a full-frame colour
 * cycling through the hues) and microphone (a continuous sine) in one room. "Fox" keeps
 * Firefox's default privacy setting (its host addresses hidden behind mDNS `.local` names, which
 * the server does not resolve: it learns them from Firefox's checks); "Lynx" exposes its host
 * addresses. Firefox offers max-bundle, so its camera section is `port 0` + `a=bundle-only`.
 *
 * Each page sees and hears the other two; Fox starts the recording and Lynx stops it (the buttons
 * and the indicator in Firefox); the server then loses Fox's media and Fox's page joins again by
 * itself. The recording has both Firefox cameras moving (never held for long, never the name
 * card) in their cells and all three voices.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser as PwBrowser, Page as PwPage } from 'playwright-core';
import type { Browser as PpBrowser, Page as PpPage } from 'puppeteer-core';
import { computeLayout } from '../../compositor/layout';
import { loadPresets } from '../../compositor/presets';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { participantStyle } from '../../src/media/SyntheticClip';
import { PLACEHOLDER_COLOUR } from '../../src/pipeline/placeholder';
import { Recorder } from '../../src/pipeline/Recorder';
import type { Manifest, RecordingInfo } from '../../src/pipeline/types';
import { TesseraServer } from '../../src/server/TesseraServer';
import { FileStorage } from '../../src/storage/FileStorage';
import { joinMeeting, launchIdentity, pageErrors, releaseBackgroundCgroup } from '../helpers/browser-meeting';
import { heardTones, hostCandidateAddresses, joinFirefoxMeeting, launchFirefox, remoteVideos } from '../helpers/firefox-meeting';
import { allFrames, audioSamples, colourDistance, colourShare, DEBIAN_FFMPEG, decodeErrors, hexRgb, meanColour, toneShare } from '../helpers/media';
import { sleep } from '../helpers/rtc-harness';

jest.setTimeout(240_000);

const RED_HZ = participantStyle(1).toneHz; // 440
const FOX_HZ = 880;
const LYNX_HZ = 1320;
const ABSENT_HZ = 1100;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `tessera-e2e-firefox-${process.pid}-`));
let server: TesseraServer;
let storage: FileStorage;
let chrome: PwBrowser | undefined;
const firefoxes: PpBrowser[] = [];

beforeAll(async () => {
  // Recorded with Debian's FFmpeg 5.1 (what the Docker image ships): its decoder keeps each
  // picture until the next frame arrives, which froze Firefox's tile (docs/firefox.md).
  const config = loadConfig({ ...process.env, FFMPEG_PATH: DEBIAN_FFMPEG, PORT: '0', HOST: '127.0.0.1', RECORDINGS_DIR: path.join(tmp, 'rec'), VIDEO_WIDTH: '640', VIDEO_HEIGHT: '360', VIDEO_FPS: '15' });
  storage = new FileStorage(config.recordingsDir);
  const recorder = new Recorder({ config, storage, logger });
  server = new TesseraServer({ config, recorder, logger });
  await server.listen(0, '127.0.0.1');
});

afterAll(async () => {
  await chrome?.close().catch(() => undefined);
  await Promise.all(firefoxes.map((b) => b.close().catch(() => undefined)));
  releaseBackgroundCgroup();
  await server?.drain();
  await storage?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

type AnyPage = PwPage | PpPage;
const evaluate = <A, R>(page: AnyPage, fn: (arg: A) => R, arg: A): Promise<Awaited<R>> =>
  (page as unknown as { evaluate(f: (a: A) => R, a: A): Promise<Awaited<R>> }).evaluate(fn, arg);

const T0 = Date.now();
/** Progress with the time since the file started (where a slow step is, on a loaded machine). */
function step(what: string): void {
  // eslint-disable-next-line no-console
  console.log(`+${((Date.now() - T0) / 1000).toFixed(1)} s ${what}`);
}

async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  for (const t0 = Date.now(); !(await check()); await sleep(250)) {
    if (Date.now() - t0 > ms) throw new Error(`timed out: ${what}`);
  }
  step(what);
}

const indicatorShown = (page: AnyPage) => evaluate(page, () => !(document.getElementById('recording-indicator') as HTMLElement).hidden, undefined);
const toggleText = (page: AnyPage) => evaluate(page, () => document.getElementById('record-toggle')!.textContent, undefined);
const participantId = (page: AnyPage) => evaluate(page, () => (window as unknown as { tessera: { participantId: () => string } }).tessera.participantId(), undefined);

test('Chromium and Firefox (mDNS and exposed host addresses) meet, hear each other, record, rejoin; the recording shows the Firefox cameras moving and carries their voices', async () => {
  const room = 'e2e-firefox';
  const launched = await Promise.all([
    launchIdentity(tmp, 1).then((b) => (step('Chromium up'), b)),
    launchFirefox(tmp, { toneHz: FOX_HZ, exposeHostAddresses: false }).then((b) => (step('Firefox (Fox) up'), b)),
    launchFirefox(tmp, { toneHz: LYNX_HZ, exposeHostAddresses: true }).then((b) => (step('Firefox (Lynx) up'), b)),
  ]);
  chrome = launched[0];
  firefoxes.push(launched[1], launched[2]);

  step('browsers launched');
  const red = await joinMeeting(chrome, server.url, room, 'Red');
  const fox = await joinFirefoxMeeting(firefoxes[0], server.url, room, 'Fox');
  const lynx = await joinFirefoxMeeting(firefoxes[1], server.url, room, 'Lynx');
  const pages: Array<[string, AnyPage]> = [['Red', red], ['Fox', fox], ['Lynx', lynx]];
  step('joined');

  // The two privacy settings are what they claim: Fox offers only mDNS names, Lynx addresses.
  const foxHosts = await evaluate(fox, hostCandidateAddresses, undefined);
  const lynxHosts = await evaluate(lynx, hostCandidateAddresses, undefined);
  expect(foxHosts.length).toBeGreaterThan(0);
  expect(foxHosts.every((a) => a.endsWith('.local'))).toBe(true);
  expect(lynxHosts.length).toBeGreaterThan(0);
  expect(lynxHosts.some((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a))).toBe(true);

  // Everyone sees the other two (Firefox's camera reaches Chromium and the other Firefox).
  const seesOthers = async (page: AnyPage) => {
    const v = await evaluate(page, remoteVideos, undefined);
    return v.filter((x) => x.playing).length === 2;
  };
  await until('everyone sees the other two', async () => (await Promise.all(pages.map(([, p]) => seesOthers(p)))).every(Boolean), 45_000);
  const r = server.conference.room(room)!;
  const idOf = (name: string) => r.participants().find((p) => p.name === name)!.id;
  for (const name of ['Red', 'Fox', 'Lynx']) {
    expect(r.publicationsOf(idOf(name)).map((x) => `${x.purpose}:${x.mimeType.toLowerCase()}`).sort()).toEqual(['camera:video/vp8', 'mic:audio/opus']);
  }
  // eslint-disable-next-line no-console
  for (const [name, p] of pages) console.log(`${name} sees`, JSON.stringify(await evaluate(p, remoteVideos, undefined)));

  // Everyone hears the other two: on each remote tile its sender's tone is loud and the others' are not.
  const toneOf: Record<string, number> = { Red: RED_HZ, Fox: FOX_HZ, Lynx: LYNX_HZ };
  for (const [name, p] of pages) {
    const heard = await evaluate(p, heardTones, { tones: [RED_HZ, FOX_HZ, LYNX_HZ, ABSENT_HZ], ms: 2000 });
    // eslint-disable-next-line no-console
    console.log(`${name} hears (dB)`, JSON.stringify(heard));
    expect(Object.keys(heard).sort()).toEqual(Object.keys(toneOf).filter((n) => n !== name).sort());
    for (const [label, levels] of Object.entries(heard)) {
      const own = levels[toneOf[label]];
      const others = Object.entries(levels).filter(([hz]) => Number(hz) !== toneOf[label]).map(([, db]) => db);
      expect(own).toBeGreaterThan(-70);
      expect(own).toBeGreaterThan(Math.max(...others) + 20);
    }
  }

  // Fox (Firefox) clicks Record; the indicator shows everywhere; Lynx (Firefox) stops it.
  expect(await toggleText(fox)).toBe('Record');
  await fox.click('#record-toggle');
  await until('the indicator shows on every page', async () => (await Promise.all(pages.map(([, p]) => indicatorShown(p)))).every(Boolean), 15_000);
  await until('Fox\'s button says Stop recording', async () => (await toggleText(fox)) === 'Stop recording', 10_000);
  await sleep(10_000);
  await lynx.click('#record-toggle');
  await until('the indicator hides on every page', async () => (await Promise.all(pages.map(([, p]) => indicatorShown(p)))).every((x) => !x), 30_000);
  await until('every button says Record', async () => (await Promise.all(pages.map(([, p]) => toggleText(p)))).every((t) => t === 'Record'), 30_000);

  // The server loses Fox's media: Fox's page says so, joins again by itself, and the others see the new Fox.
  const oldFox = await participantId(fox);
  r.peer(oldFox)!.debugFail();
  await until('Fox rejoins', async () => (await evaluate(fox, () => (window as unknown as { tessera: { rejoins: () => number } }).tessera.rejoins(), undefined)) === 1, 30_000);
  const newFox = await participantId(fox);
  expect(newFox).not.toBe(oldFox);
  await until('everyone sees the other two again', async () => (await Promise.all(pages.map(([, p]) => seesOthers(p)))).every(Boolean), 30_000);
  expect(r.participants().map((p) => p.name).sort()).toEqual(['Fox', 'Lynx', 'Red']);

  // The recording.
  step('analysing the recording');
  const list = (await (await fetch(`${server.url}/api/recordings?roomId=${room}`)).json()) as { recordings: RecordingInfo[] };
  expect(list.recordings).toHaveLength(1);
  let rec = list.recordings[0];
  for (let i = 0; i < 100 && rec.status !== 'available' && rec.status !== 'failed'; i++) {
    await sleep(200);
    rec = (await (await fetch(`${server.url}/api/recordings/${rec.id}`)).json()) as RecordingInfo;
  }
  expect(rec.status).toBe('available');
  const file = path.join(tmp, 'firefox.mp4');
  fs.writeFileSync(file, Buffer.from(await (await fetch(`${server.url}/api/recordings/${rec.id}/media`)).arrayBuffer()));
  if (process.env.TESSERA_E2E_KEEP) fs.copyFileSync(file, process.env.TESSERA_E2E_KEEP);
  expect(decodeErrors(file)).toBe('');

  const scale = 4;
  const { w, h, fps, frames } = allFrames(file, scale);
  // Where each person's cell is: the tiles of the recording's one layout (all three were there
  // from the start), placed by the layout code.
  const manifest = JSON.parse(fs.readFileSync(path.join(tmp, 'rec', room, `${rec.id}.json`), 'utf8')) as Manifest;
  expect(new Set(manifest.layouts.map((l) => l.tiles.join()))).toHaveProperty('size', 1);
  const nameOfSource = (sourceId: string) => rec.participants.find((p) => `${p.id}:camera` === sourceId)!.name;
  const order = manifest.layouts[0].tiles.map(nameOfSource);
  expect([...order].sort()).toEqual(['Fox', 'Lynx', 'Red']);
  const layout = computeLayout(loadPresets().get('grid')!, { width: 640, height: 360, tiles: order.map((id) => ({ id, kind: 'camera' as const })) });
  const cell = (name: string) => layout.tiles.find((t) => t.id === name)!.video;
  const settled = frames.slice(Math.round(fps)); // the first second may still show name cards
  // Red's cell shows Red. Each Firefox cell shows its camera, moving: the colour cycles and no
  // picture is held for long. A frozen tile holds one picture; a browser the shared machine
  // starves of CPU sends nothing for a while and its tile shows the name card instead (the
  // browsers run as background load, README "Limits"), so cards are tolerated, held pictures not.
  const card = hexRgb(PLACEHOLDER_COLOUR);
  const redFrames = settled.filter((f) => colourShare(f, participantStyle(1).hex) > 0.05).length;
  // eslint-disable-next-line no-console
  console.log(`Red's colour in ${redFrames} of ${settled.length} frames`);
  const cells = ['Fox', 'Lynx'].map((name) => {
    const colours = settled.map((f) => meanColour({ w, h, rgb: f }, cell(name), scale));
    const isCard = colours.map((c) => colourDistance(c, card) < 12);
    let held = 0;
    let longest = 0;
    let pictures = 0;
    for (let i = 1; i < colours.length; i++) {
      if (isCard[i]) {
        held = 0;
        continue;
      }
      pictures++;
      held = colourDistance(colours[i], colours[i - 1]) < 0.5 ? held + 1 : 0;
      longest = Math.max(longest, held);
    }
    const camera = colours.filter((_, i) => !isCard[i]);
    let span = 0;
    for (const c of camera) span = Math.max(span, colourDistance(c, camera[0]));
    const heldS = (longest + 1) / fps;
    const cards = isCard.filter(Boolean).length;
    // eslint-disable-next-line no-console
    console.log(`${name}'s cell: ${colours.length} frames, ${pictures} camera pictures, ${cards} name cards, longest held picture ${heldS.toFixed(2)} s, colour moved up to ${span.toFixed(0)}`);
    return { pictures, frames: colours.length, heldS, span };
  });
  expect(redFrames).toBeGreaterThan(settled.length * 0.5);
  for (const c of cells) {
    expect(c.pictures).toBeGreaterThan(c.frames * 0.5);
    expect(c.heldS).toBeLessThan(2);
    expect(c.span).toBeGreaterThan(60);
  }

  // Every voice.
  const samples = audioSamples(file);
  const absent = toneShare(samples, ABSENT_HZ);
  const shares = [RED_HZ, FOX_HZ, LYNX_HZ].map((hz) => toneShare(samples, hz));
  // eslint-disable-next-line no-console
  console.log('tone shares Red/Fox/Lynx', shares.map((s) => s.toFixed(4)), 'absent', absent.toFixed(5));
  for (const s of shares) expect(s).toBeGreaterThan(Math.max(0.0005, absent * 20));

  // Nobody was shown an error, except Fox's own report of the lost connection.
  expect(pageErrors.filter((e) => !e.startsWith('[Fox]'))).toEqual([]);
});
