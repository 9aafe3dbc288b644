/**
 * Crash tests of S3 uploads (against the test server and against Swift): a recorder child process
 * (tests/helpers/s3-recorder-child.ts: live FFmpeg → Mp4Splitter → S3Sink) killed mid-recording,
 * and playback of the recovered object in headless Chromium.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import type { Browser } from 'playwright-core';
import type { Config } from '../../src/config';
import { TEST_CREDENTIALS } from './s3fixtures';

export interface Progress {
  event: string;
  ffmpegPid?: number;
  endMs?: number;
  partsUploaded?: number;
  bytesWritten?: number;
  bytesUploaded?: number;
}

/**
 * Run the recorder child until `until(progress)` holds, then SIGKILL it (and its FFmpeg).
 * The child is pushed to `children` at once, so the test's cleanup can kill it if this throws.
 */
export async function recordAndKill(o: {
  cfg: Config['s3'];
  recordingId: string;
  until: (p: Progress) => boolean;
  children: ChildProcess[];
  credentials?: { accessKeyId: string; secretAccessKey: string };
  roomId?: string;
}): Promise<Progress> {
  // `--import tsx` keeps the recorder in this one process (the tsx CLI would run it in a grandchild).
  const arg = { cfg: o.cfg, recordingId: o.recordingId, roomId: o.roomId ?? 'crashroom', seconds: 60, bitrate: '6M', credentials: o.credentials ?? TEST_CREDENTIALS };
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 's3-recorder-child.ts'), JSON.stringify(arg)], { stdio: ['ignore', 'pipe', 'inherit'] });
  o.children.push(child);
  let ffmpegPid = 0;
  let last: Progress = { event: 'none' };
  const rl = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('recorder child did not reach the kill point')), 90_000);
    child.on('exit', (code) => reject(new Error(`recorder child exited early (${code})`)));
    rl.on('line', (line) => {
      const p = JSON.parse(line) as Progress;
      if (p.ffmpegPid) ffmpegPid = p.ffmpegPid;
      if (p.event === 'wrote') last = p;
      if (p.event === 'wrote' && o.until(p)) {
        clearTimeout(timer);
        child.kill('SIGKILL');
        resolve();
      }
    });
  });
  await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
  if (ffmpegPid) {
    try {
      process.kill(ffmpegPid, 'SIGKILL');
    } catch {
      /* gone already (SIGPIPE) */
    }
  }
  return last;
}

/** Play a URL in headless Chromium to the end; returns what the <video> reported. */
export async function playInChromium(browser: Browser, url: string): Promise<{ ended: boolean; error: string | null; duration: number; currentTime: number }> {
  const page = await browser.newPage();
  try {
    await page.setContent('<video id="v" muted playsinline></video>');
    return await page.evaluate(async (src) => {
      const v = document.getElementById('v') as HTMLVideoElement;
      return new Promise<{ ended: boolean; error: string | null; duration: number; currentTime: number }>((resolve) => {
        const done = (ended: boolean): void => resolve({ ended, error: v.error ? `${v.error.code}: ${v.error.message}` : null, duration: v.duration, currentTime: v.currentTime });
        v.addEventListener('error', () => done(false));
        v.addEventListener('ended', () => done(true));
        v.addEventListener('loadedmetadata', () => {
          v.playbackRate = 8;
          void v.play().catch(() => done(false));
        });
        setTimeout(() => done(false), 60_000);
        v.src = src;
      });
    }, url);
  } finally {
    await page.close();
  }
}
