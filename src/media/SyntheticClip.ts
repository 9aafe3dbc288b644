import { FfmpegProcess } from '../pipeline/FfmpegProcess';
import { parseIvf } from './ivf';
import { parseOggPackets } from './ogg';
import type { VideoCodec } from './types';
import type { Logger } from '../logger';

/**
 * Participant i (from 1) of every synthetic tool: the colours and tones docs/testing.md lists.
 * Colours repeat after six (a participant's cell tells them apart); tones do not, since two
 * people beeping the same frequency can cancel in the mix whenever their beeps overlap in
 * antiphase (day 26: participants 3 and 9 left under 2 % of 880 Hz in 1.5 s of a CI run's mix,
 * their joins apart by the wrong fraction of a beep). Each further six is shifted by a
 * fraction of the 220 Hz spacing, so no two tones are closer than 55 Hz and none is within
 * 110 Hz of 1760 Hz, the tone the tests check is absent.
 */
export const PARTICIPANT_STYLES = [
  { colour: 'red', hex: '#E02020', toneHz: 440 },
  { colour: 'green', hex: '#20C040', toneHz: 660 },
  { colour: 'blue', hex: '#2040E0', toneHz: 880 },
  { colour: 'yellow', hex: '#E0E020', toneHz: 1100 },
  { colour: 'magenta', hex: '#D020D0', toneHz: 1320 },
  { colour: 'cyan', hex: '#20D0D0', toneHz: 1540 },
] as const;

/** Hz added to the tones of participants 7–12, 13–18 and 19–24 (then 25+ start again). */
const TONE_SHIFTS = [0, 110, 55, -55];

export function participantStyle(i: number): { colour: string; hex: string; toneHz: number; rgb: [number, number, number] } {
  const n = PARTICIPANT_STYLES.length;
  const s = PARTICIPANT_STYLES[(i - 1) % n];
  const rgb = parseInt(s.hex.slice(1), 16);
  const toneHz = s.toneHz + TONE_SHIFTS[Math.floor((i - 1) / n) % TONE_SHIFTS.length];
  return { ...s, toneHz, rgb: [(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255] };
}

/** The busy grey patch moves in the top band of the picture, so the centre is always the colour. */
export const PATCH = { w: 128, h: 72, y: 12, xMin: 12, xRange: 360 };
/**
 * A white square in the top-right corner, lit exactly while the tone beeps (250 ms of every
 * 500 ms): the sync marker that lets a test or the benchmark measure lip sync in the output.
 */
export const SYNC_MARK = { x: 572, y: 12, w: 56, h: 56 };

export interface SyntheticClip {
  codec: VideoCodec;
  width: number;
  height: number;
  fps: number;
  /** Whole encoded frames, the first a keyframe; loop from the start. */
  videoFrames: Buffer[];
  /** 20 ms Opus packets. */
  opusPackets: Buffer[];
}

export interface ClipOptions {
  index: number;
  codec?: VideoCodec;
  seconds?: number;
  width?: number;
  height?: number;
  fps?: number;
}

async function runToBuffer(ffmpegPath: string, args: string[], logger: Logger): Promise<Buffer> {
  const p = new FfmpegProcess({ ffmpegPath, args, stopBy: 'eof', logger });
  const chunks: Buffer[] = [];
  p.stdout.on('data', (c: Buffer) => chunks.push(c));
  p.stdin.end();
  const exit = await p.exited;
  if (exit.code !== 0) throw new Error(`synthetic clip generation failed (${exit.kind}, code ${exit.code}): ${exit.stderr}`);
  return Buffer.concat(chunks);
}

/** Splits an Annex-B H.264 stream into access units at its access unit delimiters (type 9). */
export function splitAnnexBAccessUnits(buf: Buffer): Buffer[] {
  const starts: number[] = [];
  for (let i = 0; i + 4 < buf.length; i++) {
    if (buf[i] === 0 && buf[i + 1] === 0 && buf[i + 2] === 1 && (buf[i + 3] & 0x1f) === 9) {
      starts.push(i > 0 && buf[i - 1] === 0 ? i - 1 : i);
    }
  }
  return starts.map((s, k) => Buffer.from(buf.subarray(s, k + 1 < starts.length ? starts[k + 1] : buf.length)));
}

/**
 * Encodes participant `index`'s loop: solid colour + moving grey noise patch, VP8 (IVF) or H.264
 * (Annex-B with AUDs), one keyframe at the start; and its tone beeping 250 ms on / 250 ms off as
 * 20 ms Opus packets. The loop length is whole seconds, so beeps line up across the loop.
 */
export async function makeSyntheticClip(ffmpegPath: string, opts: ClipOptions, logger: Logger): Promise<SyntheticClip> {
  const { index } = opts;
  const codec = opts.codec ?? 'vp8';
  const seconds = opts.seconds ?? 2;
  const width = opts.width ?? 640;
  const height = opts.height ?? 360;
  const fps = opts.fps ?? 30;
  const style = participantStyle(index);
  const bg = `0x${style.hex.slice(1)}`;
  const gop = fps * seconds;
  const video =
    `color=c=${bg}:s=${width}x${height}:r=${fps}:d=${seconds}[bg];` +
    `color=c=gray:s=${PATCH.w}x${PATCH.h}:r=${fps}:d=${seconds},noise=alls=80:allf=t+u[patch];` +
    `[bg][patch]overlay=x='${PATCH.xMin}+mod(t*${Math.round(PATCH.xRange / seconds)}\\,${PATCH.xRange})':y=${PATCH.y}:shortest=1,` +
    `drawbox=x=${Math.round((SYNC_MARK.x * width) / 640)}:y=${Math.round((SYNC_MARK.y * height) / 360)}:w=${Math.round((SYNC_MARK.w * width) / 640)}:h=${Math.round((SYNC_MARK.h * height) / 360)}:color=white:t=fill:enable='lt(mod(t\\,0.5)\\,0.25)',format=yuv420p`;
  const venc =
    codec === 'vp8'
      ? ['-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '600k', '-g', String(gop), '-keyint_min', String(gop), '-auto-alt-ref', '0', '-lag-in-frames', '0', '-f', 'ivf']
      : ['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-profile:v', 'baseline', '-b:v', '600k', '-g', String(gop), '-keyint_min', String(gop), '-bsf:v', 'h264_metadata=aud=insert', '-f', 'h264'];
  const v = await runToBuffer(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-filter_complex', video, ...venc, 'pipe:1'], logger);
  const audio = `sine=f=${style.toneHz}:r=48000:d=${seconds},volume='if(lt(mod(t\\,0.5)\\,0.25)\\,1\\,0)':eval=frame`;
  const a = await runToBuffer(
    ffmpegPath,
    ['-hide_banner', '-loglevel', 'error', '-filter_complex', audio, '-ac', '1', '-c:a', 'libopus', '-b:a', '48k', '-frame_duration', '20', '-application', 'audio', '-f', 'ogg', 'pipe:1'],
    logger,
  );
  const videoFrames = codec === 'vp8' ? parseIvf(v).frames : splitAnnexBAccessUnits(v);
  const opusPackets = parseOggPackets(a)
    .filter((p) => !/^Opus(Head|Tags)/.test(p.toString("latin1", 0, 8)))
    .slice(0, seconds * 50);
  if (videoFrames.length < gop - 1) throw new Error(`synthetic clip: ${videoFrames.length} video frames, expected ${gop}`);
  return { codec, width, height, fps, videoFrames, opusPackets };
}
