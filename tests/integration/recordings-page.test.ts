/**
 * The recordings page with API_TOKEN set, in real headless Chromium: the token is asked for on
 * the page (never in its URL), and the <video> plays through a short-lived signed URL, which it
 * could not do when the page passed the token in its URL and the player had no header to send.
 * With more recordings than one page of the API, "More" shows the rest.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { Recorder } from '../../src/pipeline/Recorder';
import { TesseraServer } from '../../src/server/TesseraServer';
import { FileStorage } from '../../src/storage/FileStorage';
import { CHROMIUM, CHROMIUM_ARGS } from '../helpers/player';
import { FFMPEG } from '../helpers/rtc-harness';

jest.setTimeout(90_000);

const API_TOKEN = 'recordings-page-token-0123456789abcdef';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `tessera-recpage-${process.pid}-`));
let server: TesseraServer;
let recorder: Recorder;
let browser: Browser | undefined;

beforeAll(async () => {
  // one stored recording: a 3 s fragmented MP4 (H.264 + AAC, as the recorder writes) and its manifest
  const dir = path.join(tmp, 'rec', 'room1');
  fs.mkdirSync(dir, { recursive: true });
  execFileSync(FFMPEG, ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=15', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '3', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-g', '30', '-c:a', 'aac', '-movflags', 'frag_keyframe+empty_moov+default_base_moof', path.join(dir, 'rec1.mp4')]);
  // and one track of it, as `tracks: true` keeps them
  fs.mkdirSync(path.join(dir, 'rec1.tracks'));
  execFileSync(FFMPEG, ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=15', '-t', '2', '-c:v', 'libvpx', '-b:v', '300k', '-f', 'webm', path.join(dir, 'rec1.tracks', '001-camera-p1.webm')]);
  const trackBytes = fs.statSync(path.join(dir, 'rec1.tracks', '001-camera-p1.webm')).size;
  const now = new Date().toISOString();
  const track = { id: 't1', participantId: 'p1', name: 'Alice', sourceId: 'p1', kind: 'camera', codec: 'vp8', container: 'webm', startedAt: now, start: 0, end: 2000, location: { kind: 'file', key: 'room1/rec1.tracks/001-camera-p1.webm' }, bytes: trackBytes, packets: 30, state: 'complete' };
  fs.writeFileSync(path.join(dir, 'rec1.json'), JSON.stringify({ id: 'rec1', roomId: 'room1', status: 'available', startedAt: now, endedAt: now, durationMs: 3000, layout: 'grid', location: { kind: 'file', key: 'room1/rec1.mp4' }, participants: [], tracks: [track] }));
  // and 104 older ones (their manifests only), in another room: more than the API's page of 100
  const old = path.join(tmp, 'rec', 'archive');
  fs.mkdirSync(old, { recursive: true });
  for (let i = 0; i < 104; i++) {
    const at = new Date(Date.parse('2026-11-01T10:00:00Z') + i * 60_000).toISOString();
    fs.writeFileSync(path.join(old, `old${i}.json`), JSON.stringify({ id: `old${i}`, roomId: 'archive', status: 'available', startedAt: at, endedAt: at, durationMs: 1000, layout: 'grid', location: { kind: 'file', key: `archive/old${i}.mp4` }, participants: [] }));
  }
  const config = loadConfig({ PORT: '0', API_TOKEN, RECORDINGS_DIR: path.join(tmp, 'rec') });
  recorder = new Recorder({ config, storage: new FileStorage(config.recordingsDir), logger });
  server = new TesseraServer({ config, recorder, logger });
  await server.listen(0, '127.0.0.1');
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  recorder?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The recordings page in Chromium, the token typed into its form; every URL it requests is kept. */
async function openPageWithToken() {
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  const page = await browser.newPage();
  const requested: string[] = [];
  page.on('request', (r) => requested.push(r.url()));
  await page.goto(`${server.url}/recordings`);
  await page.locator('#token-form').waitFor({ state: 'visible', timeout: 10_000 });
  await page.fill('#api-token', API_TOKEN);
  await page.click('#token-form button[type=submit]');
  return { page, requested };
}

test('with API_TOKEN set the page asks for the token and its <video> plays the recording', async () => {
  const { page, requested } = await openPageWithToken();
  await page.locator('tr[data-id="rec1"] button.play').click();
  await page.waitForFunction(() => {
    const v = document.querySelector<HTMLVideoElement>('#player');
    return !!v && v.readyState >= 2 && v.currentTime > 0.5 && v.videoWidth === 320;
  }, undefined, { timeout: 20_000 });
  // the token went in headers only, never in a URL
  expect(requested.filter((u) => u.includes(API_TOKEN))).toEqual([]);
  const src = await page.locator('#player').evaluate((v: HTMLVideoElement) => v.src);
  expect(src).toMatch(/\/api\/recordings\/rec1\/media\?expires=\d+&sig=[\w-]+$/);
});

test('a signed media URL plays that recording only, for a while only; tampering is refused', async () => {
  const auth = { authorization: `Bearer ${API_TOKEN}` };
  const signed = (await (await fetch(`${server.url}/api/recordings/rec1/media-url`, { headers: auth })).json()) as { url: string; expiresAt: string };
  expect(Date.parse(signed.expiresAt) - Date.now()).toBeLessThanOrEqual(300_000);
  const ranged = await fetch(`${server.url}${signed.url}`, { headers: { range: 'bytes=0-99' } });
  expect(ranged.status).toBe(206);
  expect((await ranged.arrayBuffer()).byteLength).toBe(100);
  const u = new URL(signed.url, server.url);
  const expires = Number(u.searchParams.get('expires'));
  const variants = [
    u.href.replace('/rec1/', '/rec2/'), // another recording
    u.href.replace(`expires=${expires}`, `expires=${expires + 3600}`), // a longer life
    `${server.url}/api/recordings/rec1/media`, // no signature
    `${server.url}/api/recordings?expires=${expires}&sig=${u.searchParams.get('sig')}`, // another route
  ];
  for (const url of variants) expect({ url, status: (await fetch(url)).status }).toEqual({ url, status: 401 });
  expect((await fetch(`${server.url}${signed.url}`, { method: 'DELETE' })).status).toBe(401);
  expect((await fetch(`${server.url}/api/recordings/rec1/media-url`)).status).toBe(401);
});

test("a recording's tracks: listed on the page and downloaded with the token in a header; over REST with ranges", async () => {
  const { page, requested } = await openPageWithToken();
  await page.locator('tr[data-id="rec1"] button.show-tracks').click();
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 10_000 }), page.locator('tr.tracks button.track').first().click()]);
  expect(download.suggestedFilename()).toBe('001-camera-p1.webm');
  const saved = path.join(tmp, 'downloaded.webm');
  await download.saveAs(saved);
  expect(fs.readFileSync(saved).equals(fs.readFileSync(path.join(tmp, 'rec', 'room1', 'rec1.tracks', '001-camera-p1.webm')))).toBe(true);
  expect(requested.filter((u) => u.includes(API_TOKEN))).toEqual([]);

  const url = `${server.url}/api/recordings/rec1/tracks/t1/media`;
  const auth = { Authorization: `Bearer ${API_TOKEN}` };
  const whole = await fetch(url, { headers: auth });
  expect({ status: whole.status, type: whole.headers.get('content-type'), bytes: (await whole.arrayBuffer()).byteLength }).toEqual({ status: 200, type: 'video/webm', bytes: fs.statSync(saved).size });
  const part = await fetch(url, { headers: { ...auth, Range: 'bytes=0-99' } });
  expect({ status: part.status, bytes: (await part.arrayBuffer()).byteLength }).toEqual({ status: 206, bytes: 100 });
  expect((await fetch(url)).status).toBe(401);
  expect((await fetch(`${server.url}/api/recordings/rec1/tracks/t9/media`, { headers: auth })).status).toBe(404);
  expect((await fetch(`${server.url}/api/recordings/rec1/tracks/..%2F..%2Fetc/media`, { headers: auth })).status).toBe(400);
  await page.close();
});

test('105 recordings: the page shows the newest 100, and "More" the other 5, each once, newest first', async () => {
  const { page } = await openPageWithToken();
  const ids = () => page.locator('#list tr[data-id]').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.id!));
  await page.waitForFunction(() => document.querySelectorAll('#list tr[data-id]').length === 100, undefined, { timeout: 10_000 });
  expect(await page.locator('#more').isVisible()).toBe(true);
  const first = await ids();
  expect(first.slice(0, 3)).toEqual(['rec1', 'old103', 'old102']);
  // Twice, quickly (an impatient person): the page asks once.
  await page.locator('#more').dblclick();
  await page.waitForFunction(() => document.querySelectorAll('#list tr[data-id]').length >= 105, undefined, { timeout: 10_000 });
  await new Promise((r) => setTimeout(r, 1000)); // a second request's rows would be here by now
  const all = await ids();
  expect(all.slice(0, 100)).toEqual(first);
  expect(all.slice(100)).toEqual(['old4', 'old3', 'old2', 'old1', 'old0']);
  expect(all.length).toBe(105);
  expect(new Set(all).size).toBe(105);
  await page.locator('#more').waitFor({ state: 'hidden', timeout: 5000 });
  // Refresh starts again from the newest.
  await page.click('#refresh');
  await page.waitForFunction(() => document.querySelectorAll('#list tr[data-id]').length === 100, undefined, { timeout: 10_000 });
  expect(await page.locator('#more').isVisible()).toBe(true);
  await page.close();
});
