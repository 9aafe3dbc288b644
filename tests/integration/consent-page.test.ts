/**
 * The meeting page asks for consent, in real headless Chromium: a recording started with
 * `consent: "required"` shows #consent to the person in the room; until they accept, nothing of
 * theirs reaches the recording; "Record me" puts them in it; they may change their mind while it
 * records ("Leave me out", then "Record me" again); the indicator shows all along.
 * And a page whose seat the same person took from elsewhere leaves.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { launchIdentity, joinMeeting, pageErrors, releaseBackgroundCgroup } from '../helpers/browser-meeting';
import { signRoomToken } from '../../src/server/auth';
import { FakeRecorder } from '../helpers/rtc-fakeRecorder';
import { participant, startServer, until } from '../helpers/rtc-harness';

jest.setTimeout(90_000);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `tessera-consent-page-${process.pid}-`));
let browser: Browser | undefined;

afterAll(async () => {
  await browser?.close();
  releaseBackgroundCgroup();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('#consent appears when a consent-required recording starts; nothing is recorded until "Record me"', async () => {
  const recorder = new FakeRecorder();
  const server = await startServer(recorder);
  try {
    browser = await launchIdentity(tmp, 1);
    const page = await joinMeeting(browser, server.url, 'consent-page', 'Red');
    await until(() => (server.conference.room('consent-page')?.participants()[0]?.publishing.length ?? 0) >= 2, 20_000, 'the page publishing');
    expect(await page.locator('#consent').isVisible()).toBe(false);
    const started = await fetch(`${server.url}/api/rooms/consent-page/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ consent: 'required' }) });
    expect(started.status).toBe(201);
    await page.locator('#consent').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await page.locator('#recording-indicator').isVisible()).toBe(true);
    const probe = recorder.activeFor('consent-page')!;
    expect(probe.sources.size).toBe(0); // not answered: not recorded
    await page.click('#consent-accept');
    await page.locator('#consent').waitFor({ state: 'hidden', timeout: 10_000 });
    await until(() => probe.sources.size === 1 && (probe.stats.get([...probe.sources.keys()][0])?.frames ?? 0) > 5, 15_000, 'the camera in the recording');
    expect(await page.locator('#notices').textContent()).toContain('You are in the recording from now on.');
    // A change of mind, while it records: "Leave me out" takes the camera out, "Record me" puts
    // it back.
    const toggle = page.locator('#consent-toggle');
    expect({ visible: await toggle.isVisible(), text: await toggle.textContent() }).toEqual({ visible: true, text: 'Leave me out' });
    await toggle.click();
    await until(() => probe.sources.size === 0, 10_000, 'the camera out of the recording');
    await page.waitForFunction(() => (document.querySelector('#notices')?.textContent ?? '').includes('You are left out of the recording from now on'), undefined, { timeout: 10_000 });
    expect(await toggle.textContent()).toBe('Record me');
    expect(await page.locator('#recording-indicator').isVisible()).toBe(true);
    await toggle.click();
    await until(() => probe.sources.size === 1, 10_000, 'the camera back in the recording');
    await page.waitForFunction(() => document.querySelector('#consent-toggle')?.textContent === 'Leave me out', undefined, { timeout: 10_000 });
    // The recording ends: nothing left to answer.
    expect((await fetch(`${server.url}/api/rooms/consent-page/recording`, { method: 'DELETE' })).status).toBe(200);
    await toggle.waitFor({ state: 'hidden', timeout: 10_000 });
    expect(pageErrors).toEqual([]);
    await page.close();
  } finally {
    await server.close();
  }
});

test('"Leave me out": the dialog closes and nothing of the person is recorded', async () => {
  const recorder = new FakeRecorder();
  const server = await startServer(recorder);
  try {
    browser ??= await launchIdentity(tmp, 1);
    const page = await joinMeeting(browser, server.url, 'consent-no', 'Red');
    await until(() => (server.conference.room('consent-no')?.participants()[0]?.publishing.length ?? 0) >= 2, 20_000, 'the page publishing');
    expect((await fetch(`${server.url}/api/rooms/consent-no/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ consent: 'required' }) })).status).toBe(201);
    await page.locator('#consent').waitFor({ state: 'visible', timeout: 10_000 });
    await page.click('#consent-decline');
    await page.locator('#consent').waitFor({ state: 'hidden', timeout: 10_000 });
    await page.waitForFunction(() => (document.querySelector('#notices')?.textContent ?? '').includes('You are left out of the recording.'), undefined, { timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 2000));
    expect(recorder.activeFor('consent-no')!.sources.size).toBe(0);
    expect(await page.locator('#recording-indicator').isVisible()).toBe(true);
    expect(pageErrors).toEqual([]);
    await page.close();
  } finally {
    await server.close();
  }
});

test('a page replaced by the same identity joining elsewhere says so and leaves', async () => {
  const SECRET = 'page-secret-0123456789abcdef-0123456789';
  const server = await startServer(new FakeRecorder(), { AUTH_SECRET: SECRET });
  const other = { p: null as null | Awaited<ReturnType<typeof participant>> };
  try {
    browser ??= await launchIdentity(tmp, 1);
    const token = signRoomToken({ room: 'seat', name: 'Ann', role: 'guest', exp: Math.floor(Date.now() / 1000) + 600 }, SECRET);
    const page = await joinMeeting(browser, server.url, 'seat', 'Ann', `&token=${token}`);
    other.p = await participant(server.url, 'seat', 'Ann', 2, { token, publish: false });
    expect((await other.p.join()).ok).toBe(true);
    await page.waitForFunction(() => (document.querySelector('#notices')?.textContent ?? '').includes('You left the meeting.'), undefined, { timeout: 10_000 });
    expect(await page.locator('#notices').textContent()).toContain('REC_ERR_REPLACED');
    expect(server.conference.room('seat')!.participants().map((x) => x.id)).toEqual([other.p.participantId]);
    expect(await page.evaluate(() => document.querySelectorAll('.tile').length)).toBe(0);
    pageErrors.splice(0); // the page reported the replacement as an error, as it should
  } finally {
    await other.p?.close();
    await server.close();
  }
});
