/**
 * A long recording against the S3 test endpoint: a genuine multi-minute S3 outage in the middle of a
 * real-time recording (default 180 s; TESSERA_TEST_OUTAGE_S shortens it for local iteration).
 * Minutes of wall clock and almost no CPU: `npm test` runs it in its side lane, beside the other
 * suites (scripts/test.js).
 */
import * as path from 'node:path';
import { S3Storage } from '../../src/storage/S3Storage';
import type { Mp4Segment } from '../../src/storage/Sink';
import { s3TestBed } from '../helpers/s3bed';
import { BUCKET, TEST_CREDENTIALS, feedPaced, makeFmp4, s3TestConfig, split } from '../helpers/s3fixtures';
import { expectSameBytes, expectedOf } from '../helpers/windowedMd5';

const OUTAGE_S = Number(process.env.TESSERA_TEST_OUTAGE_S ?? 180);
const BEFORE_S = 20;
const AFTER_S = 25;
jest.setTimeout((OUTAGE_S + BEFORE_S + AFTER_S) * 1000 + 120_000);

const bed = s3TestBed('s3-outage');

const manifest = (id: string): object => ({ id, roomId: 'room', status: 'available', startedAt: new Date().toISOString(), layout: 'grid', participants: [] });

test(`a ${OUTAGE_S} s S3 outage mid-recording (stalls, then resets, then 503s) loses nothing`, async () => {
  const total = BEFORE_S + OUTAGE_S + AFTER_S;
  const clip = await makeFmp4(total);
  const segs = split(clip);
  const s3 = bed.s3 = new S3Storage(s3TestConfig(bed.server.endpoint, path.join(bed.dir, 'spool'), { requestTimeoutMs: 3000, retryMaxMs: 5000 }), { clientConfig: { credentials: TEST_CREDENTIALS } });
  const sink = s3.createSink('rec-outage', 'room');
  await sink.open();

  const third = (OUTAGE_S * 1000) / 3;
  const start = BEFORE_S * 1000;
  let phase = 'before';
  let slowestWrite = 0;
  let ackedAtOutageStart = -1;
  let ackedDuringOutage = 0;
  let maxSpool = 0;
  const t0 = Date.now();
  await feedPaced(segs, async (g: Mp4Segment) => {
    const t = Date.now();
    await sink.write(g);
    slowestWrite = Math.max(slowestWrite, Date.now() - t);
    maxSpool = Math.max(maxSpool, sink.stats.spoolBytes);
  }, 1, (mediaMs) => {
    const next = mediaMs < start ? 'before' : mediaMs < start + third ? 'stall' : mediaMs < start + 2 * third ? 'reset' : mediaMs < start + OUTAGE_S * 1000 ? 'slowdown' : 'after';
    if (next === phase) return;
    if (phase === 'before') ackedAtOutageStart = sink.stats.partsUploaded;
    if (next === 'after') ackedDuringOutage = sink.stats.partsUploaded - ackedAtOutageStart;
    phase = next;
    bed.server.setOutage(next === 'after' ? null : (next as 'stall' | 'reset' | 'slowdown'));
  });
  const wallS = (Date.now() - t0) / 1000;
  const stop = Date.now();
  const result = await sink.finish(manifest('rec-outage'));
  const finishMs = Date.now() - stop;
  console.log(JSON.stringify({ outageS: OUTAGE_S, wallS, bytes: clip.length, maxSpoolBytes: maxSpool, slowestWriteMs: slowestWrite, finishMs, parts: sink.stats.partsUploaded, failedRequests: bed.server.requests.filter((r) => r.fault).length }));

  expect(ackedDuringOutage).toBe(0);
  expect(maxSpool).toBeGreaterThan(5 * 1024 * 1024); // the outage really backed parts up on disk
  expect(slowestWrite).toBeLessThan(1000); // a hung S3 never held the recording up
  expect(result.bytes).toBe(clip.length);
  expect(finishMs).toBeLessThan(2000); // caught up before the stop
  await expectSameBytes((await bed.server.objectPath(BUCKET, 'rec/room/rec-outage.mp4'))!, expectedOf(clip));
  for (const kind of ['stall', 'reset', 'slowdown']) expect(bed.server.requests.some((r) => r.fault === kind)).toBe(true);
});
