/**
 * Pooled raw frames (FramePool) and reading a child's output into one reused buffer
 * (FfmpegProcess `stdoutInto`), with a real FFmpeg putting out raw video.
 */
import { FramePool, releaseFrame, retainFrame } from '../../src/pipeline/FramePool';
import { FfmpegProcess } from '../../src/pipeline/FfmpegProcess';
import { RawFrameReader } from '../../src/pipeline/RawFrameReader';
import { logger } from '../../src/logger';

jest.setTimeout(30_000);

describe('FramePool', () => {
  test('a frame returns to its pool only when its last holder lets go', () => {
    const pool = new FramePool(16, 2);
    const a = pool.take();
    retainFrame(a); // an encoder write in flight
    releaseFrame(a); // the decoder's queue let go
    expect(pool.freeCount).toBe(0); // still being written
    releaseFrame(a); // the write completed
    expect(pool.freeCount).toBe(1);
    expect(pool.take()).toBe(a); // reused, not allocated
    expect(pool.allocated).toBe(1);
  });

  test('buffers from elsewhere pass through; at most maxFree are kept', () => {
    const pool = new FramePool(16, 2);
    const card = Buffer.alloc(16);
    retainFrame(card);
    releaseFrame(card);
    releaseFrame(card);
    expect(pool.freeCount).toBe(0);
    const frames = [pool.take(), pool.take(), pool.take()];
    for (const f of frames) releaseFrame(f);
    expect(pool.freeCount).toBe(2);
    releaseFrame(frames[0]); // a second release of a returned frame changes nothing
    expect(pool.freeCount).toBe(2);
  });
});

test('raw video read into one reused buffer arrives whole and in order, and the exit is reported', async () => {
  const w = 64;
  const h = 36;
  const frameBytes = (w * h * 3) / 2;
  const reader = new RawFrameReader(frameBytes);
  const buffer = Buffer.allocUnsafe(8192); // smaller than a frame: frames span reads
  const lumas: number[] = [];
  let reads = 0;
  // 30 frames whose luma steps 0, 8, 16, ...: each must come out intact.
  const proc = new FfmpegProcess({
    ffmpegPath: process.env.FFMPEG_PATH ?? '/usr/bin/ffmpeg',
    args: ['-v', 'error', '-f', 'lavfi', '-i', `color=black:s=${w}x${h}:r=30:d=1`, '-vf', 'geq=lum=8*N:cb=128:cr=128', '-pix_fmt', 'yuv420p', '-f', 'rawvideo', 'pipe:1'],
    stopBy: 'eof',
    logger,
    stdoutInto: {
      buffer,
      onChunk: (chunk) => {
        reads++;
        expect(chunk.buffer).toBe(buffer.buffer);
        reader.push(chunk, (frame) => {
          lumas.push(frame[0]);
          releaseFrame(frame);
        });
      },
    },
  });
  proc.stdin.end();
  const exit = await proc.exited;
  expect(exit.kind).toBe('died'); // it ended by itself, not asked to stop: exit code 0
  expect(exit.code).toBe(0);
  expect(lumas.length).toBe(30);
  lumas.forEach((y, i) => expect(Math.abs(y - Math.min(255, 8 * i))).toBeLessThanOrEqual(2));
  expect(reads).toBeGreaterThan(1);
  expect(reader.pool.allocated).toBeLessThanOrEqual(3); // frames were reused
});
