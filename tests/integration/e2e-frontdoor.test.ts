/**
 * The front door in real headless Chromium (Debian's): a person opens `/`, enters a room and a
 * name and lands in that meeting (the server has them in the room under that name); a room id
 * the server would refuse is stopped on the page; the recordings are one link away. On a server
 * with AUTH_SECRET the page asks for an invitation, and the invitation link leads into the room
 * it was made for, under the name and role the token carries.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { Recorder } from '../../src/pipeline/Recorder';
import { signRoomToken } from '../../src/server/auth';
import { TesseraServer } from '../../src/server/TesseraServer';
import { FileStorage } from '../../src/storage/FileStorage';
import { launchIdentity, sendStats } from '../helpers/browser-meeting';
import { until } from '../helpers/rtc-harness';

jest.setTimeout(90_000);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `tessera-frontdoor-${process.pid}-`));
const SECRET = 'front-door-test-secret-0123456789abcdef';
const servers: TesseraServer[] = [];
const storages: FileStorage[] = [];
let open: TesseraServer;
let invited: TesseraServer;
let browser: Browser;
/** One person's browser profile: pages share its storage. */
let context: BrowserContext;
const pages: Page[] = [];
const pageErrors: string[] = [];

async function startServer(env: Record<string, string>): Promise<TesseraServer> {
  const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1', RECORDINGS_DIR: path.join(tmp, `rec-${servers.length}`), ...env });
  const storage = new FileStorage(config.recordingsDir);
  const server = new TesseraServer({ config, recorder: new Recorder({ config, storage, logger }), logger, rtc: { connectTimeoutMs: 15_000 } });
  await server.listen(0, '127.0.0.1');
  servers.push(server);
  storages.push(storage);
  return server;
}

async function newPage(): Promise<Page> {
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
  pages.push(page);
  return page;
}

/** The person is in the room on the server, under that name. */
const inRoom = (server: TesseraServer, room: string, name: string) => () => !!server.conference.room(room)?.participants().some((p) => p.name === name);

/**
 * The page sends its camera to the server (the media connection is up, not only the
 * signalling). Waiting for it also lets the DTLS handshake finish before the page closes:
 * werift's retransmission timer of a handshake cut short runs on for up to 27 s.
 */
async function sendingVideo(page: Page): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const st = await sendStats(page);
    if (st && st.videoBytesSent > 0) return;
    if (Date.now() - t0 > 20_000) throw new Error(`the page sent no video in 20 s (${JSON.stringify(st)})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  open = await startServer({});
  invited = await startServer({ AUTH_SECRET: SECRET });
  // At normal priority, as a person's browser: no recording here for it to take the CPU from.
  browser = await launchIdentity(tmp, 1, { normal: true });
  context = await browser.newContext();
});

afterAll(async () => {
  for (const p of pages) await p.close().catch(() => undefined);
  await context?.close().catch(() => undefined);
  await browser?.close().catch(() => undefined);
  for (const s of servers) await s.drain();
  for (const s of storages) await s.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('open server: `/` → room and name → in the meeting; a bad room id is stopped on the page; recordings one link away', async () => {
  const page = await newPage();
  const res = await page.goto(`${open.url}/`);
  expect(res?.status()).toBe(200);
  expect(page.url()).toBe(`${open.url}/`); // no longer a redirect to the recordings
  expect(await page.locator('h1').textContent()).toBe('Start or join a meeting');
  expect(await page.locator('#token-form').isVisible()).toBe(true);

  // A room id the server would refuse: the page says so and stays.
  await page.fill('#room', 'our room!');
  await page.fill('#name', 'Ada');
  await page.click('#join');
  await page.waitForTimeout(300); // time for a navigation that must not happen
  expect(page.url()).toBe(`${open.url}/`);
  expect(await page.locator('#room').evaluate((el: HTMLInputElement) => el.validationMessage)).toMatch(/1–64 characters/);

  // New room: a fresh id, valid for the server.
  await page.click('#new-room');
  const fresh = await page.inputValue('#room');
  expect(fresh).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
  await page.click('#new-room');
  expect(await page.inputValue('#room')).not.toBe(fresh);

  // The person's way in.
  await page.fill('#room', 'front-door');
  await page.fill('#name', 'Ada Lovelace');
  await Promise.all([page.waitForURL(`${open.url}/r/front-door?name=Ada%20Lovelace`), page.click('#join')]);
  await page.waitForSelector('body[data-joined="1"]', { timeout: 20_000 });
  await until(inRoom(open, 'front-door', 'Ada Lovelace'), 10_000, 'Ada in the room on the server');
  await sendingVideo(page);
  expect(await page.locator('.tile[data-key="local"] .label').textContent()).toBe('Ada Lovelace (you)');

  // Back at the door the name is remembered; the recordings link leads to the list.
  const door = await newPage();
  await door.goto(`${open.url}/`);
  expect(await door.inputValue('#name')).toBe('Ada Lovelace');
  await Promise.all([door.waitForURL(`${open.url}/recordings`), door.click('#recordings-link')]);
  await door.waitForSelector('#list tr');
  expect(await door.locator('#list').textContent()).toContain('No recordings yet.');
  expect(pageErrors).toEqual([]);
});

test('server with AUTH_SECRET: the page asks for an invitation, and the link leads into its room', async () => {
  const page = await newPage();
  await page.goto(`${invited.url}/`);
  expect(await page.locator('#room-form').isVisible()).toBe(false); // a room and a name alone would be refused
  expect(await page.locator('#token-help').textContent()).toMatch(/invitation from their host/);

  // Something that is not an invitation: a clear error, no navigation.
  await page.fill('#token', 'hello');
  await page.click('#join-token');
  expect(await page.locator('.notice.error').textContent()).toMatch(/not an invitation/);
  await page.waitForTimeout(300);
  expect(page.url()).toBe(`${invited.url}/`);

  const token = signRoomToken({ room: 'board', name: 'Grace', role: 'host', exp: Math.floor(Date.now() / 1000) + 600 }, SECRET);
  await page.fill('#token', `${invited.url}/r/board?token=${token}`);
  await Promise.all([page.waitForURL(/\/r\/board\?token=/), page.click('#join-token')]);
  await page.waitForSelector('body[data-joined="1"]', { timeout: 20_000 });
  await until(inRoom(invited, 'board', 'Grace'), 10_000, 'Grace in the room on the server');
  await sendingVideo(page);
  expect(await page.locator('#record-toggle').isEnabled()).toBe(true); // a host may record
  expect(pageErrors).toEqual([]);
});
