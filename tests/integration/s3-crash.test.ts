/**
 * SIGKILL of a recorder mid-recording (a child process: live FFmpeg → Mp4Splitter → S3Sink), then
 * recovery by the next process: the object plays from the start to its last whole fragment
 * (ffprobe decodes it without an error; headless Chromium plays it to the end without a decode
 * error) and the recording is listed "available" with REC_ERR_INTERRUPTED.
 */
import { CreateMultipartUploadCommand } from '@aws-sdk/client-s3';
import type { ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { S3Storage } from '../../src/storage/S3Storage';
import { S3TestServer } from '../helpers/s3server';
import { BUCKET, TEST_CREDENTIALS, probe, s3TestConfig, tempDir } from '../helpers/s3fixtures';
import { playInChromium as play, recordAndKill as recordAndKillIn } from '../helpers/s3crash';

jest.setTimeout(180_000);

let server: S3TestServer;
let dir: string;
let browser: Browser | null = null;
const storages: S3Storage[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await tempDir('s3-crash');
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--autoplay-policy=no-user-gesture-required'],
  });
});

beforeEach(async () => {
  server = new S3TestServer({ buckets: [BUCKET] });
  await server.start();
});

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const s of storages.splice(0)) await s.close();
  await server.close();
  await fsp.rm(path.join(dir, 'spool'), { recursive: true, force: true });
});

afterAll(async () => {
  await browser?.close();
  await fsp.rm(dir, { recursive: true, force: true });
});

const recordAndKill = (cfg: ReturnType<typeof s3TestConfig>, recordingId: string, until: Parameters<typeof recordAndKillIn>[0]['until']) =>
  recordAndKillIn({ cfg, recordingId, until, children });
const playInChromium = (url: string) => play(browser!, url);

test('SIGKILL mid-recording: recover() completes the upload with the spooled tail; it plays to the last whole fragment', async () => {
  const cfg = s3TestConfig(server.endpoint, path.join(dir, 'spool'));
  // Kill once two parts are in S3 and the third is partly spooled.
  const last = await recordAndKill(cfg, 'rec-kill', (p) => (p.partsUploaded ?? 0) >= 2 && (p.bytesWritten ?? 0) - (p.bytesUploaded ?? 0) > 2 * 1024 * 1024);
  expect(server.uploadsInProgress()).toHaveLength(1);
  const before = (await fsp.readdir(path.join(dir, 'spool', 'rec-kill'))).sort();
  expect(before).toContain('state.json');

  const s3 = new S3Storage(cfg, { clientConfig: { credentials: TEST_CREDENTIALS } });
  storages.push(s3);
  const t = Date.now();
  const report = await s3.runRecovery();
  const recoverMs = Date.now() - t;
  expect(report.completed).toEqual(['rec-kill']);
  expect(server.uploadsInProgress()).toEqual([]);
  await expect(fsp.readdir(path.join(dir, 'spool'))).resolves.toEqual([]);

  const file = (await server.objectPath(BUCKET, 'rec/crashroom/rec-kill.mp4'))!;
  const { durationS, errors } = await probe(file);
  expect(errors).toBe('');
  // Everything written before the kill is in it, up to the last whole fragment (the spooled tail too).
  expect(durationS * 1000).toBeGreaterThanOrEqual(last.endMs! - 1100);
  expect(durationS * 1000).toBeLessThanOrEqual(last.endMs! + 1100);

  const list = (await s3.listManifests()) as Array<Record<string, unknown>>;
  expect(list).toHaveLength(1);
  expect(list[0]).toMatchObject({ id: 'rec-kill', roomId: 'crashroom', status: 'available', layout: 'grid', error: { code: 'REC_ERR_INTERRUPTED' } });
  expect(list[0].participants).toEqual([expect.objectContaining({ name: 'Alice' })]);
  expect(Math.abs((list[0].durationMs as number) - durationS * 1000)).toBeLessThan(1100);

  const played = await playInChromium((await s3.presignMedia({ kind: 's3', bucket: BUCKET, key: 'rec/crashroom/rec-kill.mp4' }))!);
  console.log(JSON.stringify({ case: 'spool', lastWrittenMs: last.endMs, durationS, recoverMs, played }));
  expect(played.error).toBeNull();
  expect(played.ended).toBe(true);
  expect(played.currentTime).toBeGreaterThan(durationS - 1.5);
});

test('SIGKILL and the spool lost with the pod: another process completes the uploaded parts once the checkpoint is stale; empty orphans are aborted', async () => {
  const cfg = s3TestConfig(server.endpoint, path.join(dir, 'spool'));
  const last = await recordAndKill(cfg, 'rec-pod', (p) => (p.partsUploaded ?? 0) >= 2 && (p.bytesWritten ?? 0) - (p.bytesUploaded ?? 0) > 1024 * 1024);
  await fsp.rm(path.join(dir, 'spool'), { recursive: true, force: true });

  const other = s3TestConfig(server.endpoint, path.join(dir, 'spool-other'), { staleAfterMs: 60_000, orphanMaxAgeMs: 3600_000 });
  const s3 = new S3Storage(other, { clientConfig: { credentials: TEST_CREDENTIALS } });
  storages.push(s3);
  // An empty upload (a recorder that died before its first part) and an old one.
  const young = await s3.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'rec/crashroom/young.mp4' }));
  const old = await s3.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'rec/crashroom/old.mp4' }));
  server.ageUpload(old.UploadId!, 2 * 3600_000);

  // The checkpoint is fresh: it may be a live recorder on another pod, so it is left alone.
  const first = await s3.runRecovery();
  expect(first.completed).toEqual([]);
  expect(first.skipped.length).toBe(2); // rec-pod and young (both too fresh)
  expect(first.aborted).toEqual([old.UploadId]);

  const s3b = new S3Storage({ ...other, staleAfterMs: 0 }, { clientConfig: { credentials: TEST_CREDENTIALS } });
  storages.push(s3b);
  const second = await s3b.runRecovery();
  expect(second.completed).toEqual(['rec-pod']);
  expect(second.skipped).toEqual([young.UploadId]); // nothing usable but younger than orphanMaxAgeMs
  expect(server.uploadsInProgress().map((u) => u.key)).toEqual(['rec/crashroom/young.mp4']);

  const file = (await server.objectPath(BUCKET, 'rec/crashroom/rec-pod.mp4'))!;
  const { durationS, errors } = await probe(file);
  expect(errors).toBe('');
  // Only the two uploaded parts: less than what was written, but whole fragments.
  expect(durationS * 1000).toBeLessThan(last.endMs!);
  expect(durationS).toBeGreaterThan(5);
  const m = (await s3b.listManifests()) as Array<Record<string, unknown>>;
  expect(m.find((x) => x.id === 'rec-pod')).toMatchObject({ status: 'available', error: { code: 'REC_ERR_INTERRUPTED' }, bytes: server.objectInfo(BUCKET, 'rec/crashroom/rec-pod.mp4')!.size });
  const played = await playInChromium(`${server.endpoint}/${BUCKET}/rec/crashroom/rec-pod.mp4?X-Amz-Signature=test`);
  console.log(JSON.stringify({ case: 'remote', lastWrittenMs: last.endMs, durationS, played }));
  expect(played.error).toBeNull();
  expect(played.ended).toBe(true);
});
