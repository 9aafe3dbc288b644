/**
 * Six `npm run participant` peers (separate processes, real werift WebRTC) in one room, recorded
 * through the REST API with the real pipeline: every colour in the grid, every tone in the MP4.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { participantStyle } from '../../src/media/SyntheticClip';
import { Recorder } from '../../src/pipeline/Recorder';
import type { RecordingInfo } from '../../src/pipeline/types';
import { TesseraServer } from '../../src/server/TesseraServer';
import { FileStorage } from '../../src/storage/FileStorage';
import { allFrames, audioSamples, colourDistance, decodeErrors, hexRgb, toneShare } from '../helpers/media';
import { sleep, until } from '../helpers/rtc-harness';

jest.setTimeout(180_000);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-six-'));
const root = path.join(__dirname, '..', '..');
let server: TesseraServer;
let storage: FileStorage;
const children: ChildProcess[] = [];

beforeAll(async () => {
  const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1', RECORDINGS_DIR: path.join(tmp, 'rec'), VIDEO_WIDTH: '640', VIDEO_HEIGHT: '360', VIDEO_FPS: '15' });
  storage = new FileStorage(config.recordingsDir);
  server = new TesseraServer({ config, recorder: new Recorder({ config, storage, logger }), logger });
  await server.listen(0, '127.0.0.1');
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null)));
  await server?.drain();
  await storage?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function colourShare(rgb: Buffer, hex: string, tol = 60): number {
  const c = hexRgb(hex);
  let n = 0;
  for (let o = 0; o < rgb.length; o += 3) if (colourDistance([rgb[o], rgb[o + 1], rgb[o + 2]], c) < tol) n++;
  return n / (rgb.length / 3);
}

test('six npm run participant peers: every colour and every tone recorded', async () => {
  const room = 'six';
  for (let i = 1; i <= 6; i++) {
    // SCHED_IDLE: the participants stand in for people on their own machines; on 2 cores they
    // must not take the CPU from the server under test (see backgroundChromium()).
    const c = spawn('chrt', ['--idle', '0', process.execPath, path.join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs'), 'src/cli/participant.ts', '--url', server.url, '--room', room, '--index', String(i), '--seconds', '120', '--size', '320x180', '--fps', '15'], {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    c.stderr!.on('data', (d: Buffer) => process.stderr.write(`[participant ${i}] ${d}`));
    children.push(c);
  }
  await until(() => server.conference.room(room)?.participants().filter((p) => p.publishing.length >= 2).length === 6, 90_000, 'six participants publishing');
  await sleep(1500);

  const post = await fetch(`${server.url}/api/rooms/${room}/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  expect(post.status).toBe(201);
  const again = await fetch(`${server.url}/api/rooms/${room}/recording`, { method: 'POST' });
  expect(again.status).toBe(409);
  await sleep(8000);
  const del = await fetch(`${server.url}/api/rooms/${room}/recording`, { method: 'DELETE' });
  expect(del.status).toBe(200);
  const rec = (await del.json()) as RecordingInfo;
  expect({ status: rec.status, error: rec.error }).toEqual({ status: 'available', error: undefined });
  expect(rec.participants).toHaveLength(6);

  const file = path.join(tmp, 'six.mp4');
  const media = await fetch(`${server.url}/api/recordings/${rec.id}/media`);
  fs.writeFileSync(file, Buffer.from(await media.arrayBuffer()));
  if (process.env.TESSERA_E2E_KEEP) fs.copyFileSync(file, process.env.TESSERA_E2E_KEEP);
  expect(decodeErrors(file)).toBe('');
  const { frames, fps } = allFrames(file, 8);
  const last = frames.slice(-Math.round(fps * 3)); // the last three seconds
  for (let i = 1; i <= 6; i++) {
    const seen = last.filter((f) => colourShare(f, participantStyle(i).hex) > 0.005).length;
    // eslint-disable-next-line no-console
    if (seen < last.length * 0.9) console.log(`colour ${i}: in ${seen}/${last.length} of the last frames; shares`, last.map((f) => colourShare(f, participantStyle(i).hex).toFixed(3)).join(' '));
    expect({ i, seen: seen >= last.length * 0.9 }).toEqual({ i, seen: true });
  }
  const samples = audioSamples(file);
  const shares = [1, 2, 3, 4, 5, 6].map((i) => toneShare(samples, participantStyle(i).toneHz));
  const absent = toneShare(samples, 2000);
  // eslint-disable-next-line no-console
  console.log('six peers: tone shares', shares.map((s) => s.toFixed(4)), 'absent', absent.toFixed(5));
  for (const s of shares) expect(s).toBeGreaterThan(Math.max(0.0005, absent * 20));

  // DELETE removes media and manifest
  expect((await fetch(`${server.url}/api/recordings/${rec.id}`, { method: 'DELETE' })).status).toBe(204);
  expect((await fetch(`${server.url}/api/recordings/${rec.id}`)).status).toBe(404);
});
