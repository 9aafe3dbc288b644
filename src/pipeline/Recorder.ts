import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { RecordingStats } from './RecordingOptions';
import { WorkerRecording } from '../worker/WorkerRecording';
import { WorkerPool } from '../worker/WorkerPool';
import { loadPresets, type GridPreset } from '../../compositor/presets';
import { resolveFfmpegPath } from './ffmpegPath';
import { TesseraError } from '../errors';
import { admit, committedCores, startsShort } from './admission';
import { CostCalibration } from './CostCalibration';
import { availableCores } from './cpu';
import type { Config } from '../config';
import type { Logger } from '../logger';
import type { MediaSource } from '../media/types';
import { paginate, RecordingIndex, type RecordingPage } from '../storage/RecordingIndex';
import type { MediaRange, Storage } from '../storage/Sink';
import type { RecordingInfo, RenderInfo } from './types';
import { RenderJobs } from '../render/RenderJobs';
import { renderSettingsOf } from '../render/Renderer';

/** Weight of one 5-s reading of the server process's own CPU (a time constant of about 12 s). */
const SERVER_CORES_WEIGHT = 0.4;

/** Hooks the metrics module attaches to (kept optional so the pipeline has no metrics dependency). */
export interface RecorderObserver {
  recordingEnded?(info: RecordingInfo, stats: RecordingStats): void;
  statsDelta?(delta: { framesDuplicated: number; framesDropped: number; workerRestarts: number }): void;
  /** Every few seconds while recordings run: the lowest distinct pictures a second among them. */
  distinctFps?(lowest: number): void;
  /** Every few seconds: the cores the recordings' workers use now, and this process's budget. */
  recordingCores?(cores: number, budget: number): void;
  /** Every few seconds: each running recording's cores and distinct pictures a second now. */
  perRecording?(each: { id: string; roomId: string; cores: number; distinctFps: number; preset: string; tiles?: string }[]): void;
  /** Every few seconds while recordings run: the slowest encoder's media seconds per wall second. */
  encoderSpeed?(ratio: number): void;
  /**
   * Every few seconds, and at each start and end: the cores admission counts as taken by the
   * running recordings, the cores recordings may take (budget × usable share), and the cost
   * model's factor learnt from what recordings measure here (1 = the configured model).
   */
  admission?(committed: number, usableCores: number, factor: number): void;
}

interface Events {
  state: [RecordingInfo];
  /** Retention expired: deleted (file storage) or tagged for the bucket's lifecycle (S3). */
  expired: [RecordingInfo];
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
  /** The stored recordings by id (lookups never scan the storage). */
  readonly index: RecordingIndex;
  /** Re-renders of finished recordings from their tracks (one at a time). */
  readonly renders: RenderJobs;
  /** What a recording costs here: the configured model, corrected by what recordings measure. */
  readonly costs: CostCalibration;
  observer: RecorderObserver = {};
  #config: Readonly<Config>;
  #log: Logger;
  #active = new Map<string, WorkerRecording>(); // by room
  #pool: WorkerPool;
  #draining = false;
  #workBase: string;
  #lastStats = new Map<string, { framesDuplicated: number; framesDropped: number; workerRestarts: number }>();
  #statsTimer: NodeJS.Timeout;
  /** This process's own CPU (the SFU, signalling, muxing): the last reading, and smoothed cores. */
  #cpuMark = { at: performance.now(), usage: process.cpuUsage() };
  #serverCores: number | null = null;
  #sweepTimer: NodeJS.Timeout;
  readonly #consent = new Map<string, NonNullable<RecordingInfo['consent']>>();

  constructor(opts: { config: Readonly<Config>; storage: Storage; logger: Logger }) {
    super();
    this.#config = opts.config;
    this.storage = opts.storage;
    this.#log = opts.logger.child({ component: 'recorder' });
    this.capacity = opts.config.maxRecordings;
    this.cpuBudget = opts.config.cpuBudget ?? availableCores();
    this.costs = new CostCalibration(opts.config.recordingCores, { learn: opts.config.recordingCoresLearn });
    this.presets = loadPresets();
    this.ffmpegPath = resolveFfmpegPath(opts.config);
    this.#workBase = path.join(os.tmpdir(), `tessera-${process.pid}`);
    this.#pool = new WorkerPool({ logger: this.#log, nice: opts.config.workerNice, spares: opts.config.workerSpares });
    this.index = new RecordingIndex(opts.storage, { refreshMs: opts.config.indexRefreshMs });
    this.renders = new RenderJobs({
      storage: opts.storage,
      settings: renderSettingsOf(opts.config),
      presets: new Set(this.presets.keys()),
      ffmpegPath: this.ffmpegPath,
      logger: this.#log,
      maxJobs: 1,
      onChange: (id, renders) => {
        void this.index.get(id).then((info) => info && this.index.put({ ...info, renders }), () => undefined);
      },
    });
    this.#statsTimer = setInterval(() => this.#publishStats(), 5000);
    this.#statsTimer.unref();
    this.#sweepTimer = setInterval(() => {
      this.sweepRetention().catch((err: unknown) => this.#log.error({ err }, 'retention sweep failed'));
    }, opts.config.retention.sweepMs);
    this.#sweepTimer.unref();
  }

  /** Cores this process itself uses (smoothed over about 12 s), as admission counts it. */
  get serverCores(): number {
    return this.#serverCores ?? 0;
  }

  #measureServer(): void {
    const now = { at: performance.now(), usage: process.cpuUsage() };
    const cpuS = (now.usage.user - this.#cpuMark.usage.user + now.usage.system - this.#cpuMark.usage.system) / 1e6;
    const wallS = (now.at - this.#cpuMark.at) / 1000;
    this.#cpuMark = now;
    if (wallS < 1) return;
    const cores = cpuS / wallS;
    this.#serverCores = this.#serverCores === null ? cores : this.#serverCores + SERVER_CORES_WEIGHT * (cores - this.#serverCores);
  }

  /** Counters move continuously (not only when a recording ends), so alerts see trouble live. */
  #publishStats(): void {
    this.#measureServer();
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
    this.observer.perRecording?.([...this.#active.values()].map((r) => ({ id: r.id, roomId: r.roomId, cores: r.stats.cores, distinctFps: r.stats.distinctFps, preset: r.stats.preset, tiles: r.stats.tiles ?? 'full' })));
    this.#publishAdmission();
  }

  /** What admission counts as taken now: each running recording's charge (CostCalibration). */
  #charged(): number[] {
    return [...this.#active.values()].map((r) => this.costs.charge(r.id, r.sourceCount));
  }

  #publishAdmission(): void {
    const committed = committedCores({ budgetCores: this.cpuBudget, usable: this.#config.cpuUsable, charged: this.#charged(), serverCores: this.serverCores });
    this.observer.admission?.(committed, this.cpuBudget * this.#config.cpuUsable, this.costs.factor);
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
  start(roomId: string, opts: { layout?: string; sources?: MediaSource[]; retentionDays?: number; tracks?: boolean } = {}): WorkerRecording {
    const days = opts.retentionDays ?? this.#config.retention.defaultDays;
    if (opts.retentionDays !== undefined && (!Number.isInteger(days) || days < 1 || days > this.#config.retention.maxDays)) {
      throw new TesseraError('REC_ERR_BAD_REQUEST', `retentionDays must be an integer from 1 to ${this.#config.retention.maxDays}`);
    }
    if (this.#draining) throw new TesseraError('REC_ERR_DRAINING', 'this server is shutting down and accepts no new recordings');
    if (this.#active.has(roomId)) throw new TesseraError('REC_ERR_ALREADY_RECORDING', `room ${roomId} is already being recorded`);
    if (this.#active.size >= this.capacity) throw new TesseraError('REC_ERR_CAPACITY', `this server records at most ${this.capacity} rooms at once`);
    const wanted = opts.sources?.length ?? 0;
    const fit = admit({ budgetCores: this.cpuBudget, usable: this.#config.cpuUsable, charged: this.#charged(), cost: this.costs.cost(wanted), serverCores: this.serverCores });
    if (!fit.ok) {
      const factor = this.costs.factor;
      const measured = factor > 1 ? ` (${factor.toFixed(2)} times the configured model, as recordings measure here)` : '';
      const busy = this.serverCores > this.cpuBudget * (1 - this.#config.cpuUsable) ? ` (the meeting server itself uses ${this.serverCores.toFixed(2)})` : '';
      throw new TesseraError('REC_ERR_CAPACITY', `this server has CPU for no more recordings: a recording of ${wanted} costs about ${fit.cost.toFixed(2)} cores${measured}, ${Math.max(0, fit.free).toFixed(2)} of its ${this.cpuBudget.toFixed(2)} are left${busy}; try again later or on another server`);
    }
    // Each recording stays in storage until deleted: a room that could start any number of
    // them (a start/stop loop) could fill the storage.
    const stored = this.index.countForRoom(roomId);
    if (stored >= this.#config.maxRecordingsPerRoom) {
      throw new TesseraError('REC_ERR_ROOM_LIMIT', `room ${roomId} has ${stored} recordings, the most a room may keep (TESSERA_MAX_RECORDINGS_PER_ROOM); delete some first`);
    }
    const layout = opts.layout ?? 'grid';
    if (!this.presets.has(layout)) throw new TesseraError('REC_ERR_UNKNOWN_LAYOUT', `unknown layout "${layout}"; known: ${[...this.presets.keys()].join(', ')}`);
    const id = `rec_${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}_${crypto.randomBytes(4).toString('hex')}`;
    const withTracks = opts.tracks ?? this.#config.tracks;
    const storage = this.storage;
    if (withTracks && !storage.createTrackTarget) throw new TesseraError('REC_ERR_BAD_REQUEST', 'this storage cannot keep tracks');
    const sink = this.storage.createSink(id, roomId);
    const rec = new WorkerRecording({
      id,
      roomId,
      layout,
      tracks: withTracks ? (meta, file) => storage.createTrackTarget!({ id, location: sink.location }, meta, file) : undefined,
      pool: this.#pool,
      config: this.#config,
      ffmpegPath: this.ffmpegPath,
      sink,
      logger: this.#log,
      workDir: path.join(this.#workBase, id),
      startShort: startsShort(fit),
    });
    this.#active.set(roomId, rec);
    let shed = 0, wasFull = false;
    rec.on('stats', (stats, workerMs) => {
      // A worker's figures start from 0: a new worker's shed ticks are all new.
      const shedNow = stats.framesShed >= shed ? stats.framesShed - shed : stats.framesShed;
      shed = stats.framesShed;
      const full = stats.distinctFps === this.#config.video.fps && stats.preset === this.#config.x264Preset && (stats.tiles ?? 'full') === 'full';
      this.costs.observe(rec.id, {
        sources: rec.sourceCount,
        cores: stats.cores,
        full,
        // Short of CPU: ticks repeated because composition could not keep up, or the second in
        // which the ladder stepped back up (its cores are partly the level below). FFmpeg's own
        // speed is no use here: it counts from its epoch's start.
        keepingUp: wasFull && shedNow === 0,
        workerMs,
      });
      wasFull = full;
    });
    this.#publishAdmission();
    if (startsShort(fit)) {
      this.#log.warn({ recordingId: id, roomId, cost: fit.cost, free: fit.free, budget: this.cpuBudget }, 'recording admitted above the CPU budget (the only one): it starts degraded');
    }
    let ended = false;
    rec.on('state', (info) => {
      // A recording ends once. The worker's own last State message can arrive after the server
      // has finished the recording (and after the room started another): handled again, it took
      // the room's new recording out of #active (never stopped when the room emptied, never
      // drained, its worker running for good: found by the signalling fuzz), counted the
      // recording twice, and told the room "not recording" while the new one ran.
      if (ended) return;
      if (info.status === 'available' || info.status === 'failed') {
        ended = true;
        this.#publishDelta(rec);
        this.#lastStats.delete(rec.id);
        if (this.#active.get(roomId) === rec) this.#active.delete(roomId);
        this.costs.forget(rec.id);
        this.#publishAdmission();
        // What the recorder knows beyond the pipeline's manifest: the retention asked for and
        // the consent answers. Written into the manifest now that the sink has written it.
        const extra: Partial<RecordingInfo> = {};
        if (days > 0) extra.retainUntil = new Date(Date.parse(info.startedAt) + days * 86_400_000).toISOString();
        const consent = this.#consent.get(info.id);
        if (consent) extra.consent = consent;
        this.#consent.delete(info.id);
        this.index.put({ ...info, ...extra });
        if (Object.keys(extra).length) {
          this.storage.updateManifest?.(info.location, extra).catch((err: unknown) => this.#log.error({ err, recordingId: info.id }, 'manifest update failed'));
        }
        this.observer.recordingEnded?.(info, rec.stats);
      }
      this.emit('state', info);
    });
    for (const s of opts.sources ?? []) rec.addSource(s);
    rec.start().catch((err) => this.#log.error({ err, recordingId: id }, 'recording failed to start'));
    return rec;
  }

  /** Every recording: active ones and the storage's index (newest first). */
  async list(roomId?: string): Promise<RecordingInfo[]> {
    return (await this.page({ roomId, limit: Number.MAX_SAFE_INTEGER })).recordings;
  }

  /** One page of recordings, newest first (GET /api/recordings). */
  async page(opts: { roomId?: string; limit: number; cursor?: string }): Promise<RecordingPage> {
    const byId = new Map<string, RecordingInfo>();
    for (const info of await this.index.all()) byId.set(info.id, info);
    for (const rec of this.#active.values()) byId.set(rec.id, rec.info());
    return paginate([...byId.values()].filter((r) => !opts.roomId || r.roomId === opts.roomId), opts);
  }

  async get(id: string): Promise<RecordingInfo | undefined> {
    for (const rec of this.#active.values()) if (rec.id === id) return rec.info();
    return this.index.get(id);
  }

  async openMedia(id: string, range?: MediaRange) {
    const info = await this.get(id);
    if (!info) return null;
    return this.storage.openMedia(info.location, range);
  }

  async openTrack(id: string, trackId: string, range?: MediaRange) {
    const track = (await this.get(id))?.tracks?.find((t) => t.id === trackId);
    if (!track) return null;
    return this.storage.openMedia(track.location, range);
  }

  async presignMedia(id: string): Promise<string | null> {
    const info = await this.get(id);
    if (!info || !this.storage.presignMedia) return null;
    return this.storage.presignMedia(info.location);
  }

  storageStatus(): { kind: 'file' | 's3'; ok: boolean | null } {
    return this.storage.status?.() ?? { kind: this.storage.kind, ok: true };
  }

  /** Starts re-rendering a finished recording from its tracks with `layout` (POST …/renders). */
  async startRender(id: string, layout: string): Promise<RenderInfo> {
    const info = await this.get(id);
    if (!info) throw new TesseraError('REC_ERR_NOT_FOUND', `no recording ${id}`);
    if (this.#draining) throw new TesseraError('REC_ERR_DRAINING', 'this server is shutting down and starts no renders');
    return this.renders.start(info, layout);
  }

  /** A render's MP4 (or a presigned URL for it): only once it is available. */
  async openRender(id: string, renderId: string, range?: MediaRange) {
    const info = await this.get(id);
    if (!info) throw new TesseraError('REC_ERR_NOT_FOUND', `no recording ${id}`);
    return this.renders.openMedia(await this.renders.find(info, renderId), range);
  }

  async presignRender(id: string, renderId: string): Promise<string | null> {
    const info = await this.get(id);
    if (!info) throw new TesseraError('REC_ERR_NOT_FOUND', `no recording ${id}`);
    return this.renders.presignMedia(await this.renders.find(info, renderId));
  }

  async delete(id: string): Promise<RecordingInfo> {
    const info = await this.get(id);
    if (!info) throw new TesseraError('REC_ERR_NOT_FOUND', `no recording ${id}`);
    if (info.status !== 'available' && info.status !== 'failed') {
      throw new TesseraError('REC_ERR_ALREADY_RECORDING', `recording ${id} is still ${info.status}; stop it first`);
    }
    if (info.legalHold) throw new TesseraError('REC_ERR_HELD', `recording ${id} is under legal hold; release the hold first`);
    // A render in progress stops first, so it cannot store its MP4 after the recording is gone.
    await this.renders.cancel(id);
    await this.storage.deleteRecording(info.location);
    this.index.remove(id);
    return info;
  }

  /** Sets or releases a legal hold: a held recording is neither deleted nor expired. */
  async setHold(id: string, hold: boolean): Promise<RecordingInfo> {
    const info = await this.get(id);
    if (!info) throw new TesseraError('REC_ERR_NOT_FOUND', `no recording ${id}`);
    if (info.status !== 'available' && info.status !== 'failed') throw new TesseraError('REC_ERR_ALREADY_RECORDING', `recording ${id} is still ${info.status}`);
    if (!this.storage.updateManifest) throw new TesseraError('REC_ERR_INTERNAL', 'this storage cannot hold recordings');
    await this.storage.updateManifest(info.location, { legalHold: hold });
    const { legalHold: _was, ...rest } = info;
    const next: RecordingInfo = hold ? { ...rest, legalHold: true } : rest;
    this.index.put(next);
    return next;
  }

  /** Recordings a person appears in, by participant id or by name (case-insensitive). */
  async findByPerson(who: { participantId?: string; name?: string }): Promise<RecordingInfo[]> {
    const name = who.name?.trim().toLowerCase();
    return (await this.list()).filter((r) => r.participants.some((p) => (who.participantId !== undefined && p.id === who.participantId) || (name !== undefined && p.name.trim().toLowerCase() === name)));
  }

  /**
   * Retention: recordings whose `retainUntil` has passed and that are not held are deleted
   * (file storage) or tagged for the bucket's lifecycle rule and hidden (S3). Runs every
   * TESSERA_RETENTION_SWEEP_MS; `now` is injectable for tests. Returns what expired.
   */
  async sweepRetention(now = Date.now()): Promise<RecordingInfo[]> {
    const expired: RecordingInfo[] = [];
    for (const info of await this.index.all()) {
      if (info.legalHold || !info.retainUntil || Date.parse(info.retainUntil) > now) continue;
      if (info.status !== 'available' && info.status !== 'failed') continue;
      try {
        if (this.storage.markExpired) {
          // The manifest first: rewriting an object replaces its tags, so tagging comes last.
          await this.storage.updateManifest?.(info.location, { expiredAt: new Date(now).toISOString() });
          await this.storage.markExpired(info.location);
        } else {
          await this.storage.deleteRecording(info.location);
        }
        this.index.remove(info.id);
        expired.push(info);
        this.emit('expired', info);
      } catch (err) {
        this.#log.error({ err, recordingId: info.id }, 'retention: could not expire');
      }
    }
    return expired;
  }

  /** A participant's consent answer for the room's running recording (kept in its manifest). */
  noteConsent(recordingId: string, answer?: { participantId: string; name: string; accepted: boolean; at: string }): void {
    let c = this.#consent.get(recordingId);
    if (!c) this.#consent.set(recordingId, (c = { required: true, answers: [] }));
    if (answer) c.answers.push(answer);
  }

  /** SIGTERM: accept nothing new, stop (drain) every recording, wait for them. */
  async drain(): Promise<void> {
    this.#draining = true;
    await Promise.all([...this.#active.values()].map((r) => r.stop()));
    await this.renders.close();
    this.close();
  }

  /** Start a spare worker now, so the first recording does not wait for a process start. */
  warmUp(): void {
    this.#pool.warm();
  }

  /** Stops the spare workers and timers (after drain(), or in tests). Idempotent. */
  close(): void {
    void this.renders.close();
    clearInterval(this.#statsTimer);
    clearInterval(this.#sweepTimer);
    this.#pool.close();
  }
}
