/**
 * The project compiled as the image runs it (`scripts/build.js`), in a temporary app directory
 * laid out like the image's (dist/, grid-presets/, node_modules/). Recordings' workers started
 * from it run compiled JavaScript: under tsx each worker also transpiles its modules when it
 * starts (1–2 CPU-seconds, which in a 0.45-core quota is seconds of the recording's time) and
 * holds the TypeScript loader (~30 MB). The benchmark uses it so it measures what production
 * runs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

export function buildCompiledApp(): { workerEntry: string; remove: () => void } {
  const app = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-app-'));
  const root = path.join(__dirname, '../..');
  try {
    execFileSync(process.execPath, [path.join(root, 'scripts/build.js'), path.join(app, 'dist')], { cwd: root, stdio: 'ignore' });
  } catch (err) {
    fs.rmSync(app, { recursive: true, force: true });
    throw err;
  }
  fs.cpSync(path.join(root, 'grid-presets'), path.join(app, 'grid-presets'), { recursive: true });
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(app, 'node_modules'));
  return { workerEntry: path.join(app, 'dist/src/worker/main.js'), remove: () => fs.rmSync(app, { recursive: true, force: true }) };
}
