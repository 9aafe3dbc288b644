import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { RecordingStats } from './Recording';
import { WorkerRecording } from '../worker/WorkerRecording';
import { WorkerPool } from '../worker/WorkerPool';
import { loadPresets, type GridPreset } from '../../compositor/presets';
import { resolveFfmpegPath } from './ffmpegPath';
import { TesseraError } from '../errors';
import { admit } from './admission';
import { availableCores } from './cpu';
import type { Config } from '../config';
import type { Logger } from '../logger';
import type { MediaSource } from '../media/types';
import type { MediaRange, Storage } from '../storage/Sink';
import type { RecordingInfo } from './types';

/** Hooks the metrics module attaches to (kept optional so the pipeline has no metrics dependency). */
export interface RecorderObserver {
  recordingEnded?(info: RecordingInfo, stats: RecordingStats): void;
  statsDelta?(delta: { framesDuplicated: number; framesDropped: number; workerRestarts: number }): void;
  /** Every few seconds while recordings run: the lowest distinct pictures a second among them. */
  distinctFps?(lowest: number): void;
  /** Every few seconds: the cores the recordings' workers use now, and this process's budget. */
  recordingCores?(cores: number, budget: number): void;
  /** Every few seconds while recordings run: the slowest encoder's media seconds per wall second. */
  encoderSpeed?(ratio: number): void;
}

interface Events {
  state: [RecordingInfo];
}

/**
 * The process's recordings: at most one active per room, at most `MAX_RECORDINGS` at once.
 * Finished recordings are listed from the storage's manifests, so a restart forgets nothing.
 */
export class Recorder extends EventEmitter<Events> {
  readonly capacity: number;
  /** Cores this process may use (CPU_BUDGET, else its cgroup quota or CPUs). */
  readonly cpuBudget: number;
  readonly presets: Map<string, GridPreset>;
  readonly ffmpegPath: string;
  readonly storage: Storage;
  observer: RecorderObserver = {};
  #config: Readonly<Config>;
  #log: Logger;
  #active = new Map<string, WorkerRecording>(); // by room
  #pool: WorkerPool;
  #recent = new Map<string, RecordingInfo>(); // by id, finished in this process
  #draining = false;
  #workBase: string;
  #lastStats = new Map<string, { framesDuplicated: number; framesDropped: number; workerRestarts: number }>();
  #statsTimer: NodeJS.Timeout;

  constructor(opts: { config: Readonly<Config>; storage: Storage; logger: Logger }) {
    super();
    this.#config = opts.config;
    this.storage = opts.storage;
    this.#log = opts.logger.child({ component: 'recorder' });
    this.capacity = opts.config.maxRecordings;
    this.cpuBudget = opts.config.cpuBudget ?? availableCores();
    this.presets = loadPresets();
    this.ffmpegPath = resolveFfmpegPath(opts.config);
    this.#workBase = path.join(os.tmpdir(), `tessera-${process.pid}`);
    this.#pool = new WorkerPool({ logger: this.#log });
    this.#statsTimer = setInterval(() => this.#publishStats(), 5000);
    this.#statsTimer.unref();
  }

  /** Counters move continuously (not only when a recording ends), so alerts see trouble live. */
  #publishStats(): void {
    let slowest = Infinity, lowestFps = Infinity, cores = 0;
    for (const rec of this.#active.values()) {
      cores += rec.stats.cores;
      this.#publishDelta(rec);
      if (rec.stats.encoderSpeed > 0) slowest = Math.min(slowest, rec.stats.encoderSpeed);
      if (rec.stats.distinctFps > 0) lowestFps = Math.min(lowestFps, rec.stats.distinctFps);
    }
    if (slowest !== Infinity) this.observer.encoderSpeed?.(slowest);
    this.observer.distinctFps?.(lowestFps === Infinity ? 0 : lowestFps);
    this.observer.recordingCores?.(cores, this.cpuBudget);
  }

  #publishDelta(rec: WorkerRecording): void {
    const last = this.#lastStats.get(rec.id) ?? { framesDuplicated: 0, framesDropped: 0, workerRestarts: 0 };
    const now = { framesDuplicated: rec.stats.framesDuplicated, framesDropped: rec.stats.framesDropped, workerRestarts: rec.workerRestarts };
    const d = { framesDuplicated: now.framesDuplicated - last.framesDuplicated, framesDropped: now.framesDropped - last.framesDropped, workerRestarts: now.workerRestarts - last.workerRestarts };
    this.#lastStats.set(rec.id, now);
    if (d.framesDuplicated || d.framesDropped || d.workerRestarts) this.observer.statsDelta?.(d);
  }

  get activeCount(): number {
    return this.#active.size;
  }

  get draining(): boolean {
    return this.#draining;
  }

  activeFor(roomId: string): WorkerRecording | undefined {
    return this.#active.get(roomId);
  }

  /** Start recording a room. Resolves once the pipeline is spawned (status `starting`). */
  start(roomId: string, opts: { layout?: string; sources?: MediaSource[] } = {}): WorkerRecording {
    if (this.#draining) throw new TesseraError('REC_ERR_DRAINING', 'this server is shutting down and accepts no new recordings');
    if (this.#active.has(roomId)) throw new TesseraError('REC_ERR_ALREADY_RECORDING', `room ${roomId} is already being recorded`);
    if (this.#active.size >= this.capacity) throw new TesseraError('REC_ERR_CAPACITY', `this server records at most ${this.capacity} rooms at once`);
    const wanted = opts.sources?.length ?? 0;
    const fit = admit({ budgetCores: this.cpuBudget, usable: this.#config.cpuUsable, model: this.#config.recordingCores, active: [...this.#active.values()].map((r) => r.sourceCount), wanted });
    if (!fit.ok) {
      throw new TesseraError('REC_ERR_CAPACITY', `this server has CPU for no more recordings: a recording of ${wanted} costs about ${fit.cost.toFixed(2)} cores, ${Math.max(0, fit.free).toFixed(2)} of its ${this.cpuBudget.toFixed(2)} are left; try again later or on another server`);
    }
    const layout = opts.layout ?? 'grid';
    if (!this.presets.has(layout)) throw new TesseraError('REC_ERR_UNKNOWN_LAYOUT', `unknown layout "${layout}"; known: ${[...this.presets.keys()].join(', ')}`);
    const id = `rec_${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}_${crypto.randomBytes(4).toString('hex')}`;
    const rec = new WorkerRecording({
      id,
      roomId,
      layout,
      pool: this.#pool,
      config: this.#config,
      ffmpegPath: this.ffmpegPath,
      sink: this.storage.createSink(id, roomId),
      logger: this.#log,
      workDir: path.join(this.#workBase, id),
    });
    this.#active.set(roomId, rec);
    // A recording ends once: a state message from its worker can still arrive after
    // `available`; it is passed on, but the recording is not counted again.
    let ended = false;
    rec.on('state', (info) => {
      if ((info.status === 'available' || info.status === 'failed') && !ended) {
        ended = true;
        this.#publishDelta(rec);
        this.#lastStats.delete(rec.id);
        this.#active.delete(roomId);
        this.#recent.set(info.id, info);
        this.observer.recordingEnded?.(info, rec.stats);
      }
      this.emit('state', info);
    });
    for (const s of opts.sources ?? []) rec.addSource(s);
    rec.start().catch((err) => this.#log.error({ err, recordingId: id }, 'recording failed to start'));
    return rec;
  }

  /** Every recording: active ones, then stored manifests (newest first). */
  async list(roomId?: string): Promise<RecordingInfo[]> {
    const byId = new Map<string, RecordingInfo>();
    for (const m of (await this.storage.listManifests()) as RecordingInfo[]) if (m && typeof m.id === 'string') byId.set(m.id, strip(m));
    for (const [id, info] of this.#recent) if (!byId.has(id)) byId.set(id, info);
    for (const rec of this.#active.values()) byId.set(rec.id, rec.info());
    return [...byId.values()]
      .filter((r) => !roomId || r.roomId === roomId)
      .sort((a, b) => (a.startedAt < b.startedAt ? 1 : a.startedAt > b.startedAt ? -1 : 0));
  }

  async get(id: string): Promise<RecordingInfo | undefined> {
    for (const rec of this.#active.values()) if (rec.id === id) return rec.info();
    return (await this.list()).find((r) => r.id === id);
  }

  async openMedia(id: string, range?: MediaRange) {
    const info = await this.get(id);
    if (!info) return null;
    return this.storage.openMedia(info.location, range);
  }

  async presignMedia(id: string): Promise<string | null> {
    const info = await this.get(id);
    if (!info || !this.storage.presignMedia) return null;
    return this.storage.presignMedia(info.location);
  }

  async delete(id: string): Promise<void> {
    const info = await this.get(id);
    if (!info) throw new TesseraError('REC_ERR_NOT_FOUND', `no recording ${id}`);
    if (info.status !== 'available' && info.status !== 'failed') {
      throw new TesseraError('REC_ERR_ALREADY_RECORDING', `recording ${id} is still ${info.status}; stop it first`);
    }
    await this.storage.deleteRecording(info.location);
    this.#recent.delete(id);
  }

  /** SIGTERM: accept nothing new, stop (drain) every recording, wait for them. */
  async drain(): Promise<void> {
    this.#draining = true;
    await Promise.all([...this.#active.values()].map((r) => r.stop()));
    this.close();
  }

  /** Start a spare worker now, so the first recording does not wait for a process start. */
  warmUp(): void {
    this.#pool.warm();
  }

  /** Stops the spare workers and timers (after drain(), or in tests). Idempotent. */
  close(): void {
    clearInterval(this.#statsTimer);
    this.#pool.close();
  }
}

/** A stored manifest as the API's Recording (the manifest's extra fields stay in storage). */
function strip(m: RecordingInfo): RecordingInfo {
  const { id, roomId, status, startedAt, endedAt, availableAt, durationMs, bytes, layout, location, participants, error } = m;
  const out: RecordingInfo = { id, roomId, status, startedAt, layout, location, participants };
  if (endedAt) out.endedAt = endedAt;
  if (availableAt) out.availableAt = availableAt;
  if (durationMs !== undefined) out.durationMs = durationMs;
  if (bytes !== undefined) out.bytes = bytes;
  if (error) out.error = error;
  return out;
}
