/**
 * ICE beyond loopback, with real network stacks (Linux network namespaces joined by veth links,
 * iptables NAT; see tests/helpers/netns.ts). Each case meets two `npm run participant` processes
 * through a server that is not on their loopback, records them through the REST API and checks
 * the MP4 has both colours, and that media crossed the network both ways (SFU).
 *
 * - LAN: one participant in its own namespace (another machine on a /24), one on the host where
 *   the server runs, listening on 0.0.0.0.
 * - Container: the server as the image runs it (`node dist/src/main.js`) inside a namespace with a private address (a pod), reachable only as
 *   a Kubernetes hostPort/NodePort would make it: DNAT from a node address (PUBLIC_IP) for the
 *   HTTP port and the RTC_MIN_PORT..RTC_MAX_PORT range. Direct UDP to the pod's own address is
 *   dropped, so media flows only if the server announces PUBLIC_IP and binds inside its range.
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
import { signRoomToken } from '../../src/server/auth';
import { TesseraServer } from '../../src/server/TesseraServer';
import { FileStorage } from '../../src/storage/FileStorage';
import { allFrames, colourDistance, decodeErrors, hexRgb, colourShare } from '../helpers/media';
import { buildCompiledApp } from '../helpers/compiledApp';
import { addHost, removeHost, removeRules, ruleCounter, sh, shQuiet } from '../helpers/netns';
import { sleep, until } from '../helpers/rtc-harness';

jest.setTimeout(180_000);

const SECRET = 'netns-secret-0123456789abcdef-0123456789';
const API_TOKEN = 'netns-api-token-0123456789-0123456789';
const root = path.join(__dirname, '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-net-'));
// Short unique names (interface names are at most 15 characters).
const tag = String(process.pid % 100000);
const LAN = { ns: `tsl${tag}`, link: `tl${tag}`, subnet: '10.77.0' };
const POD = { ns: `tsp${tag}`, link: `tp${tag}`, subnet: '10.78.0' };
const NODE_IP = '198.51.100.7'; // TEST-NET-2: the "node" address clients reach the pod through
const COMMENT = `tessera-test-${tag}`;
const children: ChildProcess[] = [];

/** When each child's output has been read to the end ('close', not 'exit': a last log line can still be in the pipe at 'exit'). */
const closed = new WeakMap<ChildProcess, Promise<void>>();

function track(c: ChildProcess): ChildProcess {
  closed.set(c, new Promise((resolve) => c.once('close', () => resolve())));
  children.push(c);
  return c;
}

async function kill(c: ChildProcess): Promise<void> {
  if (c.exitCode === null && c.signalCode === null) {
    c.kill('SIGTERM');
    setTimeout(() => c.kill('SIGKILL'), 10_000).unref();
  }
  await closed.get(c);
}

// The participants, the recordings' workers and the pod's server run compiled, as the image
// runs them: under tsx each also transpiled its modules at start (1–2 CPU-seconds each), on the
// two cores the server and the recording share; a loaded CI run once kept 4.4 s of a 6-s recording.
let app: ReturnType<typeof buildCompiledApp> | null = null;
let dist = '';
const workerEntryBefore = process.env.TESSERA_WORKER_ENTRY;
beforeAll(() => {
  app = buildCompiledApp();
  dist = path.join(path.dirname(app.workerEntry), '../..');
  process.env.TESSERA_WORKER_ENTRY = app.workerEntry;
});

afterAll(async () => {
  await Promise.all(children.map(kill));
  if (workerEntryBefore === undefined) delete process.env.TESSERA_WORKER_ENTRY;
  else process.env.TESSERA_WORKER_ENTRY = workerEntryBefore;
  app?.remove();
  for (const chain of ['OUTPUT', 'INPUT']) removeRules('nat', chain, COMMENT);
  removeRules('filter', 'OUTPUT', COMMENT);
  removeHost(LAN.ns, LAN.link);
  removeHost(POD.ns, POD.link);
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** `npm run participant`, optionally inside a namespace; its JSON log lines are collected. */
function startParticipant(url: string, room: string, i: number, ns?: string): { proc: ChildProcess; lines: string[]; publishMs: number } {
  const token = signRoomToken({ room, name: `P${i}`, role: 'guest', exp: Math.floor(Date.now() / 1000) + 600 }, SECRET);
  const cmd = [process.execPath, path.join(dist, 'src/cli/participant.js'), '--url', url, '--room', room, '--index', String(i), '--name', `P${i}`, '--token', token, '--seconds', '120', '--size', '320x180', '--fps', '15'];
  const proc = ns ? spawn('ip', ['netns', 'exec', ns, ...cmd], { cwd: root, env: { ...process.env, LOG_LEVEL: 'info' } }) : spawn(cmd[0], cmd.slice(1), { cwd: root, env: { ...process.env, LOG_LEVEL: 'info' } });
  const lines: string[] = [];
  const me = { proc, lines, publishMs: -1 };
  let buf = '';
  let joinedAt = 0;
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
    // Join acknowledged (the first state report) → publishing (media connected, sending).
    for (const l of parts) {
      if (!joinedAt && l.includes('"recording state"')) joinedAt = Date.now();
      if (me.publishMs < 0 && l.includes('"joined and publishing"')) me.publishMs = Date.now() - joinedAt;
    }
  });
  proc.stderr!.on('data', (d: Buffer) => process.stderr.write(`[participant ${i}${ns ? ' in ' + ns : ''}] ${d}`));
  track(proc);
  return me;
}

/** The participant's own account, logged as it leaves: video frames it received from others. */
async function leaveAndReport(p: { proc: ChildProcess; lines: string[] }): Promise<{ pub: string; sub: string; framesFromOthers: number }> {
  await kill(p.proc);
  const last = p.lines.map((l) => { try { return JSON.parse(l) as { msg?: string; pub?: string; sub?: string; received?: Record<string, { frames: number }> }; } catch { return {}; } }).find((j) => j.msg === 'leaving');
  if (!last) throw new Error(`participant left no report; its log: ${p.lines.slice(-5).join('\n')}`);
  const frames = Object.entries(last.received ?? {}).filter(([k]) => k.endsWith(':camera')).reduce((n, [, v]) => n + v.frames, 0);
  return { pub: last.pub!, sub: last.sub!, framesFromOthers: frames };
}


/** Record `room` for `ms` through the REST API at `base`; returns the MP4's frames and the info. */
async function record(base: string, room: string, ms: number): Promise<{ info: RecordingInfo; file: string }> {
  const auth = { authorization: `Bearer ${API_TOKEN}` };
  const post = await fetch(`${base}/api/rooms/${room}/recording`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{}' });
  expect(post.status).toBe(201);
  await sleep(ms);
  const del = await fetch(`${base}/api/rooms/${room}/recording`, { method: 'DELETE', headers: auth });
  expect(del.status).toBe(200);
  const info = (await del.json()) as RecordingInfo;
  expect({ status: info.status, error: info.error }).toEqual({ status: 'available', error: undefined });
  const file = path.join(tmp, `${room}.mp4`);
  const media = await fetch(`${base}/api/recordings/${info.id}/media`, { headers: auth });
  expect(media.status).toBe(200);
  fs.writeFileSync(file, Buffer.from(await media.arrayBuffer()));
  return { info, file };
}

/**
 * Both participants' colours in ≥ 90% of the frames after the first 1.5 s, and at least 3 s of
 * them. The callers record 8 s: under a loaded CI run a 6-s recording once kept 4.4 s (its start
 * took the rest), one frame short of the 3 s.
 */
function expectBothColours(file: string): void {
  expect(decodeErrors(file)).toBe('');
  const { frames, fps } = allFrames(file, 8);
  const window = frames.slice(Math.round(1.5 * fps));
  expect(window.length).toBeGreaterThan(3 * fps);
  for (const i of [1, 2]) {
    const seen = window.filter((f) => colourShare(f, participantStyle(i).hex) > 0.02).length;
    expect({ i, seen: seen >= window.length * 0.9 }).toEqual({ i, seen: true });
  }
}

test('LAN: a participant on another network stack meets one on the server host, both recorded, media both ways', async () => {
  const lan = addHost(LAN.ns, LAN.link, LAN.subnet);
  const config = loadConfig({ ...process.env, PORT: '0', HOST: '0.0.0.0', AUTH_SECRET: SECRET, API_TOKEN, RECORDINGS_DIR: path.join(tmp, 'lan'), VIDEO_WIDTH: '640', VIDEO_HEIGHT: '360', VIDEO_FPS: '15' });
  const storage = new FileStorage(config.recordingsDir);
  const server = new TesseraServer({ config, recorder: new Recorder({ config, storage, logger }), logger });
  const { port } = await server.listen(0, '0.0.0.0');
  try {
    const room = 'lan';
    const far = startParticipant(`http://${lan.hostIp}:${port}`, room, 1, LAN.ns);
    const near = startParticipant(`http://127.0.0.1:${port}`, room, 2);
    const publishing = () => server.conference.room(room)?.participants().filter((p) => p.publishing.length >= 2).length ?? 0;
    await until(() => publishing() === 2, 90_000, 'both participants publishing');
    await sleep(1000);
    const { file } = await record(`http://127.0.0.1:${port}`, room, 8000);
    expectBothColours(file);
    const [f, n] = [await leaveAndReport(far), await leaveAndReport(near)];
    // eslint-disable-next-line no-console
    console.log(`LAN: publishing took ${far.publishMs} ms (far) and ${near.publishMs} ms; far side received ${f.framesFromOthers} frames, near side ${n.framesFromOthers}`);
    // Not a speed target: werift's fallback STUN query to Google stalls gathering 5 s where it
    // cannot be answered (see withoutDefaultStun); this namespace has no DNS, like a closed network.
    expect(far.publishMs).toBeLessThan(4500);
    expect(f).toEqual(expect.objectContaining({ pub: 'connected', sub: 'connected' }));
    expect(n).toEqual(expect.objectContaining({ pub: 'connected', sub: 'connected' }));
    expect(f.framesFromOthers).toBeGreaterThan(60);
    expect(n.framesFromOthers).toBeGreaterThan(60);
  } finally {
    await server.drain();
    await storage.close();
  }
});

test('container: the server in a pod behind DNAT of PUBLIC_IP and the RTC port range; nothing reaches the pod address directly', async () => {
  const pod = addHost(POD.ns, POD.link, POD.subnet);
  // The node's address, on the host side of the pod's link (it goes away with the link).
  sh('ip', ['addr', 'add', `${NODE_IP}/32`, 'dev', `${POD.link}h`]);
  const [minPort, maxPort, httpPort] = [41700, 41739, 18080];
  // Like a hostPort/NodePort: the node address forwards the HTTP port and the RTC range to the pod.
  // Locally generated packets (the participants run on the node) pass nat/OUTPUT.
  const c = ['-m', 'comment', '--comment', COMMENT];
  sh('iptables', ['-t', 'nat', '-A', 'OUTPUT', '-d', NODE_IP, '-p', 'tcp', '--dport', String(httpPort), ...c, '-j', 'DNAT', '--to-destination', `${pod.nsIp}:8080`]);
  sh('iptables', ['-t', 'nat', '-A', 'OUTPUT', '-d', NODE_IP, '-p', 'udp', '--dport', `${minPort}:${maxPort}`, ...c, '-j', 'DNAT', '--to-destination', pod.nsIp]);
  // What the pod sends out leaves from the node address (SNAT, as a CNI masquerades), and the
  // pod's own address is not reachable from outside for media (as from a client's network).
  sh('iptables', ['-t', 'nat', '-A', 'INPUT', '-s', pod.nsIp, '-p', 'udp', ...c, '-j', 'SNAT', '--to-source', NODE_IP]);
  sh('iptables', ['-A', 'OUTPUT', '-d', pod.nsIp, '-p', 'udp', '-m', 'conntrack', '!', '--ctstate', 'DNAT', ...c, '-j', 'DROP']);

  const env = {
    ...process.env,
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    HOST: '0.0.0.0',
    PORT: '8080',
    PUBLIC_IP: NODE_IP,
    RTC_MIN_PORT: String(minPort),
    RTC_MAX_PORT: String(maxPort),
    AUTH_SECRET: SECRET,
    API_TOKEN,
    RECORDINGS_DIR: path.join(tmp, 'pod'),
    VIDEO_WIDTH: '640',
    VIDEO_HEIGHT: '360',
    VIDEO_FPS: '15',
  };
  const server = spawn('ip', ['netns', 'exec', POD.ns, process.execPath, path.join(dist, 'src/main.js')], { cwd: path.dirname(dist), env, stdio: ['ignore', 'ignore', 'pipe'] });
  track(server);
  server.stderr!.on('data', (d: Buffer) => process.stderr.write(`[server in ${POD.ns}] ${d}`));
  const base = `http://${NODE_IP}:${httpPort}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ok = await fetch(`${base}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (server.exitCode !== null || Date.now() > deadline) throw new Error(`server in the pod not ready (exit ${server.exitCode})`);
    await sleep(300);
  }

  const room = 'pod';
  const a = startParticipant(base, room, 1);
  const b = startParticipant(base, room, 2);
  const joined = (p: { lines: string[] }) => p.lines.some((l) => l.includes('"joined and publishing"'));
  await until(() => joined(a) && joined(b), 90_000, 'both participants publishing');
  await sleep(2000);
  const { info, file } = await record(base, room, 8000);
  expect(info.participants.map((p) => p.name).sort()).toEqual(['P1', 'P2']);
  expectBothColours(file);
  const [ra, rb] = [await leaveAndReport(a), await leaveAndReport(b)];
  const dropped = ruleCounter('filter', 'OUTPUT', COMMENT);
  const forwarded = ruleCounter('nat', 'OUTPUT', COMMENT);
  // eslint-disable-next-line no-console
  console.log(`container: publishing took ${a.publishMs} and ${b.publishMs} ms; participants received ${ra.framesFromOthers} and ${rb.framesFromOthers} frames; ${forwarded} flows forwarded to the pod, ${dropped} packets to its own address dropped`);
  expect(ra).toEqual(expect.objectContaining({ pub: 'connected', sub: 'connected' }));
  expect(rb).toEqual(expect.objectContaining({ pub: 'connected', sub: 'connected' }));
  expect(ra.framesFromOthers).toBeGreaterThan(60);
  expect(rb.framesFromOthers).toBeGreaterThan(60);
  expect(Math.max(a.publishMs, b.publishMs)).toBeLessThan(4500); // see the LAN case
  // Media went through the node address: HTTP plus at least each participant's two media flows.
  expect(forwarded).toBeGreaterThanOrEqual(3);
});
