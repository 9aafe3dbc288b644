/**
 * The re-render's cost for the benchmark: a recording of `n` synthetic participants made with
 * tracks, then composed again from them (grid, the same x264 settings) in this process, unpaced.
 * renderSpeed: media seconds made per wall second; renderCores: CPU of the whole tree while
 * rendering (this process and its FFmpeg children), per wall second.
 */
import fs from 'node:fs';
import path from 'node:path';
import { logger } from '../src/logger';
import type { Config } from '../src/config';
import { runSyntheticSession } from '../src/media/syntheticSession';
import type { Manifest } from '../src/pipeline/types';
import type { WorkerPool } from '../src/worker/WorkerPool';
import { renderRecording } from '../src/render/Renderer';
import { loadPresets } from '../compositor/presets';

export async function measureRender(o: { ffmpeg: string; dir: string; n: number; seconds: number; config: Readonly<Config>; pool?: WorkerPool; cpuSeconds: () => number }) {
  const out = path.join(o.dir, 'render-source.mp4');
  const rec = await runSyntheticSession({ participants: o.n, seconds: o.seconds, out, tracks: true, config: o.config, ffmpegPath: o.ffmpeg, logger, pool: o.pool });
  if (rec.info.status !== 'available') throw new Error(`render source recording ${rec.info.status}`);
  const manifest = JSON.parse(fs.readFileSync(out.replace(/\.mp4$/, '.json'), 'utf8')) as Manifest;
  const cpu0 = o.cpuSeconds();
  const t0 = performance.now();
  const r = await renderRecording({
    manifest,
    trackFile: (t) => path.join(o.dir, t.location.key),
    layout: 'grid',
    out: path.join(o.dir, 'render.mp4'),
    presets: loadPresets(),
    config: o.config,
    ffmpegPath: o.ffmpeg,
    logger,
    workDir: path.join(o.dir, 'render-work'),
  });
  const wall = (performance.now() - t0) / 1000;
  return { renderSpeed: r.durationMs / 1000 / wall, renderCores: (o.cpuSeconds() - cpu0) / wall, renderMediaSeconds: r.durationMs / 1000 };
}
