/**
 * A track that pauses (camera and microphone off for 2 s, then on again) stays one file with the
 * gap carried in its timestamps, resumes at a keyframe, and decodes cleanly; an H.264 camera's
 * track is Matroska with the picture size from its SPS. Synthetic participants through the real
 * recording (worker, FFmpeg) into file storage.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { logger } from '../../src/logger';
import { runSyntheticSession } from '../../src/media/syntheticSession';
import type { TrackInfo } from '../../src/tracks/TrackWriter';
import { DEBIAN_FFMPEG, FFPROBE, decodeErrors } from '../helpers/media';

jest.setTimeout(90_000);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-trackpause-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function packets(file: string): { ms: number; key: boolean }[] {
  const out = execFileSync(FFPROBE, ['-v', 'error', '-select_streams', '0', '-show_entries', 'packet=pts_time,flags', '-of', 'csv=p=0', file], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean).map((l) => ({ ms: Number(l.split(',')[0]) * 1000, key: l.split(',')[1].startsWith('K') }));
}

test('a camera and microphone off for 2 s: one file each, the gap in the timestamps, clean on both sides', async () => {
  const config = loadConfig({ FFMPEG_PATH: DEBIAN_FFMPEG, TESSERA_X264_PRESET: 'ultrafast', VIDEO_WIDTH: '640', VIDEO_HEIGHT: '360' });
  const out = path.join(tmp, 'pause.mp4');
  const r = await runSyntheticSession({
    participants: 2,
    seconds: 7,
    out,
    tracks: true,
    codec: (i) => (i === 2 ? 'h264' : 'vp8'),
    events: [
      { at: 2, action: (c) => Object.assign(c.sources.get(1)!, { videoEnabled: false, audioEnabled: false }) },
      { at: 4, action: (c) => Object.assign(c.sources.get(1)!, { videoEnabled: true, audioEnabled: true }) },
    ],
    config,
    ffmpegPath: DEBIAN_FFMPEG,
    logger,
  });
  expect(r.info.status).toBe('available');
  const tracks = r.info.tracks as TrackInfo[];
  expect(tracks.map((t) => `${t.participantId}:${t.kind}:${t.codec}:${t.container}`).sort()).toEqual(['p1:camera:vp8:webm', 'p1:microphone:opus:webm', 'p2:camera:h264:mkv', 'p2:microphone:opus:webm']);
  for (const t of tracks) {
    const file = path.join(tmp, t.location.key);
    expect({ key: t.location.key, errors: decodeErrors(file) }).toEqual({ key: t.location.key, errors: '' });
    const p = packets(file);
    const ts = p.map((x) => x.ms);
    const gaps = ts.slice(1).map((x, k) => x - ts[k]);
    const longest = Math.max(...gaps);
    if (t.participantId === 'p1') {
      // The 2 s pause is in the timestamps (video resumes at the next keyframe, up to ~0.1 s later).
      expect({ key: t.location.key, gapAbout2s: longest > 1900 && longest < 2600 }).toEqual({ key: t.location.key, gapAbout2s: true });
      // After the pause, video resumes with a keyframe: nothing refers to a picture the file lacks.
      if (t.kind === 'camera') expect(p[gaps.indexOf(longest) + 1].key).toBe(true);
    } else {
      expect(longest).toBeLessThan(200);
    }
    // The file lasts what the manifest says.
    expect(Math.abs(t.start + ts[ts.length - 1] - t.end!)).toBeLessThanOrEqual(t.codec === 'opus' ? 25 : 40);
  }
  const h264 = tracks.find((t) => t.codec === 'h264')!;
  expect({ width: h264.width, height: h264.height }).toEqual({ width: 640, height: 360 });
  const probe = execFileSync(FFPROBE, ['-v', 'error', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', path.join(tmp, h264.location.key)], { encoding: 'utf8' }).trim();
  expect(probe).toBe('640,360');
});
