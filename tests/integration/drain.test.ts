/**
 * SIGTERM on the real server process (`src/main.ts`, as `npm start` runs it): a drain that keeps
 * calls. The pod goes unready and opens no new rooms, the recorded call goes on until its people
 * leave, the recording then ends `available`, and the process exits 0. When the grace runs out
 * first, the recording is stopped cleanly and people are told and disconnected.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { WeriftParticipant } from '../../src/rtc/WeriftParticipant';
import { participant, sleep, until } from '../helpers/rtc-harness';
import { decodeErrors, probe } from '../helpers/media';
import { exitWithin, manifests, startProcess, type Server } from '../helpers/serverProcess';

jest.setTimeout(150_000);

const frames = (p: WeriftParticipant) => [...p.received.values()].reduce((n, s) => n + s.frames, 0);

let server: Server | null = null;
const people: WeriftParticipant[] = [];

afterEach(async () => {
  await Promise.allSettled(people.splice(0).map((p) => p.close()));
  if (server && server.child.exitCode === null) server.child.kill('SIGKILL');
  if (server) fs.rmSync(server.dir, { recursive: true, force: true });
  server = null;
});

async function recordedCall(url: string, roomId: string): Promise<[WeriftParticipant, WeriftParticipant]> {
  const a = await participant(url, roomId, 'Ada', 1);
  const b = await participant(url, roomId, 'Bo', 2);
  people.push(a, b);
  for (const p of [a, b]) expect((await p.join()).ok).toBe(true);
  await until(() => frames(a) > 10 && frames(b) > 10, 20_000, 'media both ways');
  const ack = await a.request('record:start', {});
  expect(ack.ok).toBe(true);
  await until(() => a.recording?.status === 'recording', 20_000, 'recording');
  return [a, b];
}

test('SIGTERM during a recorded call: unready, no new rooms, the call goes on; the recording ends available when the call ends; exit 0', async () => {
  server = await startProcess(undefined, { TESSERA_SHUTDOWN_GRACE_MS: '300000', TESSERA_DRAIN_FINISH_MS: '20000' });
  const [a, b] = await recordedCall(server.url, 'drain-call');
  await sleep(2000);

  server.child.kill('SIGTERM');
  await until(() => server!.logs.some((l) => l.includes('draining: calls and recordings go on')), 10_000, 'drain to begin');
  const ready = await fetch(`${server.url}/readyz`);
  expect(ready.status).toBe(503);

  // a new room is refused; the running call takes a latecomer
  const stranger = await participant(server.url, 'drain-new-room', 'Cy', 3);
  people.push(stranger);
  const refused = await stranger.join();
  expect(refused.ok).toBe(false);
  expect(refused.ok === false && refused.error.code).toBe('REC_ERR_DRAINING');
  const late = await participant(server.url, 'drain-call', 'Di', 4);
  people.push(late);
  expect((await late.join()).ok).toBe(true);

  // the call and its recording go on
  const before = [frames(a), frames(b)];
  await sleep(4000);
  expect(frames(a)).toBeGreaterThan(before[0] + 30);
  expect(frames(b)).toBeGreaterThan(before[1] + 30);
  expect(a.recording?.status).toBe('recording');
  expect(server.child.exitCode).toBeNull();

  // the call ends: everyone leaves
  const ended = Date.now();
  for (const p of [late, b, a]) await p.leave();
  const code = await exitWithin(server, 60_000);
  expect(code).toBe(0);
  expect(Date.now() - ended).toBeLessThan(30_000);

  const [m] = manifests(server.dir);
  expect(m.status).toBe('available');
  expect(m.durationMs).toBeGreaterThan(6000); // recorded through the drain
  const file = path.join(server.dir, m.roomId, `${m.id}.mp4`);
  const pr = probe(file);
  expect(pr.formatDuration).toBeGreaterThan(6);
  expect(decodeErrors(file)).toBe('');
});

test('the grace runs out before the call ends: the recording is stopped cleanly (available), people are told, exit 0', async () => {
  server = await startProcess(undefined, { TESSERA_SHUTDOWN_GRACE_MS: '9000', TESSERA_DRAIN_FINISH_MS: '5000' });
  const [a, b] = await recordedCall(server.url, 'drain-deadline');
  const notices: string[] = [];
  a.on('notice', (n) => notices.push(n.code ?? ''));
  await sleep(1000);
  const t0 = Date.now();
  server.child.kill('SIGTERM');
  await sleep(2500);
  expect(a.recording?.status).toBe('recording'); // still going, 2.5 s into the drain

  const code = await exitWithin(server, 30_000);
  expect(code).toBe(0);
  expect(Date.now() - t0).toBeLessThan(9000);
  expect(Date.now() - t0).toBeGreaterThan(3500);
  expect(notices).toContain('REC_ERR_DRAINING');
  void b;

  const [m] = manifests(server.dir);
  expect(m.status).toBe('available');
  const file = path.join(server.dir, m.roomId, `${m.id}.mp4`);
  expect(probe(file).formatDuration).toBeGreaterThan(3);
  expect(decodeErrors(file)).toBe('');
});
