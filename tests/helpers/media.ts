/**
 * Test-side media analysis with real FFmpeg/ffprobe: probe an MP4, sample the colour of a
 * rectangle at a time, find tones in the audio, count decode errors. Nothing here is mocked:
 * every answer comes from decoding the file a user would get.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import type { Rect } from '../../compositor/layout';

export const FFPROBE = process.env.FFPROBE_PATH ?? '/usr/bin/ffprobe';
/** Analysis always uses Debian's FFmpeg (what decodes is what we check), whatever recorded. */
export const ANALYSIS_FFMPEG = process.env.ANALYSIS_FFMPEG ?? '/usr/bin/ffmpeg';
export const BUNDLED_FFMPEG: string = require('@ffmpeg-installer/ffmpeg').path;
export const DEBIAN_FFMPEG = '/usr/bin/ffmpeg';

export interface Probe {
  videoFrames: number;
  /** The video's nominal frame rate (its time base: one tick per frame). */
  frameRate: number;
  videoDuration: number;
  audioDuration: number;
  formatDuration: number;
  width: number;
  height: number;
  pixFmt: string;
  videoCodec: string;
  audioCodec: string;
}

export function probe(file: string): Probe {
  const out = execFileSync(FFPROBE, ['-v', 'error', '-count_frames', '-show_entries', 'stream=codec_type,codec_name,nb_read_frames,duration,width,height,pix_fmt,r_frame_rate:format=duration', '-of', 'json', file], { encoding: 'utf8' });
  const j = JSON.parse(out) as { streams: Record<string, string | number>[]; format: { duration: string } };
  const v = j.streams.find((s) => s.codec_type === 'video')!;
  const a = j.streams.find((s) => s.codec_type === 'audio');
  return {
    videoFrames: Number(v.nb_read_frames),
    frameRate: String(v.r_frame_rate).split('/').map(Number).reduce((n, d) => n / d),
    videoDuration: Number(v.duration),
    audioDuration: Number(a?.duration ?? 0),
    formatDuration: Number(j.format.duration),
    width: Number(v.width),
    height: Number(v.height),
    pixFmt: String(v.pix_fmt),
    videoCodec: String(v.codec_name),
    audioCodec: String(a?.codec_name ?? ''),
  };
}

/** Every error FFmpeg reports while decoding the whole file (empty = clean). */
export function decodeErrors(file: string): string {
  const r = spawnSync(ANALYSIS_FFMPEG, ['-v', 'error', '-xerror', '-i', file, '-f', 'null', '-'], { encoding: 'utf8' });
  return (r.stderr ?? '').trim() + (r.status === 0 ? '' : ` (exit ${r.status})`);
}

/** One decoded frame at `t` seconds as packed RGB. */
export function frameAt(file: string, t: number): { w: number; h: number; rgb: Buffer } {
  const p = probe(file);
  const rgb = execFileSync(ANALYSIS_FFMPEG, ['-v', 'error', '-ss', t.toFixed(3), '-i', file, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], { maxBuffer: 64 << 20 });
  return { w: p.width, h: p.height, rgb };
}

/**
 * Decodes all frames once (small RGB copies) so many samples cost one decode: one frame per
 * tick of the nominal frame rate, as a player shows them (a picture held for several ticks —
 * shed for lack of CPU, or a freeze — appears that many times), so frame k is at k / fps.
 */
export function allFrames(file: string, scale = 4): { w: number; h: number; fps: number; frames: Buffer[] } {
  const p = probe(file);
  const w = p.width / scale, h = p.height / scale;
  const raw = execFileSync(ANALYSIS_FFMPEG, ['-v', 'error', '-i', file, '-vf', `fps=${p.frameRate},scale=${w}:${h}:flags=area`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], { maxBuffer: 1 << 30 });
  const size = w * h * 3;
  const frames: Buffer[] = [];
  for (let o = 0; o + size <= raw.length; o += size) frames.push(raw.subarray(o, o + size));
  return { w, h, fps: p.frameRate, frames };
}

/** Mean RGB of the centre half of a rectangle (away from labels, margins and the moving patch). */
export function meanColour(img: { w: number; h: number; rgb: Buffer }, r: Rect, scale = 1): [number, number, number] {
  const x0 = Math.floor((r.x + r.w * 0.3) / scale), x1 = Math.ceil((r.x + r.w * 0.7) / scale);
  const y0 = Math.floor((r.y + r.h * 0.4) / scale), y1 = Math.ceil((r.y + r.h * 0.7) / scale);
  let n = 0;
  const sum = [0, 0, 0];
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const o = (y * img.w + x) * 3;
      sum[0] += img.rgb[o];
      sum[1] += img.rgb[o + 1];
      sum[2] += img.rgb[o + 2];
      n++;
    }
  }
  return [sum[0] / n, sum[1] / n, sum[2] / n];
}

/** Share of a frame's pixels (RGB) within `tol` of a colour. */
export function colourShare(rgb: Buffer, hex: string, tol = 60): number {
  const c = hexRgb(hex);
  let n = 0;
  for (let o = 0; o < rgb.length; o += 3) if (colourDistance([rgb[o], rgb[o + 1], rgb[o + 2]], c) < tol) n++;
  return n / (rgb.length / 3);
}

export function colourDistance(a: readonly number[], b: readonly number[]): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

export function hexRgb(hex: string): [number, number, number] {
  const n = parseInt(hex.replace('#', ''), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** The audio as 48 kHz mono float samples. */
export function audioSamples(file: string, from = 0, seconds?: number): Float32Array {
  const args = ['-v', 'error', '-ss', String(from), '-i', file, ...(seconds ? ['-t', String(seconds)] : []), '-vn', '-ac', '1', '-ar', '48000', '-f', 'f32le', 'pipe:1'];
  const raw = execFileSync(ANALYSIS_FFMPEG, args, { maxBuffer: 1 << 30 });
  return new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
}

/**
 * Share of the signal's energy at `hz` (0..1): Goertzel power summed over 100 ms windows (10 Hz
 * resolution; the contract's tones are 220 Hz apart), so it does not depend on the tone's phase
 * staying continuous over the whole span (a dropped or concealed packet shifts it).
 */
export function toneShare(samples: Float32Array, hz: number, rate = 48000): number {
  const win = Math.round(rate / 10);
  let power = 0, energy = 0;
  for (let o = 0; o < samples.length; o += win) {
    const w = samples.subarray(o, Math.min(samples.length, o + win));
    const k = 2 * Math.cos((2 * Math.PI * hz) / rate);
    let s1 = 0, s2 = 0, e = 0;
    for (const x of w) {
      const v = x + k * s1 - s2;
      s2 = s1;
      s1 = v;
      e += x * x;
    }
    power += (2 * (s1 * s1 + s2 * s2 - k * s1 * s2)) / w.length;
    energy += e;
  }
  return energy > 0 ? power / energy : 0;
}

/** Peak absolute sample. */
export function peak(samples: Float32Array): number {
  let p = 0;
  for (const x of samples) p = Math.max(p, Math.abs(x));
  return p;
}

/**
 * Lip sync of one participant in the output: the sync marker (a white square lit while the tone
 * beeps) against the tone itself. Returns the median of (audio onset − video onset) in ms over
 * every beep found, and how many were paired. Positive = audio late.
 */
export function avOffsetMs(file: string, marker: Rect | Rect[], toneHz: number, from = 0.5, to = Infinity): { medianMs: number; pairs: number } {
  const scale = 4;
  const v = allFrames(file, scale);
  // Several places: where the marker is at each size its tile may have (a recording short of
  // CPU shows tiles at half size from some epoch on); lit in any of them is lit.
  const markers = Array.isArray(marker) ? marker : [marker];
  const on = v.frames.map((f) => markers.some((m) => colourDistance(meanColourFull({ w: v.w, h: v.h, rgb: f }, m, scale), [255, 255, 255]) < 80));
  const videoEdges: number[] = [];
  for (let k = 1; k < on.length; k++) if (on[k] && !on[k - 1] && k / v.fps >= from && k / v.fps < to) videoEdges.push((k * 1000) / v.fps);
  return medianNearestOffset(videoEdges, beepEdgesMs(audioSamples(file), toneHz), 240);
}

/**
 * Rising edges (ms) of a tone in 48 kHz audio: where the synthetic participants' beeps start.
 * The threshold is a quarter of a beep's level, taken as the 90th percentile of the tone's power
 * rather than its maximum: one loud moment (a click, two sources briefly summed) would otherwise
 * raise the bar above every ordinary beep and leave none to pair. A tone that beeps at all is on
 * far more than a tenth of the time, so that percentile lies on a beep's plateau.
 */
export function beepEdgesMs(pcm: Float32Array, toneHz: number): number[] {
  const hop = 240; // 5 ms
  const power: number[] = [];
  for (let o = 0; o + hop * 2 <= pcm.length; o += hop) power.push(toneShare(pcm.subarray(o, o + hop * 2), toneHz) * energy(pcm.subarray(o, o + hop * 2)));
  const sorted = [...power].sort((x, y) => x - y);
  const level = sorted[Math.floor(sorted.length * 0.9)] ?? 0;
  const edges: number[] = [];
  for (let k = 1; k < power.length; k++) if (power[k] > level * 0.25 && power[k - 1] <= level * 0.25) edges.push((k * hop * 1000) / 48000);
  return edges;
}

/** Median over `ref` of (the nearest `other` within `within` ms − ref), and how many were paired. */
export function medianNearestOffset(ref: number[], other: number[], within: number): { medianMs: number; pairs: number } {
  const offsets: number[] = [];
  for (const r of ref) {
    let best: number | null = null;
    for (const o of other) if (Math.abs(o - r) <= within && (best === null || Math.abs(o - r) < Math.abs(best))) best = o - r;
    if (best !== null) offsets.push(best);
  }
  offsets.sort((a, b) => a - b);
  return { medianMs: offsets.length ? offsets[offsets.length >> 1] : NaN, pairs: offsets.length };
}

function energy(x: Float32Array): number {
  let e = 0;
  for (const s of x) e += s * s;
  return e;
}

/** Mean RGB of a whole rectangle (not just its centre), for small markers. */
export function meanColourFull(img: { w: number; h: number; rgb: Buffer }, r: Rect, scale = 1): [number, number, number] {
  const x0 = Math.ceil(r.x / scale) + 1, x1 = Math.floor((r.x + r.w) / scale) - 1;
  const y0 = Math.ceil(r.y / scale) + 1, y1 = Math.floor((r.y + r.h) / scale) - 1;
  let n = 0;
  const sum = [0, 0, 0];
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
    const o = (y * img.w + x) * 3;
    sum[0] += img.rgb[o]; sum[1] += img.rgb[o + 1]; sum[2] += img.rgb[o + 2]; n++;
  }
  return [sum[0] / n, sum[1] / n, sum[2] / n];
}

/** Where a tile's sync marker lands in the output, from the tile's video rectangle. */
export function markerRect(video: Rect): Rect {
  const m = { x: 572, y: 12, w: 56, h: 56 }; // SYNC_MARK in source (640×360) pixels
  return { x: video.x + (m.x * video.w) / 640, y: video.y + (m.y * video.h) / 360, w: (m.w * video.w) / 640, h: (m.h * video.h) / 360 };
}

/** Distinct pictures in each whole second of a file (a picture equal to the one before is not new). */
export function distinctPerSecond(file: string): number[] {
  const { frames, fps } = allFrames(file, 8);
  const perSecond: number[] = [];
  for (let s = 0; (s + 1) * fps <= frames.length; s++) {
    let distinct = 1;
    for (let k = Math.round(s * fps) + 1; k < Math.round((s + 1) * fps); k++) if (!frames[k].equals(frames[k - 1])) distinct++;
    perSecond.push(distinct);
  }
  return perSecond;
}
