/**
 * The meeting page asks for consent, in real headless Chromium: a recording started with
 * `consent: "required"` shows #consent to the person in the room; until they accept, nothing of
 * theirs reaches the recording; "Record me" puts them in it; the indicator shows all along.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { launchIdentity, joinMeeting, pageErrors, releaseBackgroundCgroup } from '../helpers/browser-meeting';
import { FakeRecorder } from '../helpers/rtc-fakeRecorder';
import { startServer, until } from '../helpers/rtc-harness';

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
    expect(pageErrors).toEqual([]);
  } finally {
    await server.close();
  }
});
