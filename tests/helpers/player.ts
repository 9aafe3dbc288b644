/**
 * Plays an MP4 in real headless Chromium (Debian's package) served over HTTP with Range
 * support, as a person's browser would: load, play, seek, and report what the <video> saw.
 */
import http from 'node:http';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required', '--mute-audio'];

export function serveFile(file: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><video id="v" muted playsinline></video>');
      return;
    }
    const size = fs.statSync(file).size;
    const m = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '');
    if (m) {
      const start = Number(m[1]);
      const end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      res.writeHead(206, { 'content-type': 'video/mp4', 'accept-ranges': 'bytes', 'content-range': `bytes ${start}-${end}/${size}`, 'content-length': end - start + 1 });
      fs.createReadStream(file, { start, end }).pipe(res);
    } else {
      res.writeHead(200, { 'content-type': 'video/mp4', 'accept-ranges': 'bytes', 'content-length': size });
      fs.createReadStream(file).pipe(res);
    }
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
      });
    });
  });
}

export interface PlayResult {
  duration: number;
  error: string | null;
  playedTo: number;
  seekedTo: number | null;
  endedOrNearEnd: boolean;
  videoWidth: number;
}

/** Loads the file in Chromium, plays it (2× speed) to the end, seeks to `seekTo`, reports. */
export async function playInChromium(file: string, seekTo: number): Promise<PlayResult> {
  const srv = await serveFile(file);
  let browser: Browser | null = null;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    const page = await browser.newPage();
    await page.goto(`${srv.url}/`);
    return await page.evaluate(
      async ({ src, seekTo }) => {
        const v = document.getElementById('v') as HTMLVideoElement;
        const err = () => (v.error ? `${v.error.code} ${v.error.message}` : null);
        const once = (ev: string, ms: number) =>
          new Promise<boolean>((res) => {
            const t = setTimeout(() => res(false), ms);
            v.addEventListener(ev, () => { clearTimeout(t); res(true); }, { once: true });
            v.addEventListener('error', () => { clearTimeout(t); res(false); }, { once: true });
          });
        v.src = src;
        await once('loadedmetadata', 15000);
        const duration = v.duration;
        v.playbackRate = 2;
        await v.play().catch(() => undefined);
        const ended = await once('ended', (duration / 2) * 1000 + 15000);
        const playedTo = v.currentTime;
        v.currentTime = seekTo;
        const seeked = await once('seeked', 10000);
        return { duration, error: err(), playedTo, seekedTo: seeked ? v.currentTime : null, endedOrNearEnd: ended || playedTo > duration - 0.5, videoWidth: v.videoWidth };
      },
      { src: `${srv.url}/video.mp4`, seekTo },
    );
  } finally {
    await browser?.close();
    await srv.close();
  }
}
