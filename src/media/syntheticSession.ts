import { admit, recordingCost, startsShort } from '../pipeline/admission';
import { availableCores } from '../pipeline/cpu';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { WorkerRecording } from '../worker/WorkerRecording';
import { WorkerPool } from '../worker/WorkerPool';
import { FileSink } from '../storage/FileSink';
import { FileTrackTarget } from '../storage/FileTrackTarget';
import { tracksPrefixOf } from '../storage/trackKeys';
import { SyntheticSource } from './SyntheticSource';
import { makeSyntheticClip, type SyntheticClip } from './SyntheticClip';
import type { Config } from '../config';
import type { Logger } from '../logger';
import type { RecordingInfo } from '../pipeline/types';
import type { VideoCodec } from './types';

export interface SyntheticEvent {
  /** Seconds after the recording starts. */
  at: number;
  action: (ctx: SessionContext) => void;
}

export interface SessionContext {
  recording: WorkerRecording;
  sources: Map<number, SyntheticSource>;
  /** `startFrame`: where in its clip the newcomer starts (SyntheticSource). */
  join(index: number, opts?: { startFrame?: number }): void;
  leave(index: number): void;
}

export interface SyntheticSessionOptions {
  participants: number;
  seconds: number;
  out: string;
  layout?: string;
  churn?: boolean;
  /** Participants (1-based) present at the start; default all (or all but the last with churn). */
  initial?: number[];
  codec?: (index: number) => VideoCodec;
  /** Length of each participant's looped clip (whole seconds; its one keyframe starts each loop). */
  clipSeconds?: number;
  events?: SyntheticEvent[];
  /** Also write every participant's tracks (into `<out>.tracks/`, as file storage lays them out). */
  tracks?: boolean;
  config: Readonly<Config>;
  ffmpegPath: string;
  logger: Logger;
  /** Workers to record with (one is made for the session when absent). */
  pool?: WorkerPool;
  hooks?: { beforeStart?: (recording: WorkerRecording, sources: Map<number, SyntheticSource>) => void };
}

export interface SyntheticSessionResult {
  info: RecordingInfo;
  /** Wall-clock ms the recording captured (its clock's start to the stop request). */
  wallMs: number;
  recording: WorkerRecording;
  /** ms offsets (from start) of every join and leave, by participant index. */
  timeline: { index: number; joinedMs?: number; leftMs?: number }[];
  clips: Map<number, SyntheticClip>;
}

export function participantName(i: number): string {
  return `Participant ${i}`;
}

/**
 * Records synthetic participants through the real pipeline (decoders, pacer, compositor,
 * encoder, file sink) without WebRTC: `npm run demo`, the integration tests and the benchmark.
 * With `churn`, participant N joins at S/3 and participant 2 leaves at 2S/3 (docs/testing.md).
 */
export async function runSyntheticSession(o: SyntheticSessionOptions): Promise<SyntheticSessionResult> {
  // A warm worker, as a server keeps one: the recording starts without a process start.
  const pool = o.pool ?? new WorkerPool({ logger: o.logger, nice: o.config.workerNice, spares: o.config.workerSpares });
  const ownPool = !o.pool;
  pool.warm();
  const clips = new Map<number, SyntheticClip>();
  await Promise.all(
    Array.from({ length: o.participants }, (_, k) => k + 1).map(async (i) => {
      clips.set(i, await makeSyntheticClip(o.ffmpegPath, { index: i, codec: o.codec?.(i) ?? 'vp8', seconds: o.clipSeconds }, o.logger));
    }),
  );
  const all = Array.from({ length: o.participants }, (_, k) => k + 1);
  const initial = o.initial ?? (o.churn && o.participants > 1 ? all.slice(0, -1) : all);
  const events: SyntheticEvent[] = [...(o.events ?? [])];
  if (o.churn && o.participants > 1) {
    events.push({ at: o.seconds / 3, action: (c) => c.join(o.participants) });
    if (o.participants > 2) events.push({ at: (2 * o.seconds) / 3, action: (c) => c.leave(2) });
  }
  const id = `demo_${crypto.randomBytes(4).toString('hex')}`;
  const out = path.resolve(o.out);
  // The server's admission decision for a recording alone in its process: above the budget
  // (a small CPU quota), it starts degraded.
  const fit = admit({ budgetCores: o.config.cpuBudget ?? availableCores(), usable: o.config.cpuUsable, charged: [], cost: recordingCost(o.config.recordingCores, initial.length) });
  if (startsShort(fit)) o.logger.warn({ cost: fit.cost, free: fit.free }, 'recording admitted above the CPU budget (the only one): it starts degraded');
  const recording = new WorkerRecording({
    id,
    roomId: 'demo',
    layout: o.layout ?? 'grid',
    pool,
    config: o.config,
    ffmpegPath: o.ffmpegPath,
    sink: new FileSink(path.dirname(out), path.basename(out)),
    tracks: o.tracks ? (_meta, file) => new FileTrackTarget(path.dirname(out), tracksPrefixOf(path.basename(out)) + file) : undefined,
    logger: o.logger,
    workDir: path.join(os.tmpdir(), `tessera-${process.pid}`, id),
    startShort: startsShort(fit),
  });
  const sources = new Map<number, SyntheticSource>();
  const timeline = all.map((index) => ({ index }) as SyntheticSessionResult['timeline'][number]);
  let t0 = 0;
  const ctx: SessionContext = {
    recording,
    sources,
    join(i, opts) {
      if (sources.has(i)) return;
      const s = new SyntheticSource({ id: `p${i}`, name: participantName(i), clip: clips.get(i)!, startFrame: opts?.startFrame }).start();
      sources.set(i, s);
      recording.addSource(s);
      timeline[i - 1].joinedMs = t0 ? performance.now() - t0 : 0;
    },
    leave(i) {
      const s = sources.get(i);
      if (!s) return;
      sources.delete(i);
      s.close(); // the recording hears `close` and removes the tile
      timeline[i - 1].leftMs = performance.now() - t0;
    },
  };
  for (const i of initial) ctx.join(i);
  const timers: NodeJS.Timeout[] = [];
  o.hooks?.beforeStart?.(recording, sources);
  await recording.start();
  t0 = performance.now();
  try {
    for (const e of events) timers.push(setTimeout(() => e.action(ctx), e.at * 1000));
    await new Promise((r) => timers.push(setTimeout(r, o.seconds * 1000)));
    const info = await recording.stop();
    return { info, wallMs: recording.capturedMs, recording, timeline, clips };
  } finally {
    for (const t of timers) clearTimeout(t);
    for (const s of sources.values()) s.close();
    if (ownPool) pool.close();
  }
}
