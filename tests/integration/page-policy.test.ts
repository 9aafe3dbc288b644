/**
 * What the pages allow a browser to do, in real headless Chromium: the Content-Security-Policy
 * lets them work — the recordings page plays an S3 recording through the redirect to its presigned
 * URL (a real S3-compatible HTTP server) — with no violation reported; another site cannot frame
 * the meeting page unless TESSERA_FRAME_ANCESTORS names it; every answer says nosniff; the
 * pages' icon is served.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { Recorder } from '../../src/pipeline/Recorder';
import { TesseraServer } from '../../src/server/TesseraServer';
import { S3Storage } from '../../src/storage/S3Storage';
import { CHROMIUM, CHROMIUM_ARGS } from '../helpers/player';
import { S3TestServer } from '../helpers/s3server';
import { BUCKET, TEST_CREDENTIALS, makeFmp4, s3TestConfig, split, tempDir } from '../helpers/s3fixtures';

jest.setTimeout(90_000);

let dir: string;
let s3: S3TestServer;
let browser: Browser | undefined;
/** A page of another origin that frames a meeting page. */
let other: http.Server;
let otherOrigin: string;
let framedUrl = '';
const servers: TesseraServer[] = [];
const recorders: Recorder[] = [];
const storages: S3Storage[] = [];

/** A Tessera server on S3 storage (the test endpoint, dev mode), with `env` added. */
async function startServer(env: Record<string, string> = {}): Promise<TesseraServer> {
  const base = loadConfig({ PORT: '0', RECORDINGS_DIR: path.join(dir, 'rec'), ...env });
  const config = { ...base, s3: s3TestConfig(s3.endpoint, path.join(dir, `spool-${servers.length}`)) };
  const storage = new S3Storage(config.s3, { clientConfig: { credentials: TEST_CREDENTIALS } });
  const recorder = new Recorder({ config, storage, logger });
  const server = new TesseraServer({ config, recorder, logger });
  await server.listen(0, '127.0.0.1');
  servers.push(server);
  recorders.push(recorder);
  storages.push(storage);
  return server;
}

/** A page that records every CSP violation from its first script on. */
async function watchedPage(): Promise<{ page: Page; violations: () => Promise<string[]> }> {
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'], headless: true });
  const page = await browser.newPage();
  await page.addInitScript(() => {
    const w = window as unknown as { violations: string[] };
    w.violations = [];
    document.addEventListener('securitypolicyviolation', (e) => w.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return { page, violations: () => page.evaluate(() => (window as unknown as { violations: string[] }).violations) };
}

beforeAll(async () => {
  dir = await tempDir('page-policy');
  s3 = new S3TestServer({ buckets: [BUCKET] });
  await s3.start();
  // One recording in the bucket, written as the recorder writes one (multipart, then its manifest).
  const seed = new S3Storage(s3TestConfig(s3.endpoint, path.join(dir, 'seed-spool')), { clientConfig: { credentials: TEST_CREDENTIALS } });
  const sink = seed.createSink('rec1', 'room1');
  await sink.open();
  for (const g of split(await makeFmp4(4, { size: '320x180', bitrate: '300k' }))) await sink.write(g);
  const now = new Date().toISOString();
  await sink.finish({ id: 'rec1', roomId: 'room1', status: 'available', startedAt: now, endedAt: now, durationMs: 4000, layout: 'grid', participants: [{ id: 'p1', name: 'Alice', joinedAt: now }] });
  await seed.close();
  other = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><iframe id="f" src="${framedUrl}" allow="camera; microphone; display-capture" width="800" height="500"></iframe>`));
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
  otherOrigin = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await browser?.close();
  for (const s of servers) await s.close();
  for (const r of recorders) r.close();
  for (const s of storages) await s.close();
  await new Promise((r) => other?.close(r));
  await s3?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('every page has its policy, every answer nosniff; the icon is served', async () => {
  const server = await startServer();
  for (const p of ['/', '/r/room1?name=Ann', '/recordings']) {
    const res = await fetch(`${server.url}${p}`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'self'");
    // The bucket's presigned URLs may be played (path style and virtual-hosted).
    expect(csp).toContain(`media-src 'self' blob: ${s3.endpoint.replace(/\/$/, '')}`);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  }
  const api = await fetch(`${server.url}/api/recordings`);
  expect({ status: api.status, nosniff: api.headers.get('x-content-type-options') }).toEqual({ status: 200, nosniff: 'nosniff' });
  const icon = await fetch(`${server.url}/favicon.ico`);
  expect({ status: icon.status, type: icon.headers.get('content-type') }).toEqual({ status: 200, type: 'image/svg+xml' });
  expect(await icon.text()).toContain('<svg');
});

test('the recordings page plays an S3 recording through its presigned URL with nothing refused', async () => {
  const server = await startServer();
  const { page, violations } = await watchedPage();
  const requested: string[] = [];
  page.on('request', (r) => requested.push(r.url()));
  await page.goto(`${server.url}/recordings`);
  await page.locator('tr[data-id="rec1"] button.play').click();
  await page.waitForFunction(() => {
    const v = document.querySelector<HTMLVideoElement>('#player');
    return !!v && v.readyState >= 2 && v.currentTime > 0.5 && v.videoWidth === 320;
  }, undefined, { timeout: 20_000 });
  // It came from the bucket: the server answered with a redirect to the presigned object.
  expect(requested.some((u) => u.startsWith(`${s3.endpoint.replace(/\/$/, '')}/${BUCKET}/`) && u.includes('X-Amz-Signature'))).toBe(true);
  expect(await violations()).toEqual([]);
  // The page's own icon, script and style loaded too (a refusal would be a violation above).
  expect(requested.some((u) => u.endsWith('/static/favicon.svg'))).toBe(true);
  await page.close();
});

test('another site cannot frame the meeting page, unless TESSERA_FRAME_ANCESTORS names it', async () => {
  const closed = await startServer();
  const open = await startServer({ TESSERA_FRAME_ANCESTORS: `'self' ${otherOrigin}` });
  expect((await fetch(`${open.url}/r/room2`)).headers.get('content-security-policy')).toContain(`frame-ancestors 'self' ${otherOrigin}`);
  const framed = async (server: TesseraServer): Promise<boolean> => {
    framedUrl = `${server.url}/r/room2?name=Framed`;
    const { page } = await watchedPage();
    await page.goto(`${otherOrigin}/`);
    const frame = page.frame({ url: (u) => u.href.startsWith(server.url) });
    // A refused frame gets the browser's error page instead: it has no Record button.
    const shown = frame ? await frame.locator('#record-toggle').count().catch(() => 0) : 0;
    // An allowed one is a working meeting: with the iframe's `allow`, it gets its camera and
    // microphone, joins and sends its video (docs/api.md).
    if (shown) {
      await frame!.waitForSelector('body[data-joined="1"]', { timeout: 20_000 });
      await frame!.waitForFunction(async () => ((await (window as unknown as { tessera: { sendStats: () => Promise<{ videoBytesSent: number } | null> } }).tessera.sendStats())?.videoBytesSent ?? 0) > 0, undefined, { timeout: 20_000, polling: 250 });
    }
    await page.close();
    return shown > 0;
  };
  const refused = await framed(closed);
  const allowed = await framed(open);
  expect({ refused, allowed }).toEqual({ refused: false, allowed: true });
});

test('a bad TESSERA_FRAME_ANCESTORS stops the process with a message naming it', () => {
  for (const v of ['*', "'self' javascript:alert(1)", "'none' 'self'", 'https://a.example;script-src *', ' , ']) {
    expect(() => loadConfig({ TESSERA_FRAME_ANCESTORS: v })).toThrow(/TESSERA_FRAME_ANCESTORS/);
  }
  expect(loadConfig({ TESSERA_FRAME_ANCESTORS: "'self', https://app.example.com https://*.example.org:8443" }).frameAncestors).toEqual(["'self'", 'https://app.example.com', 'https://*.example.org:8443']);
  expect(loadConfig({ TESSERA_FRAME_ANCESTORS: "'none'" }).frameAncestors).toEqual(["'none'"]);
});
