/**
 * The time from stop to a complete S3 object, for a short and a long (30 min of media) recording,
 * against the S3 test endpoint: it must not grow with length.
 */
import * as path from 'node:path';
import { S3Storage } from '../../src/storage/S3Storage';
import type { Mp4Segment } from '../../src/storage/Sink';
import { s3TestBed } from '../helpers/s3bed';
import { BUCKET, TEST_CREDENTIALS, feedPaced, makeFmp4, s3TestConfig, split } from '../helpers/s3fixtures';
import { WindowedMd5, expectSameBytes } from '../helpers/windowedMd5';

jest.setTimeout(240_000);

const bed = s3TestBed('s3-finish');

const manifest = (id: string): object => ({ id, roomId: 'room', status: 'available', startedAt: new Date().toISOString(), layout: 'grid', participants: [] });

test('time from stop to a complete object does not grow with length (40 s vs 30 min of media)', async () => {
  const clip = await makeFmp4(40);
  const segs = split(clip);
  const s3 = bed.s3 = new S3Storage(s3TestConfig(bed.server.endpoint, path.join(bed.dir, 'spool')), { clientConfig: { credentials: TEST_CREDENTIALS } });

  const record = async (id: string, repeat: number, speed: number): Promise<{ finishMs: number; bytes: number; parts: number }> => {
    // `repeat` copies of the clip's fragments back to back (timestamps repeat; the bytes are what matter here).
    const frags = segs.slice(1);
    const all = [segs[0], ...Array.from({ length: repeat }, (_, k) => frags.map((f) => ({ ...f, endMs: f.endMs + k * 40_000 }))).flat()];
    const hash = new WindowedMd5();
    const sink = s3.createSink(id, 'room');
    await sink.open();
    await feedPaced(all, async (g) => {
      // A live recording makes ~1 MB/s, far below what the uploader sends, so S3 is never more
      // than the part being filled behind. Feeding 30 min of media in ~30 s can outrun the
      // uploader on a loaded machine; hold the feed back then, so stop sees a live backlog.
      while (sink.stats.partsQueued > 1) await new Promise((r) => setTimeout(r, 20));
      hash.update(g.data);
      await sink.write(g);
    }, speed);
    const stop = Date.now();
    const r = await sink.finish(manifest(id));
    const finishMs = Date.now() - stop;
    await expectSameBytes((await bed.server.objectPath(BUCKET, `rec/room/${id}.mp4`))!, hash.done());
    return { finishMs, bytes: r.bytes, parts: sink.stats.partsUploaded };
  };
  const short = await record('rec-short', 1, 8);
  const long = await record('rec-long', 45, 60);
  console.log(JSON.stringify({ short, long }));
  expect(long.bytes).toBeGreaterThan(600 * 1024 * 1024);
  expect(short.finishMs).toBeLessThan(2000);
  expect(long.finishMs).toBeLessThan(2000);
});
