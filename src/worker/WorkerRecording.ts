import { EventEmitter } from 'node:events';
import type { RecordingStats } from '../pipeline/RecordingOptions';
import { nextStatus } from '../pipeline/status';
import { TesseraError, toTesseraError, type ErrorBody } from '../errors';
import { Mp4Muxer } from '../storage/Mp4Muxer';
import { BEAT_LAZY_MS, BEAT_MS, FromWorker, ToWorker, type Message } from './protocol';
import type { WorkerHandle, WorkerPool } from './WorkerPool';
import type { InitMessage, SourceMessage } from './main';
import type { Config } from '../config';
import type { Logger } from '../logger';
import type { EncodedVideoFrame, MediaSource, OpusPacket } from '../media/types';
import type { Sink } from '../storage/Sink';
import type { Manifest, RecordingInfo, RecordingStatus } from '../pipeline/types';
import { TrackRecorder, type TrackTargetFactory } from '../tracks/TrackRecorder';

export interface WorkerRecordingOptions {
  id: string;
  roomId: string;
  layout: string;
  config: Readonly<Config>;
  ffmpegPath: string;
  sink: Sink;
  logger: Logger;
  workDir: string;
  pool: WorkerPool;
  /** Also write every source's tracks as they arrive (`tracks: true`), to targets made by this. */
  tracks?: TrackTargetFactory;
  /**
   * Admitted although its measured cost is above what the process's CPU budget leaves (the
   * process's only recording): its worker starts degraded (StrideController `startShort`).
   */
  startShort?: boolean;
}

interface Events {
  state: [RecordingInfo];
  close: [];
  /** The current worker's figures (once a second) and how long that worker has run (ms). */
  stats: [RecordingStats, number];
}

interface Tap {
  n: number;
  source: MediaSource;
  /** Video is being dropped (the worker fell behind reading): resume at a keyframe. */
  waitKey: boolean;
  off: () => void;
}

const ZERO_STATS: RecordingStats = { framesDuplicated: 0, framesDropped: 0, compositorRestarts: 0, decoderRestarts: 0, encoderSpeed: 0, distinctFps: 0, preset: '', framesShed: 0, cores: 0, upstreamStalledMs: 0 };
/** Worker restarts allowed within RESTART_WINDOW_MS before the recording fails for good. */
/** The manifest's interruption for a first picture that came late (at 0, as long as the wait). */
export const LATE_START = 'the first picture came late; the MP4 shows it from the start';
const MAX_RESTARTS = 3;
const RESTART_WINDOW_MS = 60_000;
/** Encoded media queued for a worker beyond this is shed (video until a keyframe). */
const MAX_BACKLOG_BYTES = 8 * 1024 * 1024;

/**
 * One recording as the server holds it: the worker process that makes it, the media the server
 * taps for it, the MP4 muxer and the sink. The server side does no decoding and touches no
 * pixels: it forwards encoded frames and packets to the worker and muxes the encoded pictures and
 * AAC frames the worker sends back (Mp4Muxer) into the sink.
 *
 * The muxer and the sink live here, not in the worker, so a worker that dies loses only what it
 * had not yet sent (the pictures in its encoder, ~0.5 s): a new worker continues the recording on
 * the same clock from the last picture received, into the same MP4 tracks, file or upload.
 * Status only moves forward (nextStatus); stop() is a drain of the worker, then of the sink.
 */
export class WorkerRecording extends EventEmitter<Events> {
  readonly id: string;
  readonly roomId: string;
  readonly stats: RecordingStats = { ...ZERO_STATS };
  #o: WorkerRecordingOptions;
  #log: Logger;
  #status: RecordingStatus = 'starting';
  #info: RecordingInfo;
  #error: ErrorBody | null = null;
  #worker: WorkerHandle | null = null;
  #lastWorker: WorkerHandle | null = null;
  #taps = new Map<string, Tap>();
  #byN = new Map<number, Tap>();
  #nextN = 1;
  #sinkChain: Promise<void>;
  #bytes = 0;
  #manifest: Manifest | null = null;
  /** Stats of workers that already exited, and of the current one. */
  #statsBase: RecordingStats = { ...ZERO_STATS };
  #statsNow: RecordingStats = { ...ZERO_STATS };
  /** The last worker's last figures showed it degraded (fewer distinct pictures than the fps). */
  #lastDegraded = false;
  debugSourcesLast: object[] = [];
  /** Workers that died and were replaced by one continuing the recording. */
  workerRestarts = 0;
  /** Video frames not forwarded because the worker fell behind reading them. */
  #shed = 0;
  #muxer: Mp4Muxer;
  /** Fragments handed to the sink (a recording without any has nothing to keep). */
  #fragments = 0;
  #t0Wall = 0;
  #restarts: number[] = [];
  #workerError: ErrorBody | null = null;
  #stopRequested = false;
  #stopAt = 0;
  #stopPromise: Promise<RecordingInfo> | null = null;
  #finishing = false;
  #done: Promise<RecordingInfo>;
  #resolveDone!: (i: RecordingInfo) => void;
  #closed = false;
  #aborting: Promise<unknown> = Promise.resolve();
  /** When the worker last sent a picture: a worker alive but silent this long is hung. */
  #lastPictureAt = 0;
  /** When the current worker was taken (its figures include its start for a few seconds). */
  #workerSince = 0;
  /** The heartbeat to the worker: its clock for quiet sources runs while this loop does (UpstreamClock). */
  #beat: NodeJS.Timeout | null = null;
  #tracks: TrackRecorder | null = null;

  constructor(opts: WorkerRecordingOptions) {
    super();
    this.#o = opts;
    this.id = opts.id;
    this.roomId = opts.roomId;
    this.#log = opts.logger.child({ recordingId: opts.id, roomId: opts.roomId });
    this.#info = { id: opts.id, roomId: opts.roomId, status: 'starting', startedAt: new Date().toISOString(), layout: opts.layout, location: opts.sink.location, participants: [] };
    this.#done = new Promise((r) => (this.#resolveDone = r));
    this.#sinkChain = Promise.resolve();
    const { fps, width, height } = opts.config.video;
    if (opts.tracks) this.#tracks = new TrackRecorder({ create: opts.tracks, logger: this.#log });
    this.#muxer = new Mp4Muxer({ fps, width, height, fragmentMs: opts.config.fragmentMs, onSegment: (seg) => this.#onSegment(seg.kind, seg.data) });
  }

  get status(): RecordingStatus {
    return this.#status;
  }

  /** Wall-clock ms the recording captured: from its clock's start to the stop request. */
  get capturedMs(): number {
    return this.#t0Wall ? (this.#stopAt || Date.now()) - this.#t0Wall : 0;
  }

  /** Sources (cameras and screens) recorded now: what admission costs a recording by. */
  get sourceCount(): number {
    return this.#taps.size;
  }

  /** The worker's process id (for tests and operators). */
  get workerPid(): number | undefined {
    return this.#worker?.pid;
  }

  info(): RecordingInfo {
    const info: RecordingInfo = { ...this.#info, status: this.#status, location: this.#o.sink.location, participants: this.#info.participants.map((p) => ({ ...p })) };
    if (this.#bytes) info.bytes = this.#bytes;
    if (this.#error) info.error = { ...this.#error };
    else delete info.error;
    if (this.#tracks) info.tracks = this.#tracks.snapshot();
    return info;
  }

  /** Open the sink and hand the recording to a worker. Sources may be added before or after. */
  async start(): Promise<void> {
    this.#sinkChain = this.#o.sink.open().catch((err) => {
      this.#fail(toTesseraError(err, 'REC_ERR_SINK'));
    });
    try {
      await this.#launch(undefined);
    } catch (err) {
      this.#fail(toTesseraError(err, 'REC_ERR_FFMPEG_START'));
      throw err;
    }
  }

  addSource(source: MediaSource): void {
    if (this.#closed || this.#stopRequested || this.#taps.has(source.id)) return;
    const tap: Tap = { n: this.#nextN++, source, waitKey: false, off: () => undefined };
    const onVideo = (f: EncodedVideoFrame) => {
      const w = this.#worker;
      if (!w) return;
      if (w.backlog > MAX_BACKLOG_BYTES && !tap.waitKey) {
        // The worker is not reading (starved or hung): shed video rather than grow without bound.
        tap.waitKey = true;
      }
      if (tap.waitKey) {
        if (!f.keyframe || w.backlog > MAX_BACKLOG_BYTES / 2) {
          this.#shed++;
          if (f.keyframe) source.requestKeyframe();
          return;
        }
        tap.waitKey = false;
      }
      w.send(ToWorker.Video, { n: tap.n, c: f.codec, t: f.rtpTimestamp, k: f.keyframe, w: f.width, h: f.height }, f.data);
    };
    const onAudio = (p: OpusPacket) => this.#worker?.send(ToWorker.Audio, { n: tap.n, t: p.rtpTimestamp }, p.data);
    const onClose = () => this.removeSource(source.id);
    source.on('video', onVideo);
    source.on('audio', onAudio);
    source.once('close', onClose);
    tap.off = () => {
      source.off('video', onVideo);
      source.off('audio', onAudio);
      source.off('close', onClose);
    };
    this.#taps.set(source.id, tap);
    this.#byN.set(tap.n, tap);
    this.#tracks?.add(source);
    this.#worker?.send(ToWorker.AddSource, this.#sourceMessage(tap));
  }

  removeSource(sourceId: string): void {
    const tap = this.#untap(sourceId);
    if (tap) this.#worker?.send(ToWorker.RemoveSource, { n: tap.n });
  }

  /** Stop forwarding a source's media (without telling the worker it left). */
  #untap(sourceId: string): Tap | undefined {
    const tap = this.#taps.get(sourceId);
    if (!tap) return undefined;
    this.#tracks?.remove(sourceId);
    tap.off();
    this.#taps.delete(sourceId);
    this.#byN.delete(tap.n);
    return tap;
  }

  /** Test and operator hooks: kill a pipeline child (in the worker), or the worker itself. */
  debugKill(what: 'compositor' | 'encoder' | 'worker' | 'hang-worker' | 'hang-compositor' | { decoder: string }): void {
    if (what === 'worker') this.#worker?.kill('SIGKILL');
    else if (what === 'hang-worker') this.#worker?.kill('SIGSTOP');
    else this.#worker?.send(ToWorker.Debug, { what });
  }

  /** For fault tests: SIGSTOP the compositor in charge (a hung graph: alive, producing nothing). */
  debugHangCompositor(): void {
    this.debugKill('hang-compositor');
  }

  /** Drain: the worker composes and encodes what was captured, then the sink is finished. */
  stop(): Promise<RecordingInfo> {
    if (this.#stopPromise) return this.#stopPromise;
    this.#stopRequested = true;
    this.#stopAt = Date.now();
    if (this.#status === 'available' || this.#status === 'failed') return (this.#stopPromise = Promise.resolve(this.info()));
    this.#setStatus('stopping');
    this.#info.endedAt = new Date().toISOString();
    // The worker stops capturing at its stop request; media after that is not wanted.
    for (const id of [...this.#taps.keys()]) this.#untap(id);
    // The stop time goes with the request: a worker short of CPU may read it seconds later, and
    // the recording ends at the click, not at the reading.
    if (this.#worker) this.#worker.send(ToWorker.Stop, { at: this.#stopAt });
    else void this.#finishPrefix('stopped while no worker ran');
    const watchdog = setTimeout(() => {
      this.#log.error('worker did not drain in time; keeping what it made');
      this.#worker?.kill('SIGKILL');
    }, this.#o.config.stopTimeoutMs + 5000);
    // Resolves once the worker has exited too: nothing of the recording is left running.
    this.#stopPromise = this.#done.finally(() => clearTimeout(watchdog)).then((info) => this.#workerGone().then(() => info));
    return this.#stopPromise;
  }

  // ---- the worker --------------------------------------------------------------------------

  /** The current worker's exit (it leaves by itself after its last message; killed after 3 s). */
  #workerGone(): Promise<void> {
    const w = this.#lastWorker;
    if (!w || w.exited || w.idle) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => w.kill('SIGKILL'), 3000);
      const gone = () => (clearTimeout(t), w.off('exit', gone), w.off('idle', gone), resolve());
      w.once('exit', gone);
      w.once('idle', gone);
    });
  }

  async #launch(resume: InitMessage['resume']): Promise<void> {
    const w = await this.#o.pool.take();
    if (this.#closed) {
      w.kill();
      return;
    }
    this.#worker = w;
    this.#lastWorker = w;
    this.#lastPictureAt = Date.now();
    this.#workerSince = Date.now();
    this.#watchWorker(w);
    this.#statsNow = { ...ZERO_STATS };
    const onMessage = (m: Message) => this.#onMessage(w, m);
    const onExit = (e: { code: number | null; signal: NodeJS.Signals | null }) => (w.off('idle', onIdle), this.#onExit(w, e));
    // Done with this recording and alive: back to the pool for the next one, without our listeners.
    const onIdle = () => {
      if (!this.#finishing && !this.#closed) return w.kill('SIGKILL'); // not ours to give back yet: a death
      w.off('message', onMessage);
      w.off('exit', onExit);
      this.#onExit(w, { code: null, signal: null });
      this.#o.pool.release(w);
    };
    w.on('message', onMessage);
    w.once('exit', onExit);
    w.once('idle', onIdle);
    const init: InitMessage = {
      id: this.id,
      roomId: this.roomId,
      layout: this.#o.layout,
      config: this.#o.config as Config,
      ffmpegPath: this.#o.ffmpegPath,
      workDir: this.#o.workDir,
      location: this.#o.sink.location,
      resume,
      startShort: resume ? this.#lastDegraded : this.#o.startShort,
      sources: [...this.#taps.values()].map((t) => this.#sourceMessage(t)),
    };
    w.send(ToWorker.Init, init);
    this.#log.info({ pid: w.pid, use: w.uses, resume: resume ? { tickBase: resume.tickBase } : undefined }, 'worker started');
  }

  /**
   * A worker that is alive but sends no picture for 3 × the stall timeout is hung (stopped,
   * deadlocked, swapping): kill it, and the usual replacement continues the recording. A worker
   * short of CPU still sends pictures (fewer of them), so it is not mistaken for a hung one.
   * Looked at with every heartbeat (10 times a second): checked once a second, the hang went
   * unnoticed for up to a second more, and the gap in the picture measured 4.6–6.1 s instead of
   * 3 s plus the restart. One timer does both, as every timer is a wake-up of the server.
   */
  #watchWorker(w: WorkerHandle): void {
    if (this.#beat) clearInterval(this.#beat);
    const limit = this.#o.config.stallTimeoutMs * 3;
    this.#beat = setInterval(() => {
      if (w !== this.#worker || w.exited) return;
      if (this.#status === 'recording' && Date.now() - this.#lastPictureAt > limit) {
        this.#log.warn({ pid: w.pid, silentMs: Date.now() - this.#lastPictureAt }, 'worker sends nothing; replacing it');
        this.#workerError = { code: 'REC_ERR_WORKER_DIED', message: `worker hung (no picture for ${Math.round((Date.now() - this.#lastPictureAt) / 1000)} s)` };
        w.kill('SIGKILL');
        return;
      }
      w.send(ToWorker.Beat, {}, null, BEAT_LAZY_MS);
    }, BEAT_MS);
  }

  #sourceMessage(tap: Tap): SourceMessage {
    const s = tap.source;
    return { n: tap.n, id: s.id, participantId: s.participantId, name: s.name, kind: s.kind, c: s.videoCodec ?? undefined };
  }

  #onMessage(w: WorkerHandle, m: Message): void {
    if (w !== this.#worker) return;
    switch (m.type) {
      case FromWorker.State: {
        const { info, t0Wall } = m.header as { info: RecordingInfo; t0Wall: number };
        if (t0Wall && !this.#t0Wall) {
          this.#t0Wall = t0Wall;
          this.#tracks?.setClock(t0Wall);
        }
        if (info.status === 'failed' && info.error) this.#workerError = info.error;
        const { status, error, bytes, location, ...rest } = info;
        void error, bytes, location;
        this.#info = { ...this.#info, ...rest };
        // The worker's statuses count up to `recording`; what comes after is the server's call.
        if (status === 'recording') this.#setStatus('recording');
        else this.#emitState();
        return;
      }
      case FromWorker.Stats: {
        this.#statsNow = m.header.stats as RecordingStats;
        this.debugSourcesLast = m.header.sources;
        this.#sumStats();
        // A stopping recording's figures are its drain, not what it costs while it runs.
        if (!this.#stopRequested) this.emit('stats', this.#statsNow, Date.now() - this.#workerSince);
        return;
      }
      case FromWorker.Video:
        this.#lastPictureAt = Date.now();
        return this.#muxer.video(m.header.t, m.payload ?? Buffer.alloc(0), m.header.k);
      case FromWorker.Audio:
        return this.#muxer.audio(m.header.p, m.payload ?? Buffer.alloc(0));
      case FromWorker.Keyframe:
        return this.#byN.get(m.header.n)?.source.requestKeyframe();
      case FromWorker.Checkpoint: {
        this.#manifest = m.header as Manifest;
        const sink = this.#o.sink as Sink & { updateManifest?: (m: object) => void };
        try {
          sink.updateManifest?.(this.#withSinkFields(this.#manifest));
        } catch {
          /* a checkpoint is best effort */
        }
        return;
      }
      case FromWorker.SinkFinish:
        return void this.#finish(m.header as Manifest, w);
      case FromWorker.SinkAbort:
        this.#workerError = m.header.error;
        this.#manifest = m.header.manifest;
        return;
      case FromWorker.Fatal:
        this.#workerError = m.header.error;
        return;
    }
  }

  /** A whole piece of the MP4 from the muxer: to the sink, in order. */
  #onSegment(kind: 'init' | 'fragment', data: Buffer): void {
    if (kind === 'fragment') this.#fragments++;
    this.#bytes += data.length;
    this.#sinkChain = this.#sinkChain.then(() => this.#o.sink.write({ kind, data, index: 0 })).catch((err) => {
      this.#fail(new TesseraError('REC_ERR_SINK', `storage write failed: ${(err as Error).message}`, { cause: err }));
    });
  }

  /** Video ticks the MP4 holds. */
  #framesWritten(): number {
    return this.#muxer.ticks;
  }

  #onExit(w: WorkerHandle, e: { code: number | null; signal: NodeJS.Signals | null }): void {
    if (w !== this.#worker) return;
    this.#worker = null;
    // A replacement starts degraded if the worker it replaces was: CPU was short a moment ago.
    this.#lastDegraded = this.#statsNow.distinctFps > 0 && this.#statsNow.distinctFps < this.#o.config.video.fps;
    this.#statsBase = sumStats(this.#statsBase, this.#statsNow);
    this.#statsNow = { ...ZERO_STATS };
    this.#sumStats();
    if (this.#closed || this.#finishing) return;
    const why = this.#workerError ?? { code: 'REC_ERR_WORKER_DIED', message: `worker exited (code ${e.code}, signal ${e.signal})` };
    this.#workerError = null;
    this.#log.warn({ ...e, why }, 'recording worker exited');
    if (this.#stopRequested) {
      void this.#finishPrefix(`worker exited while stopping: ${why.message}`);
      return;
    }
    const now = Date.now();
    this.#restarts = this.#restarts.filter((t) => now - t < RESTART_WINDOW_MS);
    if (this.#restarts.length >= MAX_RESTARTS) {
      this.#fail(new TesseraError(why.code as never, `${why.message} (${MAX_RESTARTS} restarts within ${RESTART_WINDOW_MS / 1000} s; giving up)`));
      return;
    }
    this.#restarts.push(now);
    this.workerRestarts++;
    void this.#launch(this.#resumePoint(why.message)).catch((err) => this.#fail(toTesseraError(err, 'REC_ERR_FFMPEG_START')));
  }

  /**
   * Where a new worker continues: after the last picture received, on the first worker's clock
   * (its missed ticks are made at once from name cards, its audio from silence). A worker that
   * died before its first picture is continued from tick 0 on its clock: started afresh, the
   * call's first seconds were missing from the file (2.4 s for a worker killed 2 s into a start
   * that hung) and nothing said so.
   */
  #resumePoint(reason: string): InitMessage['resume'] {
    if (!this.#t0Wall) return undefined; // its clock never started: nothing to continue
    const fps = this.#o.config.video.fps;
    const frames = this.#muxer.ticks;
    const at = (frames * 1000) / fps;
    this.#muxer.expectKeyframe();
    const m = this.#manifest;
    const gapMs = Math.max(0, Date.now() - (this.#t0Wall + at));
    return {
      t0Wall: this.#t0Wall + at,
      tickBase: frames,
      startedAt: this.#info.startedAt,
      participants: this.#info.participants,
      layouts: m?.layouts ?? [],
      interruptions: [...(m?.interruptions ?? []), { at: Math.round(at), gapMs, reason }],
    };
  }

  // ---- the end -----------------------------------------------------------------------------

  /** The worker drained: every segment is on its way; finish the sink with its manifest. */
  async #finish(manifest: Manifest, w: WorkerHandle): Promise<void> {
    this.#finishing = true;
    try {
      // The video lasts to the recording's last tick, even when its last pictures were repeats.
      await this.#muxer.finalize(manifest.video?.frames);
      await this.#sinkChain;
      await this.#tracks?.end();
      if (this.#status === 'failed') return;
      const final = this.#withSinkFields({ ...manifest, status: 'available', availableAt: new Date().toISOString() });
      const result = await this.#o.sink.finish(final);
      this.#bytes = result.bytes;
      this.#info = { ...this.#info, ...strip(final) };
      w.send(ToWorker.SinkDone, result);
      this.#setStatus('available');
    } catch (err) {
      const e = toTesseraError(err, 'REC_ERR_SINK');
      w.send(ToWorker.SinkDone, { error: e.toJSON() });
      this.#fail(e);
    } finally {
      this.#close();
    }
  }

  /** No worker can finish it: make what was written (whole fragments) the recording. */
  async #finishPrefix(reason: string): Promise<void> {
    if (this.#finishing) return;
    this.#finishing = true;
    try {
      await this.#muxer.finalize();
      await this.#sinkChain;
      await this.#tracks?.end();
      if (this.#status === 'failed') return;
      if (this.#fragments === 0) throw new TesseraError('REC_ERR_ENCODER_DIED', `nothing was recorded: ${reason}`);
      this.#log.warn({ reason }, 'finishing with what the workers made');
      const final = this.#withSinkFields({ ...this.#baseManifest(), status: 'available', availableAt: new Date().toISOString(), endReason: 'interrupted' });
      const result = await this.#o.sink.finish(final);
      this.#bytes = result.bytes;
      this.#info = { ...this.#info, ...strip(final) };
      this.#setStatus('available');
    } catch (err) {
      this.#fail(toTesseraError(err, 'REC_ERR_SINK'));
    } finally {
      this.#close();
    }
  }

  #baseManifest(): Manifest {
    const { width, height, fps } = this.#o.config.video;
    return {
      version: 1,
      layouts: [],
      ...(this.#manifest ?? {}),
      ...this.info(),
      video: { width, height, fps, codec: 'h264', frames: this.#framesWritten() },
      audio: { codec: 'aac', sampleRate: 48000, channels: 1 },
    } as Manifest;
  }

  /**
   * What only the server knows: the bytes written, the length of what is in the sink, and a
   * first picture that came late (listed as an interruption at 0: its picture stands in for
   * the start, see Mp4Muxer).
   */
  #withSinkFields(m: Manifest): Manifest {
    const frames = this.#framesWritten();
    const first = this.#muxer.firstTick;
    const late = first > 0 && !m.interruptions?.some((i) => i.reason === LATE_START);
    return {
      ...m,
      ...(late ? { interruptions: [{ at: 0, gapMs: Math.round((first * 1000) / this.#o.config.video.fps), reason: LATE_START }, ...(m.interruptions ?? [])] } : {}),
      bytes: this.#bytes,
      ...(frames ? { durationMs: Math.round((frames * 1000) / this.#o.config.video.fps) } : {}),
      video: { ...m.video, frames },
      ...(this.#tracks ? { tracks: this.#tracks.snapshot() } : {}),
    };
  }

  #fail(err: TesseraError): void {
    if (this.#status === 'failed' || this.#status === 'available') return;
    this.#log.error({ code: err.code, err: err.message }, 'recording failed');
    this.#error = err.toJSON();
    this.#info.endedAt ??= new Date().toISOString();
    this.#setStatus('failed');
    // What was made stays: the muxer writes its last fragment, the sink keeps every whole one (a
    // file as it is, an upload completed), listed with the error and the duration it holds.
    this.#aborting = this.#muxer
      .finalize()
      .then(() => this.#sinkChain)
      .then(() => this.#tracks?.abort(err))
      .then(() => {
        const manifest = this.#withSinkFields({ ...this.#baseManifest(), status: 'failed', error: this.#error!, endReason: 'failed' });
        this.#info = { ...this.#info, durationMs: manifest.durationMs };
        return this.#o.sink.abort(err, manifest);
      })
      .catch((e: Error) => this.#log.error({ err: e.message }, 'keeping what a failed recording made failed'));
    this.#worker?.kill('SIGKILL');
    this.#close();
  }

  #setStatus(s: RecordingStatus): void {
    const next = nextStatus(this.#status, s);
    if (next === this.#status) return;
    this.#status = next;
    this.#log.info({ status: next }, 'recording status');
    this.#emitState();
  }

  #emitState(): void {
    const info = this.info();
    for (const l of this.listeners('state')) {
      try {
        (l as (i: RecordingInfo) => void)(info);
      } catch (err) {
        this.#log.error({ err }, 'state listener threw');
      }
    }
  }

  #sumStats(): void {
    const sum = sumStats(this.#statsBase, this.#statsNow);
    Object.assign(this.stats, sum, { framesDropped: sum.framesDropped + this.#shed });
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#beat) clearInterval(this.#beat);
    for (const id of [...this.#taps.keys()]) this.#untap(id);
    // A failed recording is done once what it made is kept (its manifest written).
    void this.#aborting.then(() => {
      this.#resolveDone(this.info());
      this.emit('close');
    });
  }
}

function sumStats(a: RecordingStats, b: RecordingStats): RecordingStats {
  return {
    framesDuplicated: a.framesDuplicated + b.framesDuplicated,
    framesDropped: a.framesDropped + b.framesDropped,
    compositorRestarts: a.compositorRestarts + b.compositorRestarts,
    decoderRestarts: a.decoderRestarts + b.decoderRestarts,
    // Point-in-time figures: the running worker's, else the last one's.
    encoderSpeed: b.encoderSpeed || a.encoderSpeed,
    distinctFps: b.distinctFps || a.distinctFps,
    preset: b.preset || a.preset,
    tiles: b.tiles ?? a.tiles,
    framesShed: a.framesShed + b.framesShed,
    cores: b.cores || a.cores,
    upstreamStalledMs: (a.upstreamStalledMs ?? 0) + (b.upstreamStalledMs ?? 0),
    ...(b.psnrDb ?? a.psnrDb) !== undefined ? { psnrDb: b.psnrDb ?? a.psnrDb } : {},
  };
}

/** The Recording fields of a manifest. */
function strip(m: Manifest): Partial<RecordingInfo> {
  const { endedAt, availableAt, durationMs, participants, layout, startedAt } = m;
  return { endedAt, availableAt, durationMs, participants, layout, startedAt };
}
