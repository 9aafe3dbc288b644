/**
 * A separate track's writer (`TrackWriter`) over a long call, without a server: what it keeps in
 * memory, and that the file it streams out still decodes and seeks at its end.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEBIAN_FFMPEG, FFPROBE } from '../helpers/media';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-trackwriter-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('TrackWriter', () => {
  test('a long call costs a track its seek index only: 20 minutes of a microphone, the heap grows under 1.5 MB, and the index is at the end of the file', () => {
    // What is kept is one Matroska cue per cluster of about a second (~0.6 KB each, ~0.75 MB
    // here). Keeping anything per packet (60,000 of them) would show above the limit. Measured
    // in a process of its own (see the helper for why).
    const ogg = path.join(dir, 'tone.ogg');
    execFileSync(DEBIAN_FFMPEG, ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=2', '-c:a', 'libopus', '-b:a', '32k', ogg]);
    const file = path.join(dir, 'mic.webm');
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(__dirname, '../helpers/trackwriter-heap-child.ts'), ogg, file], { encoding: 'utf8', timeout: 50_000 });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { grown: number; state: string; packets: number; end: number; error: string | null };
    expect(out).toMatchObject({ state: 'complete', packets: 20 * 60 * 50, end: 20 * 60 * 1000, error: null });
    expect(out.grown).toBeLessThan(1.5e6);
    // The index (Cues, EBML id 1C 53 BB 6B) is in the file's last part, after the last cluster;
    // with it a player starts in the last minute without reading the rest.
    const tail = fs.readFileSync(file).subarray(-200_000);
    const cues = tail.indexOf(Buffer.from([0x1c, 0x53, 0xbb, 0x6b]));
    expect(cues).toBeGreaterThan(0);
    expect(tail.indexOf(Buffer.from([0x1f, 0x43, 0xb6, 0x75]), cues)).toBe(-1); // no cluster after it
    const probe = execFileSync(FFPROBE, ['-v', 'error', '-read_intervals', '1170%+2', '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', file], { encoding: 'utf8' });
    const first = Number(probe.trim().split('\n')[0]);
    expect(first).toBeGreaterThan(1160);
    expect(first).toBeLessThan(1171);
  }, 60_000);
});
