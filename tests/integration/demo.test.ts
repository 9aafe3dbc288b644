/** `npm run demo` exactly as the README gives it, run as a user would (a child process). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { computeLayout } from '../../compositor/layout';
import { loadPresets } from '../../compositor/presets';
import { participantStyle } from '../../src/media/SyntheticClip';
import { colourDistance, decodeErrors, frameAt, meanColour, probe } from '../helpers/media';

jest.setTimeout(120_000);
const root = path.resolve(__dirname, '..', '..');

test('npm run demo -- --participants 4 --seconds 12 --churn --out x.mp4 records the churned grid', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-demo-'));
  try {
    const out = path.join(dir, 'x.mp4');
    const r = spawnSync('npm', ['run', '--silent', 'demo', '--', '--participants', '4', '--seconds', '12', '--churn', '--out', out], { cwd: root, encoding: 'utf8', env: { ...process.env, LOG_LEVEL: 'warn' }, timeout: 90_000 });
    expect(r.status).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(summary).toMatchObject({ status: 'available', participants: 4 });
    expect(decodeErrors(out)).toBe('');
    const p = probe(out);
    expect(Math.abs(p.videoDuration - 12)).toBeLessThan(0.25);
    // At the end participant 2 has left and 4 has joined: 1, 3, 4 in the grid.
    const layout = computeLayout(loadPresets().get('grid')!, { width: 1280, height: 720, tiles: [1, 3, 4].map((i) => ({ id: `p${i}`, kind: 'camera' as const })) });
    const img = frameAt(out, 11.5);
    for (const i of [1, 3, 4]) expect(colourDistance(meanColour(img, layout.tiles.find((t) => t.id === `p${i}`)!.video), participantStyle(i).rgb)).toBeLessThan(45);
    expect(fs.existsSync(path.join(dir, 'x.json'))).toBe(true);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('bad demo arguments get a clear message and exit code 2', () => {
  const r = spawnSync('npm', ['run', '--silent', 'demo', '--', '--participants', 'lots'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/--participants: not a number: lots[\s\S]*usage: npm run demo/);
});
