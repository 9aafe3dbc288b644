import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { participantStyle, PATCH } from '../../src/media/SyntheticClip';
import { cpuGroup, removeCpuGroup } from './cpuGroup';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FFMPEG = process.env.ANALYSIS_FFMPEG ?? '/usr/bin/ffmpeg';

/**
 * Fake camera (y4m) and microphone (wav) for participant i: the participant's colour (docs/testing.md) with a moving
 * busy grey patch, and its tone beeping 250 ms on / 250 ms off. Chromium loops both files.
 */
export function fakeMediaFiles(dir: string, index: number): { video: string; audio: string } {
  const s = participantStyle(index);
  const video = path.join(dir, `p${index}.y4m`);
  const audio = path.join(dir, `p${index}.wav`);
  if (!fs.existsSync(video)) {
    const bg = `0x${s.hex.slice(1)}`;
    const graph =
      `color=c=${bg}:s=320x180:r=15:d=3[bg];` +
      `color=c=gray:s=${PATCH.w / 2}x${PATCH.h / 2}:r=15:d=3,noise=alls=80:allf=t+u[patch];` +
      `[bg][patch]overlay=x='${PATCH.xMin / 2}+mod(t*60\\,${PATCH.xRange / 2})':y=${PATCH.y / 2}:shortest=1,format=yuv420p`;
    execFileSync(FFMPEG, ['-v', 'error', '-y', '-filter_complex', graph, '-f', 'yuv4mpegpipe', video]);
    execFileSync(FFMPEG, ['-v', 'error', '-y', '-filter_complex', `sine=f=${s.toneHz}:r=48000:d=3,volume='if(lt(mod(t\\,0.5)\\,0.25)\\,0.5\\,0)':eval=frame`, '-ac', '1', '-c:a', 'pcm_s16le', audio]);
  }
  return { video, audio };
}

/**
 * Chromium as a background load. In a real meeting each browser runs on its participant's own
 * machine; here four share 2 cores with the server under test. Run as root, Chromium gives dozens
 * of its threads nice -8 and its audio threads real-time priority, so it took the CPU from the
 * server (measured: the server's main thread waited on the run queue longer than it ran, and the
 * recording fell seconds behind). Even at nice 10 its ~170 threads outweighed the server's one.
 * So it runs under SCHED_IDLE (it gets the CPU the server does not want) and without
 * CAP_SYS_NICE (so it cannot leave that class or raise its threads again).
 *
 * SCHED_IDLE is a weight, not a priority: 3 per thread against 1024 for a normal one, so ~400
 * runnable Chromium threads still add up to more than the server's event loop. Once the server's
 * transport-cc feedback reached Chrome intact its bitrate doubled, four Chromiums took 1.1–1.4
 * cores, the server's main thread waited 0.6 s per second on the run queue and a recording failed
 * (REC_ERR_ENCODER_STALLED). Where the cgroup v1 CPU controller is writable (as root here), all
 * Chromiums therefore also share one CPU cgroup with the minimum weight (cpu.shares 2), which
 * the scheduler counts as one entity however many threads it holds.
 */
const BACKGROUND_CGROUP = 'tessera-background';

/** Remove the background cgroup once its Chromiums have exited (it only goes when empty). */
export function releaseBackgroundCgroup(): void {
  removeCpuGroup(BACKGROUND_CGROUP);
}

/** A launcher script that runs `binary` (Chromium, Firefox) as background load, as above. */
export function backgroundBrowser(dir: string, binary = CHROMIUM): string {
  const wrapper = path.join(dir, `${path.basename(binary)}-background.sh`);
  if (!fs.existsSync(wrapper)) {
    const drop = process.getuid?.() === 0 ? 'setpriv --bounding-set=-sys_nice --inh-caps=-sys_nice ' : '';
    const procs = cpuGroup(BACKGROUND_CGROUP, 2); // null: SCHED_IDLE alone
    const join = procs ? `echo $$ > ${procs}\n` : '';
    fs.writeFileSync(wrapper, `#!/bin/sh\n${join}exec chrt --idle 0 ${drop}${binary} "$@"\n`, { mode: 0o755 });
  }
  return wrapper;
}

/**
 * A launcher script that runs `binary` as a person's browser runs on a shared machine: normal
 * priority (SCHED_OTHER, nice 0, no cgroup), without the privilege to raise its own threads. Run
 * as root, Chromium gives dozens of its threads nice -8, which no user's browser can; measured in
 * e2e-browser-loaded, those took ~0.3 cores at 2.8 times the weight of the server's event loop.
 */
export function normalBrowser(dir: string, binary = CHROMIUM): string {
  if (process.getuid?.() !== 0) return binary;
  const wrapper = path.join(dir, `${path.basename(binary)}-normal.sh`);
  if (!fs.existsSync(wrapper)) fs.writeFileSync(wrapper, `#!/bin/sh\nexec setpriv --bounding-set=-sys_nice --inh-caps=-sys_nice ${binary} "$@"\n`, { mode: 0o755 });
  return wrapper;
}

/**
 * One Chromium per identity (the fake capture files are per process). By default in the
 * background (see above); `normal` runs it as a person's browser would be on a shared machine:
 * normal priority, competing with the server for the same cores (the loaded twin of the tests).
 */
export async function launchIdentity(dir: string, index: number, opts: { normal?: boolean } = {}): Promise<Browser> {
  const f = fakeMediaFiles(dir, index);
  return chromium.launch({
    executablePath: opts.normal ? normalBrowser(dir) : backgroundBrowser(dir),
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      `--use-file-for-fake-video-capture=${f.video}`, `--use-file-for-fake-audio-capture=${f.audio}`,
      '--autoplay-policy=no-user-gesture-required', '--mute-audio',
    ],
  });
}

/** The page's own report of what it sends (`tessera.sendStats()` in meeting.js): Chrome's bandwidth estimate. */
export function sendStats(page: Page): Promise<{ availableOutgoingBitrate: number | null; videoBytesSent: number } | null> {
  return page.evaluate(() => (window as unknown as { tessera: { sendStats: () => Promise<{ availableOutgoingBitrate: number | null; videoBytesSent: number } | null> } }).tessera.sendStats());
}

/** Errors the meeting pages showed or threw (a person would have seen them), for the test to assert on. */
export const pageErrors: string[] = [];

export async function joinMeeting(browser: Browser, baseUrl: string, roomId: string, name: string, query = ''): Promise<Page> {
  const page = await browser.newPage();
  page.on('pageerror', (e) => {
    pageErrors.push(`[${name}] page error: ${e.message}`);
    console.error(`[${name}] page error:`, e.message);
  });
  page.on('console', (m) => {
    // Errors only; a resource refused by the page's Content-Security-Policy is one (so are 404s).
    if (m.type() !== 'error') return;
    pageErrors.push(`[${name}] ${m.text()}`);
    console.error(`[${name}] console:`, m.text());
  });
  await page.goto(`${baseUrl}/r/${roomId}?name=${encodeURIComponent(name)}${query}`);
  await page.waitForSelector('body[data-joined="1"]', { timeout: 20_000 });
  return page;
}

/** Remote tiles whose video is actually playing frames. */
export async function playingRemoteTiles(page: Page): Promise<number> {
  return page.evaluate(() =>
    Array.from(document.querySelectorAll<HTMLElement>('.tile')).filter((t) => !t.dataset.key!.startsWith('local')).filter((t) => {
      const v = t.querySelector('video')!;
      return v.videoWidth > 0 && v.readyState >= 2 && !v.paused;
    }).length,
  );
}

export async function indicatorVisible(page: Page): Promise<boolean> {
  return page.locator('#recording-indicator').isVisible();
}
