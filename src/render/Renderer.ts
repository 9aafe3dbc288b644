import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { planEpochs, planSources, WAITING_SOURCE, type PlanEpoch, type PlanSource, type PlanTrack } from '../../compositor/renderPlan';
import { encoderSettingsOf, faststartRemuxArgs } from '../../compositor/ffmpegArgs';
import type { GridPreset } from '../../compositor/presets';
import { AudioEncoder } from '../pipeline/AudioEncoder';
import { BLOCK_SAMPLES, Mixer, SAMPLE_RATE } from '../pipeline/audio';
import { EpochEncoder } from '../pipeline/EpochEncoder';
import { FfmpegProcess } from '../pipeline/FfmpegProcess';
import { renderNameCard } from '../pipeline/placeholder';
import { TILE_SIZE } from '../pipeline/RecordingSources';
import { SpeakerDetector } from '../pipeline/SpeakerDetector';
import type { Manifest } from '../pipeline/types';
import { Mp4Muxer } from '../storage/Mp4Muxer';
import { TesseraError } from '../errors';
import type { Config } from '../config';
import type { Logger } from '../logger';
import type { TrackInfo } from '../tracks/TrackWriter';
import { TrackAudioReader } from './TrackAudioReader';
import { TrackVideoReader } from './TrackVideoReader';

/** What a render takes from the configuration: the live recorder's encoder and tile settings. */
export type RenderSettings = Pick<Config, 'video' | 'audioBitrate' | 'x264Preset' | 'x264Tune' | 'x264Params' | 'fragmentMs' | 'keyframeMs' | 'fontFile' | 'videoTimeoutMs'>;

export function renderSettingsOf(c: Readonly<Config>): RenderSettings {
  const { video, audioBitrate, x264Preset, x264Tune, x264Params, fragmentMs, keyframeMs, fontFile, videoTimeoutMs } = c;
  return { video, audioBitrate, x264Preset, x264Tune, x264Params, fragmentMs, keyframeMs, fontFile, videoTimeoutMs };
}

export interface RenderOptions {
  /** The recording's manifest (its `tracks`, `video` block and duration). */
  manifest: Manifest;
  /** Local path of a track's file. */
  trackFile: (track: TrackInfo) => string;
  layout: string;
  /** Where the MP4 goes (a local file). */
  out: string;
  presets: Map<string, GridPreset>;
  config: Readonly<RenderSettings>;
  ffmpegPath: string;
  logger: Logger;
  /** Scratch directory (made and removed by the renderer). */
  workDir: string;
  /** Every second or so: video ticks done of the total. */
  onProgress?: (p: { ticks: number; totalTicks: number }) => void;
}

export interface RenderResult {
  durationMs: number;
  bytes: number;
  ticks: number;
  epochs: number;
  /** Media seconds made per wall second. */
  speed: number;
}

/**
 * A render that makes no progress for this long is hung (an FFmpeg that stopped answering): it
 * fails rather than holding the server's one render slot for good. Generous: a render runs at
 * low priority and may be starved by live recordings for a while, which is not a hang.
 */
const STALL_MS = 60_000;

/** Bytes a tile's input may hold queued in Node before the renderer waits for FFmpeg to read. */
const PIPE_QUEUE_FRAMES = 2;

/**
 * A re-render: a recording's tracks composed again with a layout of choice into a new MP4, by
 * the live recorder's own parts run as fast as FFmpeg goes instead of on the wall clock. The
 * tracks are decoded from their files (one FFmpeg each, TrackVideoReader; Opus in process,
 * TrackAudioReader); the audio is mixed by the live Mixer (its levels drive the live
 * SpeakerDetector for the speaker preset); the plan (compositor/renderPlan.ts) says which tiles
 * are on the canvas when, with the live layout math; each layout epoch is an EpochEncoder (the
 * live compositor + x264, same settings), fed one frame per tile per tick: the newest frame of
 * that track at the tick's time, or its name card after the video timeout, as the live pacer
 * does. Pictures and AAC frames are placed by tick and sample position (Mp4Muxer), so lip sync
 * and the duration follow from the timestamps alone; the result is rewritten with its index
 * first (+faststart) since it is not live.
 */
export async function renderRecording(o: RenderOptions): Promise<RenderResult> {
  const t0 = performance.now();
  const m = o.manifest;
  const preset = o.presets.get(o.layout);
  if (!preset) throw new TesseraError('REC_ERR_UNKNOWN_LAYOUT', `unknown layout "${o.layout}"; known: ${[...o.presets.keys()].join(', ')}`);
  const tracks = (m.tracks ?? []).filter((t) => t.startedAt && t.packets > 0);
  if (!tracks.length) throw new TesseraError('REC_ERR_NO_TRACKS', `recording ${m.id} has no tracks to render from (record with tracks: true)`);
  const { width, height, fps } = m.video;
  const totalTicks = m.video.frames ?? Math.round(((m.durationMs ?? 0) * fps) / 1000);
  if (!totalTicks) throw new TesseraError('REC_ERR_NO_TRACKS', `recording ${m.id} has no duration to render`);
  const log = o.logger.child({ recordingId: m.id, render: o.layout });
  fs.mkdirSync(o.workDir, { recursive: true });
  const sources = planSources({ tracks: tracks as PlanTrack[], fps, totalTicks, recordingEndedAt: m.endedAt });
  const trackById = new Map(tracks.map((t) => [t.id, t]));
  const enc = new AudioEncoder({ ffmpegPath: o.ffmpegPath, audioBitrate: o.config.audioBitrate, logger: log.child({ proc: 'aenc' }) });
  const readers = new Map<string, TrackVideoReader>();
  const epochsAlive = new Set<EpochEncoder>();
  let stopWatchdog = () => undefined as void;
  let fd: number | null = null;
  try {
    // 1. Audio: mixed as live, its levels deciding the speaker; AAC kept for the muxer.
    const aac: { pos: number; frame: Buffer }[] = [];
    enc.on('packet', (frame, pos) => aac.push({ pos, frame }));
    const speakers = await mixAudio({ sources, trackById, trackFile: o.trackFile, fps, totalTicks, enc, speaker: preset.kind === 'speaker', logger: log });
    const audioExit = await enc.finish();
    if (audioExit.code !== 0) throw new TesseraError('REC_ERR_ENCODER_DIED', `audio encoder failed (code ${audioExit.code}): ${audioExit.stderr}`);

    // 2. The plan, and the name cards the live recording would show.
    const epochs = planEpochs({ preset, width, height, fps, totalTicks, sources, speakers });
    log.info({ sources: sources.length, epochs: epochs.length, speakerChanges: speakers.length, ticks: totalTicks, audioMs: Math.round(performance.now() - t0) }, 'render planned');
    const cards = new Map<string, Buffer>();
    await Promise.all([
      ...sources.map(async (s) => cards.set(s.id, await renderNameCard(o.ffmpegPath, TILE_SIZE[s.kind], s.kind === 'screen' ? `${s.name} (screen)` : s.name, o.config.fontFile, log))),
      renderNameCard(o.ffmpegPath, TILE_SIZE.camera, 'Waiting for participants', o.config.fontFile, log).then((c) => cards.set(WAITING_SOURCE, c)),
    ]);

    // 3. Video: epoch by epoch, into the muxer with the audio.
    const tmp = path.join(o.workDir, 'render.fmp4');
    fd = fs.openSync(tmp, 'w');
    const out = fd;
    const muxer = new Mp4Muxer({ fps, width, height, fragmentMs: o.config.fragmentMs, onSegment: (s) => fs.writeSync(out, s.data) });
    let audioNext = 0;
    const totalSamples = Math.round((totalTicks * SAMPLE_RATE) / fps);
    const muxVideo = (tick: number, au: Buffer, key: boolean) => {
      muxer.video(tick, au, key);
      const until = Math.min(totalSamples, Math.round(((tick + 1) * SAMPLE_RATE) / fps));
      while (audioNext < aac.length && aac[audioNext].pos < until) muxer.audio(aac[audioNext].pos, aac[audioNext++].frame);
    };
    const sourceById = new Map(sources.map((s) => [s.id, s]));
    const settings = encoderSettingsOf(o.config, { width, height, fps });
    let lastProgress = performance.now();
    let failure: Error | null = null;
    // Each epoch puts out one picture per tick fed, in order; they go to the muxer in epoch order
    // (the next epoch's first pictures wait while the last one's encoder drains).
    const outputs: { epoch: PlanEpoch; done: boolean; comp: EpochEncoder | null }[] = epochs.map((epoch) => ({ epoch, done: false, comp: null }));
    let flushAt = 0;
    const pending: Map<number, { au: Buffer; key: boolean }[]> = new Map();
    let emitted = 0; // AUs handed to the muxer in the epoch being flushed
    const deliver = (e: number, au: Buffer, key: boolean) => {
      activity = performance.now();
      if (e === flushAt) {
        muxVideo(outputs[e].epoch.fromTick + emitted++, au, key);
        return;
      }
      const list = pending.get(e) ?? [];
      list.push({ au, key });
      pending.set(e, list);
    };
    const epochFinished = (e: number) => {
      outputs[e].done = true;
      while (flushAt < outputs.length && outputs[flushAt].done) {
        const expected = outputs[flushAt].epoch.toTick - outputs[flushAt].epoch.fromTick;
        if (emitted !== expected) failure ??= new TesseraError('REC_ERR_ENCODER_DIED', `a layout epoch put out ${emitted} pictures for ${expected} ticks`);
        flushAt++;
        emitted = 0;
        for (const { au, key } of pending.get(flushAt) ?? []) muxVideo(outputs[flushAt].epoch.fromTick + emitted++, au, key);
        pending.delete(flushAt);
      }
    };
    const start = (e: number): EpochEncoder => {
      const out = outputs[e];
      if (out.comp) return out.comp;
      const tiles = out.epoch.tiles.map((id) => {
        const s = sourceById.get(id);
        const size = TILE_SIZE[s?.kind ?? 'camera'];
        return { sourceId: id, name: s?.name ?? '', w: size.w, h: size.h };
      });
      const comp = new EpochEncoder({ ffmpegPath: o.ffmpegPath, layout: out.epoch.layout, tiles, fps, background: preset.background, fontFile: o.config.fontFile, workDir: o.workDir, settings, logger: log.child({ proc: 'epoch' }) });
      out.comp = comp;
      epochsAlive.add(comp);
      comp.on('frame', (au, key) => deliver(e, au, key));
      comp.on('exit', (exit) => {
        epochsAlive.delete(comp);
        if (exit.code !== 0) failure ??= new TesseraError('REC_ERR_ENCODER_DIED', `a layout epoch's encoder failed (${exit.kind}, code ${exit.code}): ${exit.stderr}`);
        epochFinished(e);
      });
      return comp;
    };
    const frameFor = async (id: string, tick: number): Promise<Buffer> => {
      const s = sourceById.get(id);
      const card = cards.get(id)!;
      if (!s?.video) return card;
      let r = readers.get(s.video.id);
      if (!r) {
        r = new TrackVideoReader({ ffmpegPath: o.ffmpegPath, file: o.trackFile(trackById.get(s.video.id)!), startMs: s.video.start, size: TILE_SIZE[s.kind], background: preset.background, logger: log.child({ proc: 'tdec', trackId: s.video.id }) });
        readers.set(s.video.id, r);
      }
      return (await r.frameAt((tick * 1000) / fps, o.config.videoTimeoutMs)) ?? card;
    };
    let activity = performance.now();
    const watchdog = setInterval(() => {
      if (performance.now() - activity < STALL_MS || failure) return;
      failure = new TesseraError('REC_ERR_ENCODER_STALLED', `the render made no progress for ${STALL_MS / 1000} s`);
      for (const c of epochsAlive) c.kill();
      for (const r of readers.values()) void r.close();
    }, 5000);
    watchdog.unref();
    stopWatchdog = () => clearInterval(watchdog);
    const exits: Promise<unknown>[] = [];
    for (let e = 0; e < epochs.length && !failure; e++) {
      const epoch = epochs[e];
      const comp = start(e);
      // The next epoch's FFmpeg starts while this one is fed: its start-up is hidden.
      if (e + 1 < epochs.length) start(e + 1);
      // Decoders of tiles that are gone are stopped.
      for (const [trackId, r] of readers) {
        const owner = sources.find((s) => s.video?.id === trackId);
        if (owner && owner.toTick <= epoch.fromTick) {
          void r.close();
          readers.delete(trackId);
        }
      }
      for (let tick = epoch.fromTick; tick < epoch.toTick && !failure; tick++) {
        const frames: Buffer[] = [];
        for (const id of epoch.tiles) frames.push(await frameFor(id, tick));
        comp.write(frames);
        await drained(comp);
        activity = performance.now();
        if (o.onProgress && performance.now() - lastProgress > 1000) {
          lastProgress = performance.now();
          o.onProgress({ ticks: tick, totalTicks });
        }
      }
      exits.push(comp.end());
    }
    await Promise.all(exits);
    if (failure) throw failure;
    await muxer.finalize();
    fs.closeSync(fd);
    fd = null;
    if (muxer.error) throw new TesseraError('REC_ERR_SINK', `muxing the render failed: ${muxer.error.message}`);
    if (muxer.ticks !== totalTicks) throw new TesseraError('REC_ERR_ENCODER_DIED', `the render holds ${muxer.ticks} of ${totalTicks} pictures`);

    // 4. Index first, for players that read it over HTTP.
    const remux = new FfmpegProcess({ ffmpegPath: o.ffmpegPath, args: faststartRemuxArgs(tmp, o.out), stopBy: 'eof', logger: log.child({ proc: 'remux' }) });
    remux.stdin.end();
    const rx = await remux.exited;
    if (rx.code !== 0) throw new TesseraError('REC_ERR_SINK', `writing the render failed (code ${rx.code}): ${rx.stderr}`);
    const bytes = fs.statSync(o.out).size;
    const wallS = (performance.now() - t0) / 1000;
    const durationMs = Math.round((totalTicks * 1000) / fps);
    log.info({ durationMs, bytes, wallMs: Math.round(wallS * 1000), epochs: epochs.length }, 'render finished');
    return { durationMs, bytes, ticks: totalTicks, epochs: epochs.length, speed: durationMs / 1000 / wallS };
  } finally {
    stopWatchdog();
    if (fd !== null) fs.closeSync(fd);
    enc.kill();
    for (const r of readers.values()) void r.close();
    for (const c of epochsAlive) c.kill();
    fs.rmSync(o.workDir, { recursive: true, force: true });
  }
}

/** Waits while a tile input of `comp` holds more than PIPE_QUEUE_FRAMES frames FFmpeg has not read. */
async function drained(comp: EpochEncoder): Promise<void> {
  for (const [i, p] of (comp.proc.pipes as Writable[]).entries()) {
    const limit = PIPE_QUEUE_FRAMES * ((comp.tiles[i].w * comp.tiles[i].h * 3) / 2);
    while (!comp.proc.hasExited && p.writableLength > limit) await Promise.race([once(p, 'drain'), comp.proc.exited]);
  }
}

/**
 * The audio pass: every audio track decoded and placed on the recording's clock, mixed block by
 * block by the live Mixer into the AAC encoder. Its per-source levels go to the live
 * SpeakerDetector (every 25 blocks, as live); returns its decisions, ms on the recording's clock.
 */
async function mixAudio(o: {
  sources: PlanSource[];
  trackById: Map<string, TrackInfo>;
  trackFile: (t: TrackInfo) => string;
  fps: number;
  totalTicks: number;
  enc: AudioEncoder;
  speaker: boolean;
  logger: Logger;
}): Promise<{ atMs: number; id: string }[]> {
  const totalBlocks = Math.ceil((o.totalTicks * SAMPLE_RATE) / o.fps / BLOCK_SAMPLES);
  const audio = o.sources.flatMap((s) => s.audio.map((t) => ({ source: s, track: t, reader: null as TrackAudioReader | null, done: false })));
  const mixer = new Mixer();
  const detector = new SpeakerDetector();
  const decisions: { atMs: number; id: string }[] = [];
  const stdin = o.enc.proc.stdin;
  const present = (s: PlanSource, ms: number) => {
    const tick = Math.floor((ms * o.fps) / 1000);
    return s.fromTick <= tick && tick < s.toTick;
  };
  try {
    for (let b = 0; b < totalBlocks; b++) {
      const ms = (b * BLOCK_SAMPLES * 1000) / SAMPLE_RATE;
      const ids: string[] = [];
      const blocks: (Buffer | null)[] = [];
      for (const a of audio) {
        if (a.done || !present(a.source, ms)) {
          if (a.reader && !present(a.source, ms) && ms >= (a.source.toTick * 1000) / o.fps) {
            a.reader.close();
            a.reader = null;
            a.done = true;
          }
          continue;
        }
        if (!a.reader) {
          a.reader = new TrackAudioReader({ file: o.trackFile(o.trackById.get(a.track.id)!), startMs: a.track.start, logger: o.logger.child({ trackId: a.track.id }) });
          await a.reader.open();
        }
        ids.push(a.source.id);
        blocks.push(await a.reader.block(b));
      }
      const { pcm, levels } = mixer.mix(blocks);
      if (!stdin.write(pcm)) await Promise.race([once(stdin, 'drain'), o.enc.proc.exited]);
      if (o.enc.proc.hasExited) throw new TesseraError('REC_ERR_ENCODER_DIED', `audio encoder died: ${o.enc.proc.stderrTail}`);
      if (o.speaker) {
        detector.addLevels(ids, levels);
        if ((b + 1) % 25 === 0) {
          const id = detector.decide(ms + 20, (sid) => o.sources.some((s) => s.id === sid && present(s, ms)));
          if (id) decisions.push({ atMs: ms + 20, id });
        }
      }
    }
  } finally {
    for (const a of audio) a.reader?.close();
  }
  return decisions;
}
