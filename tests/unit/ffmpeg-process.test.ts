/**
 * FfmpegProcess's kill ladder with a real FFmpeg: a child whose input has ended but which is still
 * putting out what it holds is not interrupted while it does (`working`), and one that goes quiet
 * still is. An epoch ended behind — a superseded layout's, short of CPU — owes seconds of pictures;
 * interrupting it after a fixed grace lost the ones it had not encoded yet.
 */
import { FfmpegProcess } from '../../src/pipeline/FfmpegProcess';
import { logger } from '../../src/logger';

jest.setTimeout(30_000);

const FFMPEG = process.env.FFMPEG_PATH ?? '/usr/bin/ffmpeg';
const SIDE = 16;
const FRAMES = 60;

/**
 * 60 grey frames at 30 fps written at once, the input ended, and the `realtime` filter letting
 * them out at their pace (2 s), with a grace of 0.6 s: how many frames came out, and whether the
 * extension was asked for at each read.
 */
async function run(keepWorking: boolean): Promise<{ frames: number; code: number | null }> {
  let bytes = 0;
  const proc = new FfmpegProcess({
    ffmpegPath: FFMPEG,
    args: ['-v', 'error', '-f', 'rawvideo', '-pix_fmt', 'gray', '-s', `${SIDE}x${SIDE}`, '-r', '30', '-i', 'pipe:0', '-vf', 'realtime', '-f', 'rawvideo', '-pix_fmt', 'gray', 'pipe:1'],
    stopBy: 'eof',
    gracefulMs: 600,
    logger,
  });
  proc.stdout.on('data', (c: Buffer) => {
    bytes += c.length;
    if (keepWorking) proc.working();
  });
  proc.stdin.write(Buffer.alloc(SIDE * SIDE * FRAMES, 128));
  const exit = await proc.stop();
  return { frames: Math.floor(bytes / (SIDE * SIDE)), code: exit.code };
}

test('an ended child still putting out frames gets its graceful time again with each; one that does not is interrupted', async () => {
  const working = await run(true);
  expect(working).toEqual({ frames: FRAMES, code: 0 });
  const fixed = await run(false);
  // Interrupted after 0.6 s of the 2 s: most frames never came out.
  expect(fixed.frames).toBeLessThan(FRAMES / 2);
});
