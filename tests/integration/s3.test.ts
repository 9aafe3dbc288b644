/**
 * S3 storage over real HTTP (tests/helpers/s3server.ts) with the real SDK client, fed with a real
 * fragmented MP4 from FFmpeg cut by the pipeline's Mp4Splitter.
 */
import { createHash } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { createReadStream, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TesseraError } from '../../src/errors';
import { S3Storage } from '../../src/storage/S3Storage';
import { FINAL_FILE, STATE_FILE, type SpoolState } from '../../src/storage/s3/S3Sink';
import { S3TestServer } from '../helpers/s3server';
import { BUCKET, TEST_CREDENTIALS, feedPaced, makeFmp4, s3TestConfig, split, tempDir } from '../helpers/s3fixtures';

jest.setTimeout(120_000);

const MiB = 1024 * 1024;
const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');
const md5File = (f: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const h = createHash('md5');
    createReadStream(f).on('data', (d) => h.update(d)).on('end', () => resolve(h.digest('hex'))).on('error', reject);
  });

let server: S3TestServer;
let dir: string;
let clip40: Buffer;
const opened: S3Storage[] = [];

function storage(over: Parameters<typeof s3TestConfig>[2] = {}): S3Storage {
  const s = new S3Storage(s3TestConfig(server.endpoint, path.join(dir, 'spool'), over), { clientConfig: { credentials: TEST_CREDENTIALS } });
  opened.push(s);
  return s;
}

beforeAll(async () => {
  dir = await tempDir('s3');
  clip40 = await makeFmp4(40); // ≈ 15 MB at 3 Mbit/s: two 5 MiB parts and a last one
});

beforeEach(async () => {
  server = new S3TestServer({ buckets: [BUCKET] });
  await server.start();
});

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  await server.close();
  await fsp.rm(path.join(dir, 'spool'), { recursive: true, force: true });
});

afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const manifestOf = (id: string, roomId: string): Record<string, unknown> => ({
  id, roomId, status: 'available', startedAt: '2026-11-24T10:00:00.000Z', endedAt: '2026-11-24T10:00:40.000Z',
  durationMs: 40_000, layout: 'grid', participants: [{ id: 'p1', name: 'Alice', joinedAt: '2026-11-24T10:00:00.000Z' }],
});

test('parts go up during the recording, the object is complete within 2 s of stop and byte-identical, SSE/tags/metadata arrive', async () => {
  const s = storage({ sse: 'aws:kms', kmsKeyId: 'arn:aws:kms:eu-west-1:111122223333:key/test', retentionClass: 'legal-hold' });
  const segs = split(clip40);
  const sink = s.createSink('rec-a', 'room1');
  await sink.open();
  await feedPaced(segs, (g) => sink.write(g), 4);
  const stopAt = Date.now();
  const partsBeforeStop = server.requests.filter((r) => r.op === 'UploadPart' && r.status === 200 && r.at < stopAt).length;
  const result = await sink.finish(manifestOf('rec-a', 'room1'));
  const finishMs = Date.now() - stopAt;

  expect(result.location).toEqual({ kind: 's3', bucket: BUCKET, key: 'rec/room1/rec-a.mp4' });
  expect(result.bytes).toBe(clip40.length);
  // 15 MB at 5 MiB parts: parts 1 and 2 were sent while recording, only the last after stop.
  expect(partsBeforeStop).toBeGreaterThanOrEqual(2);
  expect(server.requests.filter((r) => r.op === 'UploadPart' && r.at >= stopAt).length).toBe(1);
  expect(finishMs).toBeLessThan(2000);
  expect(md5((await server.getObject(BUCKET, 'rec/room1/rec-a.mp4'))!)).toBe(md5(clip40));

  // Every part but the last ≥ 5 MiB and made of whole fragments (the test server enforces the minimum).
  const sizes = server.requests.filter((r) => r.op === 'UploadPart' && r.status === 200).map((r) => r.bodyBytes!);
  for (const sz of sizes.slice(0, -1)) expect(sz).toBeGreaterThanOrEqual(5 * MiB);

  // Headers at creation: SSE + KMS key, tagging, metadata; the stored object has them.
  const create = server.requests.find((r) => r.op === 'CreateMultipartUpload')!;
  expect(create.headers['x-amz-server-side-encryption']).toBe('aws:kms');
  expect(create.headers['x-amz-server-side-encryption-aws-kms-key-id']).toBe('arn:aws:kms:eu-west-1:111122223333:key/test');
  expect(create.headers['x-amz-tagging']).toBe('retention-class=legal-hold&app=tessera');
  expect(create.headers['x-amz-meta-recording-id']).toBe('rec-a');
  expect(create.headers['content-type']).toBe('video/mp4');
  const info = server.objectInfo(BUCKET, 'rec/room1/rec-a.mp4')!;
  expect(info.sse).toBe('aws:kms');
  expect(info.tags).toEqual([['retention-class', 'legal-hold'], ['app', 'tessera']]);
  const manifestPut = server.requests.filter((r) => r.op === 'PutObject' && r.key === 'rec/room1/rec-a.json');
  expect(manifestPut.length).toBeGreaterThanOrEqual(2); // checkpoint at open + final
  for (const r of manifestPut) expect(r.headers['x-amz-server-side-encryption']).toBe('aws:kms');

  // The manifest is listed (as after a restart: a new storage instance).
  const s2 = storage();
  const list = (await s2.listManifests()) as Array<Record<string, unknown>>;
  expect(list).toHaveLength(1);
  expect(list[0]).toMatchObject({ id: 'rec-a', roomId: 'room1', status: 'available', bytes: clip40.length, location: result.location, layout: 'grid' });
  expect(list[0].upload).toBeUndefined();

  // Media: ranges and presigned URL.
  const m = await s2.openMedia(result.location, { start: 100, end: 1099 });
  const chunks: Buffer[] = [];
  for await (const c of m!.stream as AsyncIterable<Buffer>) chunks.push(c);
  expect(m!.size).toBe(clip40.length);
  expect(Buffer.concat(chunks).equals(clip40.subarray(100, 1100))).toBe(true);
  const url = await s2.presignMedia(result.location);
  const res = await fetch(url!, { headers: { range: 'bytes=0-7' } });
  expect(res.status).toBe(206);
  expect(Buffer.from(await res.arrayBuffer()).equals(clip40.subarray(0, 8))).toBe(true);
  expect(await s2.openMedia({ kind: 's3', bucket: BUCKET, key: 'rec/room1/nope.mp4' })).toBeNull();

  // Delete removes media and manifest.
  await s2.deleteRecording(result.location);
  expect(server.listKeys(BUCKET)).toEqual([]);
  expect(await s2.listManifests()).toEqual([]);
  // Nothing left in the spool.
  expect(await fsp.readdir(path.join(dir, 'spool'))).toEqual([]);
});

test('AES256 encryption header and a recording without SSE', async () => {
  const s = storage({ sse: 'AES256' });
  const sink = s.createSink('rec-b', 'room2');
  await sink.open();
  for (const g of split(clip40).slice(0, 4)) await sink.write(g);
  await sink.finish(manifestOf('rec-b', 'room2'));
  const create = server.requests.find((r) => r.op === 'CreateMultipartUpload')!;
  expect(create.headers['x-amz-server-side-encryption']).toBe('AES256');
  expect(create.headers['x-amz-server-side-encryption-aws-kms-key-id']).toBeUndefined();
  expect(server.objectInfo(BUCKET, 'rec/room2/rec-b.mp4')!.sse).toBe('AES256');

  const plain = storage({ sse: null });
  const sink2 = plain.createSink('rec-c', 'room2');
  await sink2.open();
  for (const g of split(clip40).slice(0, 4)) await sink2.write(g);
  await sink2.finish(manifestOf('rec-c', 'room2'));
  const create2 = server.requests.filter((r) => r.op === 'CreateMultipartUpload')[1];
  expect(create2.headers['x-amz-server-side-encryption']).toBeUndefined();
});

test('503 SlowDown, 500, connection resets and a request that never answers are retried; nothing is lost', async () => {
  const s = storage({ requestTimeoutMs: 1000 });
  server.inject({ kind: 'reset', match: (r) => r.op === 'CreateMultipartUpload' });
  server.inject({ kind: 'slowdown', match: (r) => r.op === 'UploadPart', times: 2 });
  server.inject({ kind: 'reset', match: (r) => r.op === 'UploadPart', times: 2 });
  server.inject({ kind: 'stall', match: (r) => r.op === 'UploadPart' });
  server.inject({ kind: '500', match: (r) => r.op === 'UploadPart' });
  server.inject({ kind: 'slowdown', match: (r) => r.op === 'CompleteMultipartUpload' });
  server.inject({ kind: 'stall', match: (r) => r.op === 'CompleteMultipartUpload' });
  const sink = s.createSink('rec-f', 'room3');
  await sink.open();
  let slowestWrite = 0;
  await feedPaced(split(clip40), async (g) => {
    const t = Date.now();
    await sink.write(g);
    slowestWrite = Math.max(slowestWrite, Date.now() - t);
  }, 8);
  await sink.finish(manifestOf('rec-f', 'room3'));
  expect(md5((await server.getObject(BUCKET, 'rec/room3/rec-f.mp4'))!)).toBe(md5(clip40));
  const faults = server.requests.filter((r) => r.fault).map((r) => `${r.op}:${r.fault}`);
  expect(faults).toEqual(expect.arrayContaining([
    'CreateMultipartUpload:reset', 'UploadPart:slowdown', 'UploadPart:reset', 'UploadPart:stall', 'UploadPart:500',
    'CompleteMultipartUpload:slowdown', 'CompleteMultipartUpload:stall',
  ]));
  // The pipeline never waited on S3: a write is a local disk append.
  expect(slowestWrite).toBeLessThan(500);
  expect(server.uploadsInProgress()).toEqual([]);
});

test('errors S3 will not fix are not retried: a missing bucket fails open() with REC_ERR_UPLOAD at once', async () => {
  const s = storage({ bucket: 'no-such-bucket' });
  const sink = s.createSink('rec-x', 'room4');
  const t = Date.now();
  await expect(sink.open()).rejects.toMatchObject({ code: 'REC_ERR_UPLOAD' });
  expect(Date.now() - t).toBeLessThan(1000);
  expect(server.requests.filter((r) => r.op === 'CreateMultipartUpload')).toHaveLength(1);
});

test('a full spool fails the write with REC_ERR_UPLOAD instead of filling the disk', async () => {
  const s = storage({ spoolMaxBytes: 8 * MiB });
  const sink = s.createSink('rec-s', 'room5');
  await sink.open();
  server.setOutage('slowdown');
  let err: unknown = null;
  try {
    for (const g of split(clip40)) await sink.write(g);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TesseraError);
  expect((err as TesseraError).code).toBe('REC_ERR_UPLOAD');
  expect(s.spool.usedBytes).toBeLessThanOrEqual(8 * MiB);
  server.setOutage(null);
  // abort keeps what can be kept: the whole fragments written so far become the object.
  await sink.abort(err as Error, { ...manifestOf('rec-s', 'room5'), status: 'failed' });
  const obj = await server.getObject(BUCKET, 'rec/room5/rec-s.mp4');
  expect(obj).not.toBeNull();
  expect(obj!.equals(clip40.subarray(0, obj!.length))).toBe(true);
});

test('a crash between Complete and the final manifest (AWS answers ListParts with NoSuchUpload): recovery finds the object and writes the manifest, nothing is uploaded again', async () => {
  const s = storage();
  const sink = s.createSink('rec-done', 'room6');
  await sink.open();
  const uploadId = sink.uploadId!;
  for (const g of split(clip40).slice(0, 4)) await sink.write(g);
  await sink.finish(manifestOf('rec-done', 'room6'));
  const key = 'rec/room6/rec-done.mp4';
  const object = (await server.getObject(BUCKET, key))!;
  // What the process left when it died: the checkpoint manifest, and its spool directory.
  await s.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'rec/room6/rec-done.json', Body: JSON.stringify({ ...manifestOf('rec-done', 'room6'), status: 'recording', upload: { uploadId } }) }));
  const spoolDir = path.join(dir, 'spool', 'rec-done');
  await fsp.mkdir(spoolDir, { recursive: true });
  const state: SpoolState = {
    version: 1, recordingId: 'rec-done', roomId: 'room6', bucket: BUCKET, key, manifestKey: 'rec/room6/rec-done.json', uploadId,
    startedAt: '2026-11-24T10:00:00.000Z', pid: 999_999, host: os.hostname(), instanceId: 'dead',
  };
  await fsp.writeFile(path.join(spoolDir, STATE_FILE), JSON.stringify(state));
  await fsp.writeFile(path.join(spoolDir, FINAL_FILE), JSON.stringify(manifestOf('rec-done', 'room6')));
  const before = server.requests.length;
  expect((await storage().runRecovery()).completed).toEqual(['rec-done']);
  const ops = server.requests.slice(before).map((r) => r.op);
  expect(ops).not.toContain('UploadPart');
  expect(ops).not.toContain('CompleteMultipartUpload');
  expect((await server.getObject(BUCKET, key))!.equals(object)).toBe(true);
  const manifest = JSON.parse((await server.getObject(BUCKET, 'rec/room6/rec-done.json'))!.toString()) as Record<string, unknown>;
  expect(manifest).toMatchObject({ status: 'available', bytes: object.length, retentionClass: 'standard' });
  expect(manifest.upload).toBeUndefined();
  await expect(fsp.readdir(path.join(dir, 'spool'))).resolves.toEqual([]);
});

test('the store unreachable at start: the check says so, recovery waits for it, and both run once it answers', async () => {
  const until = async (cond: () => boolean, ms: number): Promise<void> => {
    for (const end = Date.now() + ms; !cond(); await new Promise((r) => setTimeout(r, 50))) if (Date.now() > end) throw new Error('timed out');
  };
  // A recorder that died with two parts uploaded (its spool is elsewhere: lost with its pod).
  const dead = storage();
  const sink = dead.createSink('rec-later', 'room7');
  await sink.open();
  sink.updateManifest({ ...manifestOf('rec-later', 'room7'), status: 'recording' });
  for (const g of split(clip40)) await sink.write(g);
  await until(() => sink.stats.partsUploaded >= 2, 20_000);
  sink.close();

  server.setOutage('reset');
  const s = storage({ spoolDir: path.join(dir, 'spool-b'), staleAfterMs: 0, openTimeoutMs: 300 });
  const caps = await s.probe();
  expect(caps.error).toMatch(/capability probe failed/);
  expect(s.status()).toMatchObject({ ok: false, write: null });
  await s.recover(); // deferred: no throw, no crash loop at start
  expect(server.uploadsInProgress()).toHaveLength(1);

  server.setOutage(null);
  expect(await s.probe()).toMatchObject({ error: null, write: true, read: true, multipart: true, tagging: true, maxParts: 10_000 });
  expect(s.status().ok).toBe(true);
  const manifest = async (): Promise<Record<string, unknown>> => JSON.parse((await server.getObject(BUCKET, 'rec/room7/rec-later.json'))!.toString()) as Record<string, unknown>;
  for (const end = Date.now() + 20_000; (await manifest()).status !== 'available' && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
  expect(server.uploadsInProgress()).toEqual([]);
  const m = await manifest();
  expect(m).toMatchObject({ status: 'available', error: { code: 'REC_ERR_INTERRUPTED' }, bytes: server.objectInfo(BUCKET, 'rec/room7/rec-later.mp4')!.size });
  // The check left nothing behind.
  expect(server.listKeys(BUCKET).filter((k) => k.includes('tessera-probe'))).toEqual([]);
});
