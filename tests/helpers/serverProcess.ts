/** The server as its own process (`npm start`, or the built image's `node dist/src/main.js`). */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RecordingInfo } from '../../src/pipeline/types';

export const root = path.join(__dirname, '../..');

export interface Server {
  child: ChildProcess;
  url: string;
  dir: string;
  exit: Promise<number | null>;
  logs: string[];
}

/**
 * Starts `entry` (default src/main.ts through tsx) with a fresh recordings directory on a free
 * port; resolves once it listens.
 */
export async function startProcess(entry: string | undefined, env: Record<string, string>): Promise<Server> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-drain-'));
  const args = entry ? [entry] : ['--import', 'tsx', path.join(root, 'src/main.ts')];
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, NODE_ENV: 'production', LOG_LEVEL: 'info', PORT: '0', HOST: '127.0.0.1', RECORDINGS_DIR: dir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        logs.push(line);
        try {
          const j = JSON.parse(line) as { msg?: string; port?: number };
          if (j.msg === 'listening') resolve(`http://127.0.0.1:${j.port}`);
        } catch {
          /* not JSON */
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
    void exit.then((code) => reject(new Error(`server exited (${code}) before listening:\n${logs.join('\n')}`)));
  });
  return { child, url, dir, exit, logs };
}

export function manifests(dir: string): RecordingInfo[] {
  const out: RecordingInfo[] = [];
  for (const room of fs.readdirSync(dir)) {
    const d = path.join(dir, room);
    if (!fs.statSync(d).isDirectory() || room.startsWith('.')) continue;
    for (const f of fs.readdirSync(d).filter((f) => f.endsWith('.json'))) out.push(JSON.parse(fs.readFileSync(path.join(d, f), 'utf8')) as RecordingInfo);
  }
  return out;
}

/** The exit code, or 'timeout' after ms (the timer is cleared either way). */
export async function exitWithin(s: Server, ms: number): Promise<number | null | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  try {
    return await Promise.race([s.exit, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

