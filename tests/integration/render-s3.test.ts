/**
 * A re-render of a recording kept in S3 (the real SDK over real HTTP, tests/helpers/s3server.ts),
 * with a fault on each side: the tracks are downloaded (the first GET fails with a 500 and is
 * retried), composed, and the MP4 uploaded beside the recording (the first PUT's connection is
 * reset and the SDK sends it again), listed in the manifest, tagged for the lifecycle rule when
 * the recording expires, and deleted with the recording.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { runSyntheticSession } from '../../src/media/syntheticSession';
import type { Manifest } from '../../src/pipeline/types';
import { renderRecording } from '../../src/render/Renderer';
import { newRender, readManifest, runStoredRender, saveRender } from '../../src/render/renderJob';
import { S3Storage } from '../../src/storage/S3Storage';
import { loadPresets } from '../../compositor/presets';
import { DEBIAN_FFMPEG, decodeErrors, probe } from '../helpers/media';
import { BUCKET, TEST_CREDENTIALS, s3TestConfig, tempDir } from '../helpers/s3fixtures';
import { S3TestServer } from '../helpers/s3server';

jest.setTimeout(90_000);

let server: S3TestServer;
let storage: S3Storage;
let dir: string;

beforeAll(async () => {
  dir = await tempDir('render-s3');
  server = new S3TestServer({ buckets: [BUCKET] });
  await server.start();
  storage = new S3Storage(s3TestConfig(server.endpoint, path.join(dir, 'spool')), { clientConfig: { credentials: TEST_CREDENTIALS } });
});

afterAll(async () => {
  await storage?.close();
  await server?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('tracks downloaded from S3, the render uploaded beside the recording and listed, both through faults; deleted with the recording', async () => {
  const config = loadConfig({ FFMPEG_PATH: DEBIAN_FFMPEG, TESSERA_X264_PRESET: 'ultrafast', VIDEO_WIDTH: '640', VIDEO_HEIGHT: '360' });
  const local = path.join(dir, 'local');
  fs.mkdirSync(local);
  const r = await runSyntheticSession({ participants: 2, seconds: 4, tracks: true, out: path.join(local, 'rec.mp4'), config, ffmpegPath: DEBIAN_FFMPEG, logger });
  expect(r.info.status).toBe('available');

  // The same recording as an S3 storage keeps it: <prefix><room>/<id>.mp4, .json, .tracks/.
  const m = JSON.parse(fs.readFileSync(path.join(local, 'rec.json'), 'utf8')) as Manifest;
  const key = `rec/room1/${m.id}.mp4`;
  const moved: Manifest = {
    ...m,
    roomId: 'room1',
    location: { kind: 's3', bucket: BUCKET, key },
    tracks: m.tracks!.map((t) => ({ ...t, location: { kind: 's3', bucket: BUCKET, key: `rec/room1/${m.id}.${t.location.key.replace(/^rec\./, '')}` } })),
  };
  await storage.putFile(moved.location, path.join(local, 'rec.mp4'), 'video/mp4');
  for (const [t, orig] of moved.tracks!.map((t, i) => [t, m.tracks![i]] as const)) await storage.putFile(t.location, path.join(local, orig.location.key), 'video/webm');
  fs.writeFileSync(path.join(local, 'moved.json'), JSON.stringify(moved));
  await storage.putFile({ ...moved.location, key: `rec/room1/${m.id}.json` }, path.join(local, 'moved.json'), 'application/json');

  server.inject({ kind: '500', match: (q) => q.op === 'GetObject' && q.key.includes('.tracks/') });
  server.inject({ kind: 'reset', match: (q) => (q.op === 'PutObject' || q.op === 'UploadPart') && q.key.includes('.renders/') });
  const render = newRender(moved, 'grid');
  await saveRender(storage, moved.location, render);
  const final = await runStoredRender({
    storage,
    manifest: moved,
    render,
    logger,
    run: (o) => renderRecording({ ...o, presets: loadPresets(), config, ffmpegPath: DEBIAN_FFMPEG, logger }),
  });
  expect(final).toMatchObject({ id: 'grid-1', status: 'available', location: { kind: 's3', bucket: BUCKET, key: `rec/room1/${m.id}.renders/grid-1.mp4` }, durationMs: m.durationMs });
  const faults = server.requests.filter((q) => q.fault).map((q) => `${q.op} ${q.fault}`);
  expect(faults.sort()).toEqual(['GetObject 500', expect.stringMatching(/^(PutObject|UploadPart) reset$/)].sort());
  expect(server.objectInfo(BUCKET, final.location.key)).toMatchObject({ size: final.bytes, contentType: 'video/mp4' });
  expect((await readManifest(storage, moved.location))?.renders).toEqual([final]);

  const got = await storage.openMedia(final.location);
  const file = path.join(dir, 'render.mp4');
  await pipeline(got!.stream as NodeJS.ReadableStream, fs.createWriteStream(file));
  expect(decodeErrors(file)).toBe('');
  expect(Math.abs(probe(file).videoDuration * 1000 - m.durationMs!)).toBeLessThanOrEqual(34);

  // Retention on S3 tags the recording for the bucket's lifecycle rule: its render and tracks too.
  await storage.markExpired(moved.location);
  for (const k of [final.location.key, moved.tracks![0].location.key]) expect(server.objectInfo(BUCKET, k)?.tags).toContainEqual(['tessera-expired', 'true']);

  await storage.deleteRecording(moved.location);
  expect(server.listKeys(BUCKET).filter((k) => k.includes(m.id))).toEqual([]);
});
