import { execFile, spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULTS, type Config } from '../../src/config';
import { Mp4Splitter } from '../../src/pipeline/Mp4Splitter';
import type { Mp4Segment } from '../../src/storage/Sink';
import { fragmentEndMs, parseInit } from '../../src/storage/s3/fmp4';

export const FFMPEG = '/usr/bin/ffmpeg';
export const FFPROBE = '/usr/bin/ffprobe';
export const BUCKET = 'tessera';
export const TEST_CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

/** An S3 config for tests: the test endpoint, path-style, small part size, short timeouts. */
export function s3TestConfig(endpoint: string, spoolDir: string, over: Partial<Config['s3']> = {}): Config['s3'] {
  return {
    ...DEFAULTS.s3,
    bucket: BUCKET,
    endpoint,
    forcePathStyle: true,
    prefix: 'rec/',
    partSizeBytes: 5 * 1024 * 1024,
    spoolDir,
    requestTimeoutMs: 2000,
    retryBaseMs: 50,
    retryMaxMs: 1000,
    openTimeoutMs: 5000,
    finishTimeoutMs: 10_000,
    checkpointMs: 1000,
    ...over,
  };
}

/**
 * A fragmented MP4 as the encoder makes it (H.264 + AAC, empty_moov, a fragment per 2 s GOP),
 * at a constant bitrate so tests know how many parts it makes.
 */
export function makeFmp4(seconds: number, opts: { size?: string; bitrate?: string } = {}): Promise<Buffer> {
  const br = opts.bitrate ?? '3M';
  const args = [
    '-v', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${opts.size ?? '640x360'}:rate=30`, '-f', 'lavfi', '-i', 'sine=frequency=440',
    '-t', String(seconds), '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', br, '-minrate', br, '-maxrate', br, '-bufsize', '1M',
    '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-g', '60', '-f', 'mp4', 'pipe:1',
  ];
  return new Promise((resolve, reject) => {
    execFile(FFMPEG, args, { encoding: 'buffer', maxBuffer: 1 << 30, timeout: 120_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
}

/** Cut an MP4 into segments with the pipeline's splitter; each gets its media end time (ms). */
export function split(mp4: Buffer, chunk = 64 * 1024): Array<Mp4Segment & { endMs: number }> {
  const s = new Mp4Splitter();
  const segs: Mp4Segment[] = [];
  for (let i = 0; i < mp4.length; i += chunk) segs.push(...s.push(mp4.subarray(i, i + chunk)));
  segs.push(...s.end());
  const init = parseInit(segs[0].data)!;
  // The trailer (mfra) comes out as a last segment without a moof: it keeps the previous end time.
  let last = 0;
  return segs.map((g) => ({ ...g, endMs: g.kind === 'init' ? 0 : (last = fragmentEndMs(g.data, init) ?? last) }));
}

/** Feed segments to `write`, paced so that media time runs `speed` times faster than wall time. */
export async function feedPaced(
  segs: Array<Mp4Segment & { endMs: number }>,
  write: (s: Mp4Segment) => Promise<void>,
  speed: number,
  onProgress?: (mediaMs: number) => void | Promise<void>,
): Promise<void> {
  const t0 = Date.now();
  for (const g of segs) {
    const due = t0 + g.endMs / speed;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await write({ kind: g.kind, data: g.data, index: g.index });
    await onProgress?.(g.endMs);
  }
}

export async function tempDir(tag: string): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), `tessera-${tag}-`));
}

/** ffprobe: container duration and any decode errors of a whole decode pass. */
export async function probe(file: string): Promise<{ durationS: number; errors: string }> {
  const durationS = await new Promise<number>((resolve, reject) => {
    execFile(FFPROBE, ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', file], (err, out) => (err ? reject(err) : resolve(Number(String(out).trim()))));
  });
  const errors = await new Promise<string>((resolve) => {
    const p = spawn(FFMPEG, ['-v', 'error', '-xerror', '-i', file, '-f', 'null', '-'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (code) => resolve(code === 0 ? err : `${err}\nexit ${code}`));
  });
  return { durationS, errors };
}
