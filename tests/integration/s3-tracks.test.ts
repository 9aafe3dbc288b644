/**
 * Per-track recordings into S3 (lib-storage's Upload over real HTTP to the S3-compatible test
 * endpoint): tracks complete through injected faults, and a recorder killed mid-recording
 * leaves them recoverable — from the local spool copy after a process crash, from the parts in
 * the bucket after the loss of the machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { loadConfig, type Config } from '../../src/config';
import { logger } from '../../src/logger';
import { makeSyntheticClip, participantStyle } from '../../src/media/SyntheticClip';
import { SyntheticSource } from '../../src/media/SyntheticSource';
import { Recorder } from '../../src/pipeline/Recorder';
import type { Manifest } from '../../src/pipeline/types';
import { S3Storage } from '../../src/storage/S3Storage';
import type { TrackInfo } from '../../src/tracks/TrackWriter';
import { S3TestServer } from '../helpers/s3server';
import { BUCKET, TEST_CREDENTIALS, s3TestConfig } from '../helpers/s3fixtures';
import { DEBIAN_FFMPEG, FFPROBE, audioSamples, colourDistance, decodeErrors, frameAt, meanColour, toneShare } from '../helpers/media';
import { execFileSync } from 'node:child_process';

jest.setTimeout(120_000);

let server: S3TestServer;
let dir: string;
const children: ChildProcess[] = [];
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-s3tracks-'));
  server = new S3TestServer({ buckets: [BUCKET] });
  await server.start();
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await server?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function packetCount(file: string): number {
  return execFileSync(FFPROBE, ['-v', 'error', '-select_streams', '0', '-count_packets', '-show_entries', 'stream=nb_read_packets', '-of', 'csv=p=0', file], { encoding: 'utf8' }).trim() as unknown as number;
}

async function objectFile(key: string, name: string): Promise<string> {
  const body = await server.getObject(BUCKET, key);
  if (!body) throw new Error(`no object ${key}`);
  const file = path.join(dir, name);
  fs.writeFileSync(file, body);
  return file;
}

test('tracks complete in the bucket through 500s, resets and 503s on their uploads', async () => {
  const base = loadConfig({ FFMPEG_PATH: DEBIAN_FFMPEG, TESSERA_X264_PRESET: 'ultrafast' });
  const config: Config = { ...base, s3: s3TestConfig(server.endpoint, path.join(dir, 'spool-a')) };
  const storage = new S3Storage(config.s3, { logger, clientConfig: { credentials: TEST_CREDENTIALS } });
  await storage.probe();
  const recorder = new Recorder({ config, storage, logger });
  const sources = await Promise.all([1, 2].map(async (i) => new SyntheticSource({ id: `p${i}`, name: `Participant ${i}`, clip: await makeSyntheticClip(DEBIAN_FFMPEG, { index: i }, logger) }).start()));
  const onTracks = (r: { key: string }) => r.key.includes('.tracks/');
  server.inject({ kind: '500', match: onTracks, times: 3 });
  server.inject({ kind: 'reset', match: onTracks, times: 2 });
  server.inject({ kind: 'slowdown', match: onTracks, times: 3 });
  try {
    const rec = recorder.start('s3tracks', { sources, tracks: true });
    await new Promise((r) => setTimeout(r, 5000));
    const info = await rec.stop();
    expect({ status: info.status, error: info.error }).toEqual({ status: 'available', error: undefined });
    const hit = server.requests.filter((r) => r.fault && r.key.includes('.tracks/')).length;
    expect(hit).toBe(8); // every injected fault hit a track request, and the tracks still completed
    const manifestKey = info.location.key.replace(/\.mp4$/, '.json');
    const manifest = JSON.parse((await server.getObject(BUCKET, manifestKey))!.toString('utf8')) as Manifest;
    const tracks = manifest.tracks as TrackInfo[];
    expect(tracks.map((t) => `${t.participantId}:${t.kind}:${t.state}`).sort()).toEqual(['p1:camera:complete', 'p1:microphone:complete', 'p2:camera:complete', 'p2:microphone:complete']);
    for (const t of tracks) {
      expect(t.location).toMatchObject({ kind: 's3', bucket: BUCKET });
      const file = await objectFile(t.location.key, path.basename(t.location.key));
      expect({ key: t.location.key, bytes: fs.statSync(file).size, errors: decodeErrors(file) }).toEqual({ key: t.location.key, bytes: t.bytes, errors: '' });
      const want = participantStyle(Number(t.participantId.slice(1)));
      if (t.kind === 'camera') {
        const img = frameAt(file, 2);
        expect(colourDistance(meanColour(img, { x: img.w * 0.25, y: img.h * 0.45, w: img.w * 0.5, h: img.h * 0.4 }), want.rgb)).toBeLessThan(60);
      } else {
        expect(toneShare(audioSamples(file), want.toneHz)).toBeGreaterThan(0.5);
      }
    }
    // Deleting the recording deletes its tracks.
    await recorder.delete(info.id);
    expect(server.listKeys(BUCKET).filter((k) => k.includes('.tracks/'))).toEqual([]);
  } finally {
    for (const s of sources) s.close();
    recorder.close();
    await storage.close();
  }
});

/**
 * Runs the tracks child until the camera's upload has `parts` whole parts in the bucket and the
 * microphone has been written for 2 s (a track hands its bytes on every half second: a crash
 * loses at most that much), then SIGKILLs it.
 */
async function recordAndKill(cfg: Config['s3'], recordingId: string, parts: number): Promise<void> {
  const arg = { cfg, recordingId, roomId: 'crashtracks', credentials: TEST_CREDENTIALS };
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'helpers', 's3-tracks-child.ts'), JSON.stringify(arg)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const rl = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('tracks child did not upload a part in time')), 60_000);
    child.on('exit', (code) => reject(new Error(`tracks child exited early (${code})`)));
    rl.on('line', (line) => {
      const progress = JSON.parse(line) as { micPackets: number };
      const up = server.uploadsInProgress().find((u) => u.key.includes(`${recordingId}.tracks/001-camera`));
      if (up && up.parts >= parts && progress.micPackets >= 100) {
        clearTimeout(timer);
        child.kill('SIGKILL');
        resolve();
      }
    });
  });
  await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
}

test('a recorder killed mid-recording: recovery makes both tracks from the spool copy; without it (machine lost), the camera from its uploaded parts', async () => {
  // 1. Process crash: the spool directory survives (same pod, restarted process).
  const spool = path.join(dir, 'spool-b');
  const cfg = s3TestConfig(server.endpoint, spool, { staleAfterMs: 0, orphanMaxAgeMs: 0 });
  await recordAndKill(cfg, 'rec_crash_1', 1);
  const recovery = new S3Storage(cfg, { logger, clientConfig: { credentials: TEST_CREDENTIALS } });
  await recovery.probe();
  try {
    const report = await recovery.runRecovery();
    expect(report.completed).toEqual(expect.arrayContaining(['rec_crash_1:t1', 'rec_crash_1:t2']));
    const manifest = JSON.parse((await server.getObject(BUCKET, 'rec/crashtracks/rec_crash_1.json'))!.toString('utf8')) as Manifest;
    const tracks = manifest.tracks as TrackInfo[];
    expect(tracks.map((t) => t.state)).toEqual(['incomplete', 'incomplete']);
    for (const t of tracks) {
      const file = await objectFile(t.location.key, `crash1-${path.basename(t.location.key)}`);
      expect(fs.statSync(file).size).toBe(t.bytes);
      // Readable to where the crash cut it: the camera holds more than its first uploaded part.
      const n = Number(packetCount(file));
      expect({ key: t.location.key, readable: n > (t.kind === 'camera' ? 1000 : 10) }).toEqual({ key: t.location.key, readable: true });
    }
    expect(fs.readdirSync(path.join(spool, '.tracks'))).toEqual([]);
    expect(server.uploadsInProgress().filter((u) => u.key.includes('rec_crash_1.tracks/'))).toEqual([]);
  } finally {
    await recovery.close();
  }

  // 2. The machine is lost with its disk: only the bucket's parts are left.
  const spool2 = path.join(dir, 'spool-c');
  const cfg2 = s3TestConfig(server.endpoint, spool2, { staleAfterMs: 0, orphanMaxAgeMs: 0 });
  await recordAndKill(cfg2, 'rec_crash_2', 1);
  fs.rmSync(spool2, { recursive: true, force: true });
  const other = new S3Storage(s3TestConfig(server.endpoint, path.join(dir, 'spool-d'), { staleAfterMs: 0, orphanMaxAgeMs: 0 }), { logger, clientConfig: { credentials: TEST_CREDENTIALS } });
  await other.probe();
  try {
    await other.runRecovery();
    const manifest = JSON.parse((await server.getObject(BUCKET, 'rec/crashtracks/rec_crash_2.json'))!.toString('utf8')) as Manifest;
    const cam = (manifest.tracks as TrackInfo[]).find((t) => t.kind === 'camera')!;
    expect(cam.state).toBe('incomplete');
    const file = await objectFile(cam.location.key, 'crash2-camera.webm');
    expect(fs.statSync(file).size).toBe(cam.bytes);
    expect(cam.bytes! % (5 * 1024 * 1024)).toBe(0); // whole parts
    expect(Number(packetCount(file))).toBeGreaterThan(500);
    const img = frameAt(file, 5);
    expect(colourDistance(meanColour(img, { x: img.w * 0.25, y: img.h * 0.45, w: img.w * 0.5, h: img.h * 0.4 }), participantStyle(1).rgb)).toBeLessThan(60);
    // No upload is left dangling.
    expect(server.uploadsInProgress().filter((u) => u.key.includes('rec_crash_2.tracks/001'))).toEqual([]);
  } finally {
    await other.close();
  }
});
