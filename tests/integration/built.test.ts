/**
 * The image's build steps, run here (no Docker engine): `npm run build` to an app directory laid
 * out as the image lays it out (dist/, grid-presets/, node_modules), then the compiled server —
 * compiled worker included — records a call. The image runs exactly this, as a non-root user,
 * with only the recordings directory and /tmp writable.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WeriftParticipant } from '../../src/rtc/WeriftParticipant';
import { participant, sleep, until } from '../helpers/rtc-harness';
import { decodeErrors, probe } from '../helpers/media';
import { exitWithin, manifests, root, startProcess, type Server } from '../helpers/serverProcess';

jest.setTimeout(180_000);

let app: string;
let server: Server | null = null;
const people: WeriftParticipant[] = [];

beforeAll(() => {
  app = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-app-'));
  execFileSync(process.execPath, [path.join(root, 'scripts/build.js'), path.join(app, 'dist')], { cwd: root, stdio: 'pipe' });
  fs.cpSync(path.join(root, 'grid-presets'), path.join(app, 'grid-presets'), { recursive: true });
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(app, 'node_modules'));
});

afterAll(async () => {
  await Promise.allSettled(people.splice(0).map((p) => p.close()));
  if (server && server.child.exitCode === null) server.child.kill('SIGKILL');
  if (server) fs.rmSync(server.dir, { recursive: true, force: true });
  fs.rmSync(app, { recursive: true, force: true });
});

test('the compiled server starts, records a call with its compiled worker, and drains', async () => {
  const t0 = Date.now();
  server = await startProcess(path.join(app, 'dist/src/main.js'), {});
  const startMs = Date.now() - t0;
  expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  // tsx is not used: nothing of the TypeScript toolchain is loaded by the built server
  expect(server.logs.join('\n')).not.toMatch(/tsx|ts-node/);

  const a = await participant(server.url, 'built', 'Ada', 1);
  const b = await participant(server.url, 'built', 'Bo', 2);
  people.push(a, b);
  for (const p of [a, b]) expect((await p.join()).ok).toBe(true);
  expect((await a.request('record:start', {})).ok).toBe(true);
  await until(() => a.recording?.status === 'recording', 20_000, 'recording');
  await sleep(4000);
  for (const p of [b, a]) await p.leave();
  server.child.kill('SIGTERM');
  expect(await exitWithin(server, 60_000)).toBe(0);

  const [m] = manifests(server.dir);
  expect(m.status).toBe('available');
  const file = path.join(server.dir, m.roomId, `${m.id}.mp4`);
  expect(probe(file).formatDuration).toBeGreaterThan(3);
  expect(decodeErrors(file)).toBe('');
  process.stdout.write(`built server: listening ${startMs} ms after spawn\n`);
});
