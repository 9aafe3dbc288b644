/**
 * End to end in real headless Chromium (Debian's), with the real recording pipeline:
 * three people join, one clicks Record, a fourth joins, one leaves, Record is clicked again.
 * Everyone sees the indicator exactly while recording; the MP4 fetched through the REST API has
 * each person's colour exactly while they were there and every tone, and plays in the page.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { participantStyle } from '../../src/media/SyntheticClip';
import { Recorder } from '../../src/pipeline/Recorder';
import type { Manifest, RecordingInfo } from '../../src/pipeline/types';
import { TesseraServer } from '../../src/server/TesseraServer';
import { FileStorage } from '../../src/storage/FileStorage';
import { indicatorVisible, joinMeeting, pageErrors, launchIdentity, playingRemoteTiles, releaseBackgroundCgroup, sendStats } from '../helpers/browser-meeting';
import { allFrames, audioSamples, colourDistance, decodeErrors, hexRgb, toneShare, colourShare } from '../helpers/media';
import { sleep } from '../helpers/rtc-harness';

jest.setTimeout(240_000);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-e2e-'));
let server: TesseraServer;
let storage: FileStorage;
const browsers: Browser[] = [];
/** The first test's meeting pages; the next test closes them so they do not load the machine. */
const meetingPages: Page[] = [];

beforeAll(async () => {
  const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1', RECORDINGS_DIR: path.join(tmp, 'rec'), VIDEO_WIDTH: '640', VIDEO_HEIGHT: '360', VIDEO_FPS: '15' }); // four Chromiums share 2 cores with the pipeline
  storage = new FileStorage(config.recordingsDir);
  const recorder = new Recorder({ config, storage, logger });
  server = new TesseraServer({ config, recorder, logger });
  await server.listen(0, '127.0.0.1');
});

afterAll(async () => {
  await Promise.all(browsers.map((b) => b.close().catch(() => undefined)));
  releaseBackgroundCgroup();
  await server?.drain(); // stops a recording left running by a failed assertion
  await storage?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});


/** One Chromium per identity (Red, Green, Blue, Yellow), shared by the tests of this file. */
async function ensureBrowsers(): Promise<void> {
  for (let i = browsers.length + 1; i <= 4; i++) browsers.push(await launchIdentity(tmp, i));
}

test('three join, Record, a fourth joins, one leaves, Stop: indicator, colours, tones, playback', async () => {
  const room = 'e2e-room';
  const names = ['Red', 'Green', 'Blue', 'Yellow'];
  await ensureBrowsers();
  const pages = meetingPages;
  // Blue publishes H.264 (as Safari would), the others VP8.
  for (let i = 0; i < 3; i++) pages.push(await joinMeeting(browsers[i], server.url, room, names[i], i === 2 ? '&codec=h264' : ''));
  const t0 = Date.now();
  for (;;) {
    const counts = await Promise.all(pages.map(playingRemoteTiles));
    if (counts.every((c) => c === 2)) break;
    if (Date.now() - t0 > 40_000) throw new Error(`browsers did not see each other: ${counts}`);
    await sleep(250);
  }
  const cameraCodec = (name: string) => {
    const r = server.conference.room(room)!;
    const id = r.participants().find((p) => p.name === name)!.id;
    return r.publicationsOf(id).find((x) => x.purpose === 'camera')?.mimeType.toLowerCase();
  };
  expect(names.slice(0, 3).map(cameraCodec)).toEqual(['video/vp8', 'video/vp8', 'video/h264']);
  for (const p of pages) {
    expect(await indicatorVisible(p)).toBe(false);
    expect(await p.locator('#record-toggle').textContent()).toBe('Record');
  }

  // Red clicks Record
  const clickAt = Date.now();
  await pages[0].click('#record-toggle');
  for (const p of pages) await p.locator('#recording-indicator').waitFor({ state: 'visible', timeout: 10_000 });
  expect(await pages[0].locator('#record-toggle').textContent()).toBe('Stop recording');
  for (const p of pages) await p.getByText('Recording started').first().waitFor({ state: 'attached', timeout: 15_000 });
  await sleep(5000);

  const estimates = await Promise.all(pages.map(sendStats));
  // eslint-disable-next-line no-console
  console.log('publishers\' bandwidth estimates (bit/s)', estimates.map((e) => e?.availableOutgoingBitrate));

  // Yellow joins late and sees the indicator
  pages.push(await joinMeeting(browsers[3], server.url, room, names[3]));
  await pages[3].locator('#recording-indicator').waitFor({ state: 'visible', timeout: 10_000 });
  await sleep(6000);

  // Green leaves
  await pages[1].click('#leave');
  await pages[1].getByText('You left the meeting').waitFor({ timeout: 5000 });
  expect(await indicatorVisible(pages[1])).toBe(false);
  await sleep(5000);

  // Reported, not asserted: Chrome's estimate follows the feedback (it sat at its 300 kbit/s start
  // while werift's feedback was malformed; see docs/werift.md), and on this shared 2-core
  // machine it also follows the delay the load adds, so it rises and then falls.
  const later = await Promise.all([pages[0], pages[2]].map(sendStats));
  // eslint-disable-next-line no-console
  console.log('Red and Blue bandwidth estimates before stop (bit/s)', later.map((e) => e?.availableOutgoingBitrate));

  // Red clicks Record again (stop) — of a recording that is still going (a failed one would make
  // this click start a new recording, and the failure show up as an indicator that never hides)
  expect(pageErrors).toEqual([]);
  await pages[0].click('#record-toggle');
  const stayed = [pages[0], pages[2], pages[3]];
  for (const p of stayed) await p.locator('#recording-indicator').waitFor({ state: 'hidden', timeout: 30_000 });
  for (const p of stayed) {
    await p.waitForFunction(() => document.getElementById('record-toggle')!.textContent === 'Record', undefined, { timeout: 30_000 });
  }

  // the recording through the REST API
  const list = (await (await fetch(`${server.url}/api/recordings?roomId=${room}`)).json()) as { recordings: RecordingInfo[] };
  expect(list.recordings).toHaveLength(1);
  let rec = list.recordings[0];
  for (let i = 0; i < 100 && rec.status !== 'available' && rec.status !== 'failed'; i++) {
    await sleep(200);
    rec = (await (await fetch(`${server.url}/api/recordings/${rec.id}`)).json()) as RecordingInfo;
  }
  expect(rec.status).toBe('available');
  const media = await fetch(`${server.url}/api/recordings/${rec.id}/media`);
  expect(media.status).toBe(200);
  const file = path.join(tmp, 'out.mp4');
  fs.writeFileSync(file, Buffer.from(await media.arrayBuffer()));
  const ranged = await fetch(`${server.url}/api/recordings/${rec.id}/media`, { headers: { Range: 'bytes=100-199' } });
  expect(ranged.status).toBe(206);
  expect((await ranged.arrayBuffer()).byteLength).toBe(100);
  expect(decodeErrors(file)).toBe('');

  // each colour exactly while present: file time = wall time - startedAt
  const start = Date.parse(rec.startedAt);
  const byName = new Map(rec.participants.map((p) => [p.name, p]));
  const joinY = Date.parse(byName.get('Yellow')!.joinedAt) - start;
  const leaveG = Date.parse(byName.get('Green')!.leftAt!) - start;
  const end = Date.parse(rec.endedAt!) - start;
  // eslint-disable-next-line no-console
  console.log('timeline (ms in file)', { joinY, leaveG, end, participants: rec.participants, durationMs: rec.durationMs });
  if (process.env.TESSERA_E2E_KEEP) {
    fs.copyFileSync(file, process.env.TESSERA_E2E_KEEP);
    fs.copyFileSync(path.join(tmp, 'rec', room, `${rec.id}.json`), process.env.TESSERA_E2E_KEEP + '.json');
  }
  const { frames, fps } = allFrames(file, 8);
  // Colours present in each frame, in file order. The file's clock is the pipeline's pacer, so
  // we check the order of the phases in the file rather than map wall-clock times into it.
  const sets = frames.map((f) => names.map((_, i) => colourShare(f, participantStyle(i + 1).hex) > 0.01));
  const key = (v: boolean[]) => names.filter((_, i) => v[i]).join('+');
  const runs: { set: string; from: number; frames: number }[] = [];
  sets.forEach((v, i) => {
    const k = key(v);
    if (runs.length && runs[runs.length - 1].set === k) runs[runs.length - 1].frames++;
    else runs.push({ set: k, from: +(i / fps).toFixed(2), frames: 1 });
  });
  // eslint-disable-next-line no-console
  console.log('colour runs in the file', JSON.stringify(runs), `file ${(frames.length / fps).toFixed(1)} s for ${(end / 1000).toFixed(1)} s of wall time`);
  const steady = runs.filter((r) => r.frames >= fps / 2).map((r) => r.set);
  const firstYellow = sets.findIndex((v) => v[3]);
  const lastGreen = sets.length - 1 - [...sets].reverse().findIndex((v) => v[1]);
  // Red, Green, Blue together before Yellow ever shows; then all four; then Green never again
  expect(sets.slice(0, Math.max(0, firstYellow)).some((v) => key(v) === 'Red+Green+Blue')).toBe(true);
  expect(steady).toContain('Red+Green+Blue+Yellow');
  expect(firstYellow).toBeLessThan(lastGreen);
  expect(sets.slice(lastGreen + 1).every((v) => !v[1])).toBe(true);
  expect(steady[steady.length - 1]).toBe('Red+Blue+Yellow');
  expect(sets.slice(lastGreen + Math.round(fps)).filter((v) => key(v) !== 'Red+Blue+Yellow').length).toBeLessThan(fps); // at most a second of transition
  // wall-clock mapping, for the record: where the file shows each change vs when it happened
  // eslint-disable-next-line no-console
  console.log(`Yellow joined at +${joinY} ms wall, first seen at ${((firstYellow / fps) * 1000).toFixed(0)} ms of file; Green left at +${leaveG} ms wall, last seen at ${((lastGreen / fps) * 1000).toFixed(0)} ms of file`);

  // first composite frame with a participant's colour in it
  const first = sets.findIndex((v) => v.some(Boolean));
  const firstFrameMs = start - clickAt + (first / fps) * 1000;
  // eslint-disable-next-line no-console
  console.log(`Record click → recording started ${start - clickAt} ms; first composite frame showing a participant at ${Math.round(firstFrameMs)} ms after the click (frame ${first})`);

  // every tone
  const samples = audioSamples(file);
  const shares = names.map((_, i) => toneShare(samples, participantStyle(i + 1).toneHz));
  const absent = toneShare(samples, participantStyle(5).toneHz);
  // eslint-disable-next-line no-console
  console.log('tone shares', shares.map((s) => s.toFixed(4)), 'absent tone', absent.toFixed(5));
  for (const s of shares) expect(s).toBeGreaterThan(Math.max(0.0005, absent * 20)); // four beeping tones mixed: each a few tenths of a percent of the energy, an absent one ~0

  // nobody was shown an error during the meeting (a failed renegotiation, a failed recording)
  expect(pageErrors).toEqual([]);

  // it plays in the page
  const player = await browsers[0].newPage();
  await player.goto(`${server.url}/recordings`);
  await player.locator(`tr[data-id="${rec.id}"] button.play`).click();
  await player.waitForFunction(() => {
    const v = document.getElementById('player') as HTMLVideoElement;
    return v.currentTime > 1 && !v.error;
  }, undefined, { timeout: 20_000 });
});

test('a screen share from the page switches the recording to the screenshare layout and back', async () => {
  const room = 'e2e-share';
  await Promise.all(meetingPages.splice(0).map((p) => p.close()));
  await ensureBrowsers();
  const red = await joinMeeting(browsers[0], server.url, room, 'Red');
  const blue = await joinMeeting(browsers[2], server.url, room, 'Blue');
  meetingPages.push(red, blue);
  const t0 = Date.now();
  while (!((await playingRemoteTiles(red)) === 1 && (await playingRemoteTiles(blue)) === 1)) {
    if (Date.now() - t0 > 30_000) throw new Error('the two browsers did not see each other');
    await sleep(250);
  }
  const r = server.conference.room(room)!;
  const blueId = r.participants().find((p) => p.name === 'Blue')!.id;
  const sharing = () => r.publicationsOf(blueId).some((x) => x.purpose === 'screen');

  await red.click('#record-toggle');
  await blue.locator('#recording-indicator').waitFor({ state: 'visible', timeout: 10_000 });
  await sleep(3000);
  await blue.click('#share-screen');
  await blue.waitForFunction(() => document.getElementById('share-screen')!.textContent === 'Stop sharing', undefined, { timeout: 10_000 });
  for (let i = 0; !sharing(); i++) {
    if (i > 100) throw new Error('the server never got the screen share');
    await sleep(100);
  }
  await sleep(5000);
  await blue.click('#share-screen'); // stop sharing
  for (let i = 0; sharing(); i++) {
    if (i > 100) throw new Error('the screen share never ended at the server');
    await sleep(100);
  }
  await sleep(3000);
  await red.click('#record-toggle');
  await red.locator('#recording-indicator').waitFor({ state: 'hidden', timeout: 30_000 });

  const list = (await (await fetch(`${server.url}/api/recordings?roomId=${room}`)).json()) as { recordings: RecordingInfo[] };
  let rec = list.recordings[0];
  for (let i = 0; i < 100 && rec.status !== 'available' && rec.status !== 'failed'; i++) {
    await sleep(200);
    rec = (await (await fetch(`${server.url}/api/recordings/${rec.id}`)).json()) as RecordingInfo;
  }
  expect(rec.status).toBe('available');
  const manifest = JSON.parse(fs.readFileSync(path.join(tmp, 'rec', room, `${rec.id}.json`), 'utf8')) as Manifest;
  const phases = manifest.layouts.filter((l, i, all) => l.preset !== all[i - 1]?.preset);
  expect(phases.map((l) => l.preset)).toEqual(['grid', 'screenshare', 'grid']);

  const file = path.join(tmp, 'share.mp4');
  fs.writeFileSync(file, Buffer.from(await (await fetch(`${server.url}/api/recordings/${rec.id}/media`)).arrayBuffer()));
  expect(decodeErrors(file)).toBe('');
  const { frames, fps } = allFrames(file, 8);
  const start = Date.parse(rec.startedAt);
  const [, shareAt, backAt] = phases.map((l) => (Date.parse(l.at) - start) / 1000);
  const redShare = (from: number, to: number) => frames.slice(Math.round(from * fps), Math.round(to * fps)).map((f) => colourShare(f, participantStyle(1).hex));
  // Grid before the share: Red is one of two big tiles. During it: Red is a small tile in the strip.
  // From Red's first picture on (its name card stands in until then: how soon that comes is the
  // first test's to check; here, under a loaded CI start, it once came after 1 s of the file).
  const firstRed = frames.findIndex((f) => colourShare(f, participantStyle(1).hex) > 0.15) / fps;
  expect(firstRed).toBeGreaterThanOrEqual(0);
  expect(firstRed).toBeLessThan(3);
  const before = redShare(Math.max(1, firstRed), shareAt - 0.5);
  const during = redShare(shareAt + 1.5, backAt - 0.5);
  // eslint-disable-next-line no-console
  console.log(`screen share: layout switched at ${shareAt.toFixed(2)} s and back at ${backAt.toFixed(2)} s of the file; Red's share of the frame ${Math.min(...before).toFixed(3)}…${Math.max(...before).toFixed(3)} before, ${Math.min(...during).toFixed(3)}…${Math.max(...during).toFixed(3)} during`);
  // eslint-disable-next-line no-console
  if (!during.every((x) => x > 0.005 && x < 0.1)) console.log("during", during.map((x) => x.toFixed(2)).join(" "), JSON.stringify(manifest.layouts));
  // eslint-disable-next-line no-console
  if (!before.every((x) => x > 0.15)) console.log(`before (from ${firstRed.toFixed(2)} s)`, before.map((x) => x.toFixed(2)).join(" "), JSON.stringify(manifest.layouts));
  expect(before.length).toBeGreaterThan(fps);
  expect(during.length).toBeGreaterThan(fps * 2);
  expect(before.every((x) => x > 0.15)).toBe(true);
  expect(during.every((x) => x > 0.005 && x < 0.1)).toBe(true);
  expect(pageErrors).toEqual([]);
});

test('the server loses a person\'s media, then their socket: each time the page says so, joins again by itself, and both see each other again', async () => {
  const room = 'e2e-again';
  await Promise.all(meetingPages.splice(0).map((p) => p.close()));
  await ensureBrowsers();
  const red = await joinMeeting(browsers[0], server.url, room, 'Red');
  const blue = await joinMeeting(browsers[2], server.url, room, 'Blue');
  meetingPages.push(red, blue);
  const bothPlaying = async () => (await playingRemoteTiles(red)) === 1 && (await playingRemoteTiles(blue)) === 1;
  for (const t0 = Date.now(); !(await bothPlaying()); await sleep(250)) {
    if (Date.now() - t0 > 30_000) throw new Error('the two browsers did not see each other');
  }
  const firstId = await red.evaluate(() => (window as unknown as { tessera: { participantId: () => string } }).tessera.participantId());
  const errorsBefore = pageErrors.length;
  // While the page reconnects, Record/Stop is disabled (the server would refuse it between the
  // leave and the join): watched every 5 ms from inside the page.
  await red.evaluate(() => {
    const w = window as unknown as { rejoinButton: { disabled: number; enabled: number } };
    w.rejoinButton = { disabled: 0, enabled: 0 };
    setInterval(() => {
      if (document.body.dataset.rejoining !== '1') return;
      if ((document.getElementById('record-toggle') as HTMLButtonElement).disabled) w.rejoinButton.disabled++;
      else w.rejoinButton.enabled++;
    }, 5);
  });
  server.conference.room(room)!.peer(firstId)!.debugFail(); // what a failed ICE/DTLS connection does
  await red.waitForFunction(() => (window as unknown as { tessera: { rejoins: () => number } }).tessera.rejoins() === 1, undefined, { timeout: 20_000 });
  const button = await red.evaluate(() => (window as unknown as { rejoinButton: { disabled: number; enabled: number } }).rejoinButton);
  expect(button.disabled).toBeGreaterThan(0);
  expect(button.enabled).toBe(0);
  await red.waitForFunction(() => !(document.getElementById('record-toggle') as HTMLButtonElement).disabled, undefined, { timeout: 10_000 });
  const notices = await red.locator('#notices .notice').allTextContents();
  expect(notices.some((n) => /^REC_ERR_BAD_SIGNAL: .*reconnecting$/.test(n))).toBe(true);
  expect(notices).toContain('Reconnected.');
  const newId = await red.evaluate(() => (window as unknown as { tessera: { participantId: () => string } }).tessera.participantId());
  expect(newId).not.toBe(firstId);
  expect(server.conference.room(room)!.participants().map((p) => p.name).sort()).toEqual(['Blue', 'Red']);
  // Blue plays the new Red, Red plays Blue again.
  const blueSeesNewRed = () => blue.evaluate((id) => {
    const v = document.querySelector<HTMLVideoElement>(`.tile[data-key="${id}:camera"] video`);
    return !!v && v.videoWidth > 0 && v.readyState >= 2 && !v.paused;
  }, newId);
  for (const t0 = Date.now(); !((await blueSeesNewRed()) && (await playingRemoteTiles(red)) === 1 && (await playingRemoteTiles(blue)) === 1); await sleep(250)) {
    if (Date.now() - t0 > 30_000) throw new Error('they did not see each other again');
  }
  // A network blip: Red's socket.io transport drops (the server takes Red out at once).
  // socket.io reconnects, and the page joins again.
  const redSocket = [...server.signalling.io.sockets.sockets.values()].find((x) => x.data.peer?.id === newId)!;
  redSocket.conn.close();
  await red.waitForFunction(() => (window as unknown as { tessera: { rejoins: () => number } }).tessera.rejoins() === 2, undefined, { timeout: 30_000 });
  const thirdId = await red.evaluate(() => (window as unknown as { tessera: { participantId: () => string } }).tessera.participantId());
  expect(thirdId).not.toBe(newId);
  expect(await red.locator('#notices .notice').allTextContents()).toEqual(expect.arrayContaining([expect.stringMatching(/^Lost the connection to the server \(transport close\); reconnecting…$/)]));
  const blueSees = (id: string) => blue.evaluate((key) => {
    const v = document.querySelector<HTMLVideoElement>(`.tile[data-key="${key}:camera"] video`);
    return !!v && v.videoWidth > 0 && v.readyState >= 2 && !v.paused;
  }, id);
  for (const t0 = Date.now(); !((await blueSees(thirdId)) && (await playingRemoteTiles(red)) === 1 && (await playingRemoteTiles(blue)) === 1); await sleep(250)) {
    if (Date.now() - t0 > 30_000) throw new Error('they did not see each other after the socket came back');
  }
  expect(server.conference.room(room)!.participants().map((p) => p.name).sort()).toEqual(['Blue', 'Red']);
  // The only console errors are Red's own report of the lost connection.
  const errors = pageErrors.splice(errorsBefore);
  expect(errors.filter((e) => !e.startsWith('[Red]'))).toEqual([]);
  expect(pageErrors).toEqual([]);
});
