/**
 * A re-render's own process (forked by RenderJobs): renders the job it is sent over IPC and
 * reports progress and the result. Kept out of the server so the composition's frame shuffling
 * and audio decoding never delay the SFU's event loop, and run at a lower CPU priority (set by
 * the parent, inherited by its FFmpeg children) so live recordings always come first.
 */
import { loadPresets } from '../../compositor/presets';
import { toTesseraError } from '../errors';
import { logger } from '../logger';
import type { Manifest } from '../pipeline/types';
import { renderRecording, type RenderSettings } from './Renderer';

export interface RenderJobMessage {
  manifest: Manifest;
  layout: string;
  out: string;
  workDir: string;
  trackFiles: Record<string, string>;
  settings: RenderSettings;
  ffmpegPath: string;
}

export type RenderChildMessage =
  | { type: 'progress'; ticks: number; totalTicks: number }
  | { type: 'done'; durationMs: number; bytes: number; ticks: number; epochs: number; speed: number }
  | { type: 'error'; error: { code: string; message: string } };

function send(m: RenderChildMessage): Promise<void> {
  return new Promise((resolve) => process.send!(m, undefined, {}, () => resolve()));
}

process.once('message', (job: RenderJobMessage) => {
  const log = logger.child({ component: 'render', recordingId: job.manifest.id });
  renderRecording({
    manifest: job.manifest,
    trackFile: (t) => job.trackFiles[t.id],
    layout: job.layout,
    out: job.out,
    workDir: job.workDir,
    presets: loadPresets(),
    config: job.settings,
    ffmpegPath: job.ffmpegPath,
    logger: log,
    onProgress: (p) => void send({ type: 'progress', ...p }),
  }).then(
    (r) => send({ type: 'done', ...r }),
    (err: unknown) => send({ type: 'error', error: toTesseraError(err).toJSON() }),
  ).finally(() => process.exit(0));
});
// The server went away: nothing to report to.
process.on('disconnect', () => process.exit(1));
