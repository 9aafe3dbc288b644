/**
 * What a recording (src/pipeline/Recording.ts, in its worker) is given and what it reports: its
 * options, where its encoded media goes, how it continues a dead worker's recording, and its
 * counters.
 */
import type { GridPreset } from '../../compositor/presets';
import type { Config } from '../config';
import type { Logger } from '../logger';
import type { RecordingLocation } from '../media/types';
import type { LedgerResume } from './RecordingLedger';
import type { Manifest } from './types';

/**
 * Where a recording's encoded media goes: the server, which muxes it into the MP4 and writes the
 * sink (see src/worker). Ticks and sample positions count from the recording's start, across
 * workers, so a worker that continues a recording continues its timeline.
 */
export interface RecordingOutput {
  location: RecordingLocation;
  /** One picture: an H.264 access unit for video tick `tick` (it lasts until the next one). */
  video(tick: number, au: Buffer, key: boolean): void;
  /** One AAC frame starting at sample `pos` (48 kHz). */
  audio(pos: number, frame: Buffer): void;
  /** The manifest so far (the server keeps it for crash recovery and a continuing worker). */
  checkpoint(manifest: Manifest): void;
  /** Everything was sent: make the MP4 complete with this manifest. */
  finish(manifest: Manifest): Promise<{ bytes: number }>;
  /** The recording failed here: keep what can be kept. */
  abort(reason: Error, manifest: Manifest): Promise<void>;
}
/** Counters the Recorder turns into metrics. */
export interface RecordingStats {
  framesDuplicated: number;
  framesDropped: number;
  compositorRestarts: number;
  decoderRestarts: number;
  encoderSpeed: number;
  /** Distinct pictures a second the recording makes now (fps / stride; lower when CPU is short). */
  distinctFps: number;
  /** x264's level now: the configured preset, or `economy` (its economy analysis, when CPU is short). */
  preset: string;
  /** The tiles now: `full`, or `small` (half size in their cells, the levels past economy when CPU is short). */
  tiles?: 'full' | 'small';
  /** Ticks repeated on purpose because composition could not keep up. */
  framesShed: number;
  /** Cores the recording's process tree used over the last seconds (measured by its worker). */
  cores: number;
  /**
   * Wall time (ms) in which nothing came from the server to the worker beyond the heartbeat's
   * slack: the server's (or the worker's) event loop stalled. Not counted as a source's quiet
   * time (see UpstreamClock).
   */
  upstreamStalledMs?: number;
  /** x264's PSNR of the last finished epoch (dB; only with TESSERA_X264_PSNR). */
  psnrDb?: number;
}

/**
 * A recording continued by a new worker after the previous one died: its clock keeps the first
 * worker's origin (so the file stays on wall time and the ticks missed meanwhile are made at
 * once, from name cards), and what the manifest knew is carried over.
 */
export interface RecordingResume extends LedgerResume {
  /** Date.now() of tick `tickBase`: the first tick this worker makes. */
  t0Wall: number;
  /** Video frames the recording already holds (the first worker's whole fragments). */
  tickBase: number;
}

export interface RecordingOptions {
  id: string;
  roomId: string;
  layout: string;
  presets: Map<string, GridPreset>;
  config: Readonly<Config>;
  ffmpegPath: string;
  out: RecordingOutput;
  logger: Logger;
  workDir: string;
  resume?: RecordingResume;
  /**
   * Start degraded (13⅓ distinct pictures a second with economy) because the recording is known
   * not to fit its CPU at full quality; it steps back to full quality as CPU allows.
   */
  startShort?: boolean;
  /**
   * The clock quietness is judged on: whether a source's video is live (else its name card) and
   * whether an epoch in charge is hung. The worker passes its UpstreamClock, which stands still
   * while nothing comes from the server; wall time (performance.now()) by default.
   */
  quietNow?: () => number;
}
