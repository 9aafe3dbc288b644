/**
 * The economy level (x264's economy analysis, a degradation level) starts a new epoch
 * whose stream must continue the recording's one H.264 track: its SPS and PPS must be those of
 * the epochs before it, byte for byte, with both FFmpeg builds the product runs. Checked with
 * real x264 through the argument vector the epochs use (epochEncoderArgs), and the splice through
 * the recording's MP4 muxer.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ECONOMY_PRESETS, economyAllowed, epochEncoderArgs, type EncoderSettings } from '../../compositor/ffmpegArgs';
import { DEFAULTS as defaults } from '../../src/config';
import { resolveFfmpegPath } from '../../src/pipeline/ffmpegPath';
import { Mp4Muxer } from '../../src/storage/Mp4Muxer';
import { AccessUnitSplitter, isKeyframe } from '../../src/media/annexb';
import { DEBIAN_FFMPEG, colourDistance, decodeErrors, frameAt, meanColour } from '../helpers/media';

jest.setTimeout(120_000);

const BUILDS = { 'bundled 4.1': resolveFfmpegPath({ ffmpegPath: null }), 'Debian 5.1': DEBIAN_FFMPEG };

const settings = (preset: string, x264Params: string, economy: boolean): EncoderSettings => ({
  width: 640, height: 360, fps: 30, videoBitrate: 1_000_000, audioBitrate: 64_000,
  preset, tune: null, x264Params, fragmentMs: 1000, keyframeMs: 1000, ...(economy ? { economy: true } : {}),
});

/** Access units of `frames` pictures of `source` encoded as an epoch encodes (its x264 arguments). */
function encode(ffmpeg: string, s: EncoderSettings, source: string, frames: number): Buffer[] {
  const args = epochEncoderArgs([{ w: s.width, h: s.height, fps: s.fps }], '[0:v]null[out]', '[out]', s);
  const x264 = args.slice(args.indexOf('-c:v'), args.lastIndexOf('-f'));
  const out = execFileSync(ffmpeg, ['-v', 'error', '-f', 'lavfi', '-i', `${source}${source.includes("=") ? ":" : "="}s=${s.width}x${s.height}:r=${s.fps}`, '-frames:v', String(frames), ...x264, '-f', 'h264', 'pipe:1'], { maxBuffer: 1 << 28 });
  const sp = new AccessUnitSplitter();
  const aus = sp.push(out);
  const last = sp.end();
  return last ? [...aus, last] : aus;
}

/** The SPS and PPS NAL units of an access unit (Annex B), as hex. */
function parameterSets(au: Buffer): string[] {
  const nals: string[] = [];
  for (const nal of au.toString('hex').split(/0{4,6}1/).filter(Boolean)) {
    const type = parseInt(nal.slice(0, 2), 16) & 0x1f;
    if (type === 7 || type === 8) nals.push(nal);
  }
  return nals;
}

describe.each(Object.entries(BUILDS))('x264 economy analysis (%s)', (_name, ffmpeg) => {
  test.each([...ECONOMY_PRESETS])('%s: the same SPS and PPS with it as without', (preset) => {
    const plain = parameterSets(encode(ffmpeg, settings(preset, defaults.x264Params, false), 'testsrc2', 1)[0]);
    const economy = parameterSets(encode(ffmpeg, settings(preset, defaults.x264Params, true), 'testsrc2', 1)[0]);
    expect(plain).toHaveLength(2);
    expect(economy).toEqual(plain);
  });

  test('the operator options it allows keep the headers too; `fast` would not (so it has no economy level)', () => {
    const own = 'mbtree=1:rc-lookahead=20:bframes=0:aq-mode=2:aq-strength=1.2:psy-rd=1.0,0.1:me=hex:merange=24:partitions=all:trellis=1';
    expect(economyAllowed({ preset: 'superfast', x264Params: own })).toBe(true);
    const ps = (p: string, params: string, e: boolean) => parameterSets(encode(ffmpeg, settings(p, params, e), 'testsrc2', 1)[0]);
    expect(ps('superfast', own, true)).toEqual(ps('superfast', own, false));
    expect(economyAllowed({ preset: 'fast', x264Params: defaults.x264Params })).toBe(false);
    expect(ps('fast', defaults.x264Params, true)).not.toEqual(ps('fast', defaults.x264Params, false));
  });
});

test('economy is off for presets and options it could change the headers of', () => {
  expect(economyAllowed({ preset: defaults.x264Preset, x264Params: defaults.x264Params })).toBe(true);
  expect(economyAllowed({ preset: 'medium', x264Params: '' })).toBe(false);
  expect(economyAllowed({ preset: 'superfast', x264Params: 'weightp=2' })).toBe(false);
  expect(economyAllowed({ preset: 'superfast', x264Params: 'bframes=2' })).toBe(false);
  expect(economyAllowed({ preset: 'veryfast', x264Params: '' })).toBe(true);
});

test('an economy epoch continues a normal one in one MP4 that decodes cleanly, each half showing its picture', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-economy-'));
  try {
    const s = settings(defaults.x264Preset, defaults.x264Params, false);
    const first = encode(DEBIAN_FFMPEG, s, 'color=c=red', 45);
    const second = encode(DEBIAN_FFMPEG, { ...s, economy: true }, 'color=c=blue', 45);
    expect(isKeyframe(second[0])).toBe(true);
    const segments: Buffer[] = [];
    const mux = new Mp4Muxer({ fps: 30, width: s.width, height: s.height, fragmentMs: 1000, onSegment: (seg) => segments.push(seg.data) });
    [...first, ...second].forEach((au, t) => mux.video(t, au, isKeyframe(au)));
    await mux.finalize();
    expect(mux.error).toBeNull();
    const file = path.join(dir, 'economy.mp4');
    fs.writeFileSync(file, Buffer.concat(segments));
    expect(decodeErrors(file)).toBe('');
    const whole = { x: 0, y: 0, w: s.width, h: s.height };
    expect(colourDistance(meanColour(frameAt(file, 1.0), whole), [255, 0, 0])).toBeLessThan(40);
    expect(colourDistance(meanColour(frameAt(file, 2.5), whole), [0, 0, 255])).toBeLessThan(40);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
