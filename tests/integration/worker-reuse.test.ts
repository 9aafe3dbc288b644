/**
 * A worker runs one recording at a time, and may run another after it (config `workerReuse`):
 * the pool offers a worker whose recording ended `available` before a new process. What a user
 * needs from that: the second recording, run by the same process, is as good as the first (every
 * participant in place and every voice, clean decode, the call's length), the process really is
 * the same one (that is the point: its code is warm), the limit ends a worker after its last use,
 * and `workerReuse` 1 gives every recording a new process. With `workerSpares` 2, two recordings
 * started at the same moment in a new server both start in warm processes; with 0, none waits
 * and a recording still runs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { WorkerPool } from '../../src/worker/WorkerPool';
import { runSyntheticSession } from '../../src/media/syntheticSession';
import { participantStyle } from '../../src/media/SyntheticClip';
import { computeLayout } from '../../compositor/layout';
import { loadPresets } from '../../compositor/presets';
import { allFrames, audioSamples, colourDistance, decodeErrors, meanColour, probe, toneShare, DEBIAN_FFMPEG } from '../helpers/media';

jest.setTimeout(120_000);

let dir: string;
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-reuse-')); });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const N = 3;

/** One 4-s recording of N synthetic participants through `pool`: its worker's pid and its file. */
async function record(pool: WorkerPool, name: string, env: Record<string, string> = {}) {
  const out = path.join(dir, `${name}.mp4`);
  const config = loadConfig({ FFMPEG_PATH: DEBIAN_FFMPEG, TESSERA_X264_PRESET: 'ultrafast', ...env });
  let pid: number | undefined;
  const r = await runSyntheticSession({
    participants: N, seconds: 4, out, config, ffmpegPath: DEBIAN_FFMPEG, logger, pool,
    events: [{ at: 2, action: (c) => void (pid = c.recording.workerPid) }],
  });
  return { r, pid, out };
}

/** What a viewer needs of the file: it plays cleanly, lasts the call, shows and sounds everyone. */
function expectWhole(file: string, wallMs: number) {
  expect(decodeErrors(file)).toBe('');
  const p = probe(file);
  expect(Math.abs(p.videoDuration * 1000 - wallMs)).toBeLessThanOrEqual(150);
  expect(p.audioDuration).toBeGreaterThan(p.videoDuration - 0.3);
  const { frames, w, h, fps } = allFrames(file, 8);
  const layout = computeLayout(loadPresets().get('grid')!, { width: 1280, height: 720, tiles: Array.from({ length: N }, (_, k) => ({ id: `p${k + 1}`, kind: 'camera' as const })) });
  // Every participant in their own cell over the last second.
  for (const rgb of frames.slice(-fps)) {
    layout.tiles.forEach((t, k) => expect(colourDistance(meanColour({ w, h, rgb }, t.video, 8), participantStyle(k + 1).rgb)).toBeLessThan(45));
  }
  const samples = audioSamples(file, 1);
  for (let k = 1; k <= N; k++) expect(toneShare(samples, participantStyle(k).toneHz)).toBeGreaterThan(0.1);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('a worker whose recording ended well runs the next one, as well, and ends at its limit', async () => {
  const pool = new WorkerPool({ logger });
  pool.warm();
  try {
    const a = await record(pool, 'first', { TESSERA_WORKER_REUSE: '2' });
    expect(a.r.info.status).toBe('available');
    expect(a.pid).toBeDefined();
    // Back in the pool, first in line, alive and idle.
    expect(pool.sparePids[0]).toBe(a.pid);
    expect(alive(a.pid!)).toBe(true);
    // Idle a while: waiting for a recording is not a stall of the server (UpstreamClock).
    await new Promise((r) => setTimeout(r, 2500));
    const b = await record(pool, 'second', { TESSERA_WORKER_REUSE: '2' });
    expect(b.r.info.status).toBe('available');
    expect(b.pid).toBe(a.pid);
    expect(b.r.recording.stats.upstreamStalledMs ?? 0).toBeLessThan(1000);
    expectWhole(a.out, a.r.wallMs);
    expectWhole(b.out, b.r.wallMs);
    // Its second use was its last: it exits instead of waiting again.
    const until = performance.now() + 5000;
    while (alive(a.pid!) && performance.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(alive(a.pid!)).toBe(false);
    expect(pool.sparePids).not.toContain(a.pid);
  } finally {
    pool.close();
  }
});

test('workerReuse 1: every recording gets a new process', async () => {
  const pool = new WorkerPool({ logger });
  pool.warm();
  try {
    const a = await record(pool, 'once-a', { TESSERA_WORKER_REUSE: '1' });
    const b = await record(pool, 'once-b', { TESSERA_WORKER_REUSE: '1' });
    expect(a.r.info.status).toBe('available');
    expect(b.r.info.status).toBe('available');
    expect(b.pid).not.toBe(a.pid);
    expect(alive(a.pid!)).toBe(false);
    expectWhole(b.out, b.r.wallMs);
  } finally {
    pool.close();
  }
});

test('workerSpares 2: two recordings started together both run in warm spares, whole', async () => {
  const config = loadConfig({ TESSERA_WORKER_SPARES: '2' });
  const pool = new WorkerPool({ logger, spares: config.workerSpares });
  pool.warm();
  try {
    await pool.whenReady();
    const warm = [...pool.sparePids];
    expect(warm).toHaveLength(2);
    const [a, b] = await Promise.all([record(pool, 'spares-a'), record(pool, 'spares-b')]);
    expect(a.r.info.status).toBe('available');
    expect(b.r.info.status).toBe('available');
    // Each ran in one of the processes that waited before either started.
    expect([a.pid, b.pid].sort()).toEqual([...warm].sort());
    expectWhole(a.out, a.r.wallMs);
    expectWhole(b.out, b.r.wallMs);
    // Both workers back first in line, then the spares made again 2 s after the takes, kept to
    // one more than `spares` in all.
    expect(pool.sparePids.slice(0, 2).sort()).toEqual([...warm].sort());
    expect(pool.sparePids).toHaveLength(3);
  } finally {
    pool.close();
  }
});

test('workerSpares 0: no process waits before a recording, which still runs whole', async () => {
  const config = loadConfig({ TESSERA_WORKER_SPARES: '0' });
  const pool = new WorkerPool({ logger, spares: config.workerSpares });
  pool.warm();
  try {
    await new Promise((r) => setTimeout(r, 500));
    expect(pool.sparePids).toEqual([]);
    const a = await record(pool, 'no-spare');
    expect(a.r.info.status).toBe('available');
    expectWhole(a.out, a.r.wallMs);
    // Its worker ended well, so it waits for the next recording (reuse), the only one waiting.
    expect(pool.sparePids).toEqual([a.pid]);
  } finally {
    pool.close();
  }
});
