/**
 * The alert rules proven live: Debian's real `prometheus` scrapes a running Tessera server every
 * second and evaluates k8s/alerts.rules.yml, unchanged, every second. The server records one
 * room at a time (MAX_RECORDINGS=1); a real recording of a real werift participant fills it, and
 * Prometheus shows the capacity alerts pending, then gone once the recording is `available`.
 * The scrape also carries the process metrics (CPU, memory, event-loop lag) and every metric
 * the rules read.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { observeRecorder } from '../../src/metrics';
import { Recorder } from '../../src/pipeline/Recorder';
import type { RecordingInfo } from '../../src/pipeline/types';
import type { WeriftParticipant } from '../../src/rtc/WeriftParticipant';
import { TesseraServer } from '../../src/server/TesseraServer';
import { FileStorage } from '../../src/storage/FileStorage';
import { alertRules, metricNames, RULES_FILE } from '../helpers/promql';
import { participant, sleep } from '../helpers/rtc-harness';

jest.setTimeout(90_000);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `tessera-prom-${process.pid}-`));
const PROMETHEUS = process.env.PROMETHEUS_PATH ?? 'prometheus';
let server: TesseraServer;
let storage: FileStorage;
let peer: WeriftParticipant | undefined;
let listener: WeriftParticipant | undefined;
let prom: ChildProcess | undefined;
let promUrl = '';
const promLog: string[] = [];

interface Alert { labels: Record<string, string>; state: 'pending' | 'firing'; value: string }
interface RuleGroup { rules: { name: string; health: string; lastError?: string; lastEvaluation: string; type: string }[] }

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function api<T>(p: string): Promise<T> {
  const res = await fetch(`${promUrl}${p}`);
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`${p}: ${body.error}`);
  return body.data;
}

/** Polls `probe` until it returns a value (not undefined), or fails naming `what` and Prometheus's log. */
async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}; prometheus said:\n${promLog.slice(-20).join('\n')}`);
    await sleep(250);
  }
}

const alerts = async () => (await api<{ alerts: Alert[] }>('/api/v1/alerts')).alerts;
const query = async (q: string) => (await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(q)}`)).result;

async function startPrometheus(target: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const dir = path.join(tmp, `prom-${attempt}`);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'prometheus.yml'), [
      'global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }',
      `rule_files: [${JSON.stringify(RULES_FILE)}]`,
      'scrape_configs:',
      `  - { job_name: tessera, static_configs: [{ targets: [${JSON.stringify(target)}] }] }`,
      '',
    ].join('\n'));
    const child = spawn(PROMETHEUS, [
      `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    prom = child;
    let exited = false;
    child.on('exit', () => { exited = true; });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => promLog.push(...d.trim().split('\n')));
    promUrl = `http://127.0.0.1:${port}`;
    const ready = await eventually('prometheus to start', async () => {
      if (exited) return false;
      const res = await fetch(`${promUrl}/-/ready`);
      return res.ok ? true : undefined;
    });
    if (ready) return;
    // Only a port taken between freePort() and Prometheus's bind is worth another try.
    if (attempt < 2 && promLog.some((l) => /address already in use/.test(l))) continue;
    throw new Error(`prometheus exited:\n${promLog.join('\n')}`);
  }
}

async function stopPrometheus(): Promise<void> {
  const child = prom;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(t);
}

/** The recordings' x264 preset: the level label of an undegraded recording. */
let x264Preset = '';

beforeAll(async () => {
  const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1', RECORDINGS_DIR: path.join(tmp, 'rec'), MAX_RECORDINGS: '1', VIDEO_WIDTH: '640', VIDEO_HEIGHT: '360', VIDEO_FPS: '15' });
  x264Preset = config.x264Preset;
  storage = new FileStorage(config.recordingsDir);
  const recorder = new Recorder({ config, storage, logger });
  observeRecorder(recorder); // as src/main.ts does
  server = new TesseraServer({ config, recorder, logger, rtc: { connectTimeoutMs: 15_000 } });
  await server.listen(0, '127.0.0.1');
});

afterAll(async () => {
  await stopPrometheus();
  await peer?.close();
  await listener?.close();
  await server?.drain();
  await storage?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('Prometheus with the project rules: capacity alerts pending while the only recording slot is used, gone after', async () => {
  const target = new URL(server.url).host;
  const room = 'prom-room';
  peer = await participant(server.url, room, 'Red', 1);
  await peer.join();
  await startPrometheus(target);

  // Scraped, and every rule evaluated against the live series without an error.
  await eventually('the first scrape', async () => {
    const { activeTargets } = await api<{ activeTargets: { health: string; scrapeUrl: string; lastError: string }[] }>('/api/v1/targets');
    return activeTargets.length === 1 && activeTargets[0].health === 'up' ? true : undefined;
  });
  const rules = await eventually('every rule evaluated', async () => {
    const { groups } = await api<{ groups: RuleGroup[] }>('/api/v1/rules');
    const all = groups.flatMap((g) => g.rules);
    return all.length > 0 && all.every((r) => Date.parse(r.lastEvaluation) > 0) ? all : undefined;
  });
  expect(rules.map((r) => r.name).sort()).toEqual(alertRules().map((r) => r.alert).sort());
  expect(rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError}`)).toEqual([]);
  expect(await alerts()).toEqual([]); // an idle server alerts nothing

  // The process metrics, as Prometheus stored them.
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes']) {
    const r = await query(`${name}{job="tessera"}`);
    expect({ name, series: r.length }).toEqual({ name, series: 1 });
    expect(Number(r[0].value[1])).toBeGreaterThanOrEqual(0);
  }
  expect(Number((await query('process_cpu_seconds_total{job="tessera"}'))[0].value[1])).toBeGreaterThan(0);
  expect(Number((await query('process_resident_memory_bytes{job="tessera"}'))[0].value[1])).toBeGreaterThan(50e6);

  // Fill the server: its one recording slot.
  const started = await fetch(`${server.url}/api/rooms/${room}/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  expect(started.status).toBe(201);
  const t0 = Date.now();
  const pending = await eventually('the capacity alerts pending', async () => {
    const a = await alerts();
    return ['TesseraNearCapacity', 'TesseraPodFull'].every((n) => a.some((x) => x.labels.alertname === n)) ? a : undefined;
  });
  // eslint-disable-next-line no-console
  console.log(`capacity alerts pending ${Date.now() - t0} ms after the recording started`);
  const byName = Object.fromEntries(pending.map((a) => [a.labels.alertname, a]));
  // Pending, not firing: their `for` (5 and 10 minutes) is what keeps a short peak quiet.
  expect(byName.TesseraNearCapacity).toMatchObject({ state: 'pending', labels: { severity: 'warning' } });
  expect(Number(byName.TesseraNearCapacity.value)).toBe(1);
  expect(byName.TesseraPodFull).toMatchObject({ state: 'pending', labels: { severity: 'warning', instance: target, job: 'tessera' } });
  // Nothing fires. TesseraEncoderLag may be pending here: FFmpeg's speed is media time over
  // wall time since the compositor started, below 1 for the first seconds of any recording (its
  // startup counts); its `for: 2m` is what keeps that quiet.
  expect(pending.filter((a) => a.state === 'firing')).toEqual([]);
  const others = pending.filter((a) => !['TesseraNearCapacity', 'TesseraPodFull'].includes(a.labels.alertname));
  expect(others.map((a) => a.labels.alertname).filter((n) => n !== 'TesseraEncoderLag')).toEqual([]);
  // eslint-disable-next-line no-console
  if (others.length) console.log(`also pending: ${others.map((a) => `${a.labels.alertname} (${a.value})`).join(', ')}`);

  // What the alerts say is what the server does: a second room's recording is refused.
  listener = await participant(server.url, `${room}-2`, 'Green', 2, { publish: false });
  await listener.join();
  const other = await fetch(`${server.url}/api/rooms/${room}-2/recording`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  expect({ status: other.status, body: await other.json() }).toMatchObject({ status: 503, body: { error: { code: 'REC_ERR_CAPACITY' } } });
  await sleep(2000); // some seconds of real recording

  // The recording's CPU cost and its degradation level (bounded labels: a level, not an id).
  const own = await eventually('the recording\'s cost and level', async () => {
    const cores = await query('tessera_recording_cpu_cores_max');
    const level = await query(`tessera_recordings_at_level{distinct_fps="15",preset="${x264Preset}"} == 1`);
    return cores.length === 1 && level.length === 1 && Number(cores[0].value[1]) > 0 ? Number(cores[0].value[1]) : undefined;
  });
  expect(own).toBeLessThan(2); // VIDEO_FPS is 15 here, and an idle machine sheds nothing
  // What admission counts as taken, and the cost model as measured here: a small recording costs
  // less than the configured model, which stays (factor 1).
  const committed = await eventually('admission\'s committed share', async () => {
    const c = await query('tessera_cpu_committed_ratio');
    return c.length === 1 && Number(c[0].value[1]) > 0 ? Number(c[0].value[1]) : undefined;
  });
  expect(committed).toBeLessThan(0.9);
  expect((await query('tessera_recording_cost_factor')).map((x) => x.value[1])).toEqual(['1']);

  const stopped = await fetch(`${server.url}/api/rooms/${room}/recording`, { method: 'DELETE' });
  const rec = (await stopped.json()) as RecordingInfo;
  expect({ status: stopped.status, recording: rec.status }).toEqual({ status: 200, recording: 'available' });
  await eventually('the capacity alerts gone', async () => ((await alerts()).length === 0 ? true : undefined));
  // An ended recording is no longer counted at its level, nor as taking CPU.
  await eventually('nothing committed', async () => ((await query('tessera_cpu_committed_ratio == 0')).length === 1 ? true : undefined));
  await eventually('the level count back to 0', async () => ((await query(`tessera_recordings_at_level{distinct_fps="15",preset="${x264Preset}"} == 0`)).length === 1 ? true : undefined));

  // What the recording left in Prometheus: one available (counted once), none failed, and its
  // time to available. A scrape or two after the end, so a late second count would show.
  await eventually('the result counted', async () => ((await query('tessera_recordings_total{job="tessera",result="available"} > 0')).length ? true : undefined));
  await sleep(2500);
  const results = Object.fromEntries((await query('tessera_recordings_total{job="tessera"}')).map((s) => [s.metric.result, s.value[1]]));
  expect(results).toEqual({ available: '1', failed: '0' });
  expect(Number((await query('tessera_time_to_available_seconds_count{job="tessera"}'))[0].value[1])).toBe(1);

  // Every metric the rules read is one this server exposes (names as Prometheus stored them).
  const stored = new Set(await api<string[]>('/api/v1/label/__name__/values'));
  const missing = alertRules().flatMap((r) => metricNames(r.expr).filter((n) => !stored.has(n)).map((n) => `${r.alert}: ${n}`));
  expect(missing).toEqual([]);
});
