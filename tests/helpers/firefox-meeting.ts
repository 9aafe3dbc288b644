/**
 * Firefox in a meeting: Debian's firefox-esr driven over WebDriver BiDi (puppeteer-core, which
 * downloads no browser), with Firefox's own fake camera and microphone. Its fake camera is a
 * full-frame colour that cycles through the hues (so a frozen picture shows as one colour held)
 * with a counter bar at the top; its fake microphone is a continuous sine at `toneHz`.
 *
 * Also the in-page probes both drivers share (playwright's and puppeteer's `evaluate` take the
 * same plain function): which remote tiles play and which tones each remote tile carries.
 */
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { backgroundBrowser, pageErrors } from './browser-meeting';

export const FIREFOX = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';

export interface FirefoxOptions {
  /** Frequency of the fake microphone's sine. */
  toneHz: number;
  /**
   * false (Firefox's default): host candidates carry random mDNS `.local` names instead of
   * addresses. true: `media.peerconnection.ice.obfuscate_host_addresses` off, addresses exposed.
   */
  exposeHostAddresses: boolean;
}

export async function launchFirefox(dir: string, opts: FirefoxOptions): Promise<Browser> {
  const prefs: Record<string, unknown> = {
    'media.navigator.streams.fake': true,
    'media.navigator.permission.disabled': true,
    'media.navigator.audio.fake_frequency': opts.toneHz,
    'media.autoplay.default': 0,
    'media.autoplay.block-webaudio': false,
    // No sound card here: without a (mock) audio backend an AudioContext never leaves
    // "suspended", so the page's remote audio could not be analysed.
    'media.cubeb.force_mock_context': true,
  };
  if (opts.exposeHostAddresses) prefs['media.peerconnection.ice.obfuscate_host_addresses'] = false;
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: backgroundBrowser(dir, FIREFOX),
    headless: true,
    extraPrefsFirefox: prefs,
  });
}

export async function joinFirefoxMeeting(browser: Browser, baseUrl: string, roomId: string, name: string): Promise<Page> {
  const page = await browser.newPage();
  page.on('pageerror', (e) => {
    const message = e instanceof Error ? e.message : String(e);
    pageErrors.push(`[${name}] page error: ${message}`);
    console.error(`[${name}] page error:`, message);
  });
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    pageErrors.push(`[${name}] ${m.text()}`);
    // text() shows an object argument as "JSHandle@object": print the values too
    void Promise.all(m.args().map((a) => a.jsonValue().catch(() => '?'))).then((values) => console.error(`[${name}] console:`, JSON.stringify(values)));
  });
  // Generous: Firefox runs as background load, and on a busy 2-core machine its first page load
  // took over 30 s once.
  await page.goto(`${baseUrl}/r/${roomId}?name=${encodeURIComponent(name)}`, { timeout: 60_000 });
  await page.waitForSelector('body[data-joined="1"]', { timeout: 45_000 });
  return page;
}

/** The host candidates this browser would offer now (a fresh connection, same settings as the page's). */
export function hostCandidateAddresses(): Promise<string[]> {
  return (async () => {
    const pc = new RTCPeerConnection();
    pc.createDataChannel('probe');
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise<void>((resolve) => {
      const done = () => pc.iceGatheringState === 'complete' && resolve();
      pc.addEventListener('icegatheringstatechange', done);
      setTimeout(resolve, 3000);
    });
    const out = pc.localDescription!.sdp.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:') && / typ host/.test(l)).map((l) => l.split(' ')[4]);
    pc.close();
    return out;
  })();
}

/** Remote tiles of the page, by label, with whether their video plays and its size. */
export function remoteVideos(): Array<{ label: string; playing: boolean; width: number; height: number }> {
  return Array.from(document.querySelectorAll<HTMLElement>('.tile'))
    .filter((t) => !t.dataset.key!.startsWith('local'))
    .map((t) => {
      const v = t.querySelector('video')!;
      return { label: t.querySelector('.label')!.textContent ?? '', playing: v.videoWidth > 0 && v.readyState >= 2 && !v.paused, width: v.videoWidth, height: v.videoHeight };
    });
}

/**
 * What the page hears from each remote tile: the level (dB) at each of `tones`, the loudest over
 * `ms` of 100 ms snapshots (a beeping tone is on half the time). Runs in the page.
 */
export function heardTones(args: { tones: number[]; ms: number }): Promise<Record<string, Record<number, number>>> {
  return (async () => {
    const ctx = new AudioContext();
    await Promise.race([ctx.resume(), new Promise((r) => setTimeout(r, 2000))]);
    const tiles = Array.from(document.querySelectorAll<HTMLElement>('.tile')).filter((t) => !t.dataset.key!.startsWith('local'));
    const probes = tiles.flatMap((t) => {
      const stream = t.querySelector('video')!.srcObject as MediaStream | null;
      if (!stream || stream.getAudioTracks().length === 0) return [];
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 8192;
      ctx.createMediaStreamSource(new MediaStream(stream.getAudioTracks())).connect(analyser);
      return [{ label: t.querySelector('.label')!.textContent ?? '', analyser, best: {} as Record<number, number> }];
    });
    for (let t = 0; t < args.ms; t += 100) {
      await new Promise((r) => setTimeout(r, 100));
      for (const p of probes) {
        const bins = new Float32Array(p.analyser.frequencyBinCount);
        p.analyser.getFloatFrequencyData(bins);
        for (const hz of args.tones) {
          const k = Math.round((hz * p.analyser.fftSize) / ctx.sampleRate);
          const db = Math.max(bins[k - 1], bins[k], bins[k + 1]);
          p.best[hz] = Math.max(p.best[hz] ?? -Infinity, db);
        }
      }
    }
    await ctx.close();
    return Object.fromEntries(probes.map((p) => [p.label, p.best]));
  })();
}
