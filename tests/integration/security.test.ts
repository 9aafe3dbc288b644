/**
 * What a hostile client finds at the HTTP and signalling edges (docs/security.md), tried over
 * real HTTP, socket.io and a real `npm start` process.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { TesseraServer } from '../../src/server/TesseraServer';
import { FakeRecorder } from '../helpers/rtc-fakeRecorder';

jest.setTimeout(60_000);

const ROOT = path.join(__dirname, '..', '..');
const SECRET = 'security-test-secret-0123456789abcdef';

/**
 * `npm start` (tsx src/main.ts) with this environment: its exit code and stderr, or 'listening'
 * (then stopped) if it started serving instead.
 */
function runMain(env: Record<string, string>): Promise<{ code: number | null | 'listening'; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(path.join(ROOT, 'node_modules', '.bin', 'tsx'), ['src/main.ts'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let listening = false;
    const stopGroup = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    };
    const timer = setTimeout(stopGroup, 30_000);
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.on('data', (c: Buffer) => {
      if (!listening && c.toString().includes('"listening"')) {
        listening = true;
        stopGroup();
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: listening ? 'listening' : code, stderr });
    });
  });
}

function externalIPv4(): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new Error('this test needs a non-loopback IPv4 interface');
}

describe('1. the REST API is never open beyond this machine', () => {
  test('a wide HOST without API_TOKEN: the process refuses to start, naming API_TOKEN', async () => {
    const { code, stderr } = await runMain({ HOST: '0.0.0.0', PORT: '0', AUTH_SECRET: SECRET, RECORDINGS_DIR: os.tmpdir() });
    expect(code).toBe(2);
    expect(stderr).toMatch(/API_TOKEN/);
  });

  test('without API_TOKEN, a request from another address is refused even when the socket listens wide', async () => {
    const recorder = new FakeRecorder();
    const server = new TesseraServer({ config: loadConfig({ PORT: '0' }), recorder, logger });
    const { port } = await server.listen(0, '0.0.0.0');
    try {
      const local = await fetch(`http://127.0.0.1:${port}/api/recordings`);
      expect(local.status).toBe(200);
      for (const [method, p] of [['GET', '/api/recordings'], ['POST', '/api/rooms/r1/recording'], ['DELETE', '/api/recordings/rec1']]) {
        const res = await fetch(`http://${externalIPv4()}:${port}${p}`, { method });
        expect({ method, p, status: res.status }).toEqual({ method, p, status: 401 });
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('REC_ERR_UNAUTHORIZED');
      }
    } finally {
      await server.close();
    }
  });
});
