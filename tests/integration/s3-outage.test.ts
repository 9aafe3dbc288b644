/**
 * Long recordings against the S3 test endpoint: a genuine multi-minute S3 outage in the middle of a
 * real-time recording (default 180 s; TESSERA_TEST_OUTAGE_S shortens it for local iteration), and
 * the time from stop to a complete object for a short and a long (30 min of media) recording.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { S3Storage } from '../../src/storage/S3Storage';
import type { Mp4Segment } from '../../src/storage/Sink';
import { S3TestServer } from '../helpers/s3server';
import { BUCKET, TEST_CREDENTIALS, feedPaced, makeFmp4, s3TestConfig, split, tempDir } from '../helpers/s3fixtures';

const OUTAGE_S = Number(process.env.TESSERA_TEST_OUTAGE_S ?? 180);
const BEFORE_S = 20;
const AFTER_S = 25;
jest.setTimeout((OUTAGE_S + BEFORE_S + AFTER_S) * 1000 + 120_000);

const WINDOW = 1024 * 1024;

/**
 * md5 of every 1 MiB window of a byte stream fed in pieces. Comparing lists instead of one hash
 * says where two streams differ (and by how much in length) when a byte-identity check fails.
 */
class WindowedMd5 {
  readonly windows: string[] = [];
  bytes = 0;
  #h = createHash('md5');
  #inWindow = 0;
  update(b: Uint8Array): void {
    for (let off = 0; off < b.length; ) {
      const n = Math.min(WINDOW - this.#inWindow, b.length - off);
      this.#h.update(b.subarray(off, off + n));
      off += n;
      this.#inWindow += n;
      this.bytes += n;
      if (this.#inWindow === WINDOW) this.#cut();
    }
  }
  done(): { bytes: number; windows: string[] } {
    if (this.#inWindow > 0) this.#cut();
    return { bytes: this.bytes, windows: this.windows };
  }
  #cut(): void {
    this.windows.push(this.#h.digest('hex'));
    this.#h = createHash('md5');
    this.#inWindow = 0;
  }
}

const windowedFile = (f: string): Promise<{ bytes: number; windows: string[] }> =>
  new Promise((resolve, reject) => {
    const h = new WindowedMd5();
    createReadStream(f).on('data', (d) => h.update(d as Buffer)).on('end', () => resolve(h.done())).on('error', reject);
  });

/** Equal, or where the first difference is (a readable failure for a 600 MB comparison). */
async function expectSameBytes(objectFile: string, expected: { bytes: number; windows: string[] }): Promise<void> {
  const got = await windowedFile(objectFile);
  const first = got.windows.findIndex((w, i) => w !== expected.windows[i]);
  expect({ bytes: got.bytes, firstDifferentMiB: first === -1 && got.windows.length === expected.windows.length ? null : first })
    .toEqual({ bytes: expected.bytes, firstDifferentMiB: null });
}

const expectedOf = (b: Buffer): { bytes: number; windows: string[] } => {
  const h = new WindowedMd5();
  h.update(b);
  return h.done();
};

let server: S3TestServer;
let dir: string;
let s3: S3Storage | null = null;

beforeAll(async () => {
  dir = await tempDir('s3-outage');
});

beforeEach(async () => {
  server = new S3TestServer({ buckets: [BUCKET] });
  await server.start();
});

afterEach(async () => {
  await s3?.close();
  s3 = null;
  await server.close();
  await fsp.rm(path.join(dir, 'spool'), { recursive: true, force: true });
});

afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const manifest = (id: string): object => ({ id, roomId: 'room', status: 'available', startedAt: new Date().toISOString(), layout: 'grid', participants: [] });

test(`a ${OUTAGE_S} s S3 outage mid-recording (stalls, then resets, then 503s) loses nothing`, async () => {
  const total = BEFORE_S + OUTAGE_S + AFTER_S;
  const clip = await makeFmp4(total);
  const segs = split(clip);
  s3 = new S3Storage(s3TestConfig(server.endpoint, path.join(dir, 'spool'), { requestTimeoutMs: 3000, retryMaxMs: 5000 }), { clientConfig: { credentials: TEST_CREDENTIALS } });
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
    server.setOutage(next === 'after' ? null : (next as 'stall' | 'reset' | 'slowdown'));
  });
  const wallS = (Date.now() - t0) / 1000;
  const stop = Date.now();
  const result = await sink.finish(manifest('rec-outage'));
  const finishMs = Date.now() - stop;
  console.log(JSON.stringify({ outageS: OUTAGE_S, wallS, bytes: clip.length, maxSpoolBytes: maxSpool, slowestWriteMs: slowestWrite, finishMs, parts: sink.stats.partsUploaded, failedRequests: server.requests.filter((r) => r.fault).length }));

  expect(ackedDuringOutage).toBe(0);
  expect(maxSpool).toBeGreaterThan(5 * 1024 * 1024); // the outage really backed parts up on disk
  expect(slowestWrite).toBeLessThan(1000); // a hung S3 never held the recording up
  expect(result.bytes).toBe(clip.length);
  expect(finishMs).toBeLessThan(2000); // caught up before the stop
  await expectSameBytes((await server.objectPath(BUCKET, 'rec/room/rec-outage.mp4'))!, expectedOf(clip));
  for (const kind of ['stall', 'reset', 'slowdown']) expect(server.requests.some((r) => r.fault === kind)).toBe(true);
});

test('time from stop to a complete object does not grow with length (40 s vs 30 min of media)', async () => {
  const clip = await makeFmp4(40);
  const segs = split(clip);
  s3 = new S3Storage(s3TestConfig(server.endpoint, path.join(dir, 'spool')), { clientConfig: { credentials: TEST_CREDENTIALS } });

  const record = async (id: string, repeat: number, speed: number): Promise<{ finishMs: number; bytes: number; parts: number }> => {
    // `repeat` copies of the clip's fragments back to back (timestamps repeat; the bytes are what matter here).
    const frags = segs.slice(1);
    const all = [segs[0], ...Array.from({ length: repeat }, (_, k) => frags.map((f) => ({ ...f, endMs: f.endMs + k * 40_000 }))).flat()];
    const hash = new WindowedMd5();
    const sink = s3!.createSink(id, 'room');
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
    await expectSameBytes((await server.objectPath(BUCKET, `rec/room/${id}.mp4`))!, hash.done());
    return { finishMs, bytes: r.bytes, parts: sink.stats.partsUploaded };
  };
  const short = await record('rec-short', 1, 8);
  const long = await record('rec-long', 45, 60);
  console.log(JSON.stringify({ short, long }));
  expect(long.bytes).toBeGreaterThan(600 * 1024 * 1024);
  expect(short.finishMs).toBeLessThan(2000);
  expect(long.finishMs).toBeLessThan(2000);
});
