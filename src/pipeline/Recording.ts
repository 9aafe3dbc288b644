import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { EpochEncoder, type EpochTile } from './EpochEncoder';
import { AudioEncoder } from './AudioEncoder';
import { RecordingAudio } from './RecordingAudio';
import { TileContent, WAITING_ID } from './TileContent';
import { RecordingSources, TILE_SIZE, GOP_REPLAY_FRAMES, GOP_REPLAY_FRAMES_SHEDDING, type SourceState } from './RecordingSources';
import { computeLayout, shrinkTiles, type Layout } from '../../compositor/layout';
import { SpeakerDetector } from './SpeakerDetector';
import { nextStatus } from './status';
import { RecordingLedger } from './RecordingLedger';
import type { RecordingOptions, RecordingStats } from './RecordingOptions';
export { nextStatus };
import { AUDIO_BLOCK_MS, Pacer } from './Pacer';
import type { StrideController } from './StrideController';
import { LoadGovernor } from './LoadGovernor';
import { EpochRestarts, EPOCH_DEATH_WINDOW_MS } from './EpochRestarts';
import { WaitingEpoch, KEYFRAME_WAIT_MS, DECODER_WAIT_MS, type WaitOutcome } from './WaitingEpoch';
import { EpochSchedule, type ScheduledEpoch } from './EpochSchedule';
import type { GridPreset } from '../../compositor/presets';
import { TesseraError, toTesseraError } from '../errors';
import type { Logger } from '../logger';
import type { MediaSource, EncodedVideoFrame } from '../media/types';
import { economyAllowed, encoderSettingsOf, type EncoderSettings } from '../../compositor/ffmpegArgs';
import type { FfmpegExit } from './FfmpegProcess';
import type { Manifest, RecordingInfo, RecordingStatus } from './types';

/** The small-tiles level: each tile's video at half its width and height, centred in its cell. */
const SMALL_TILE_SCALE = 0.5;
/**
 * From the clock's start (its first picture comes 0.5–1 s later), a recording that fits its CPU
 * climbs the degradation ladder only for a large shortage (see StrideController startGraceMs).
 */
const START_GRACE_MS = 5000;

type Epoch = ScheduledEpoch<EpochEncoder>;

interface Events {
  state: [RecordingInfo];
  close: [];
}

/**
 * One recording of one room, in its worker process: per-source decoders, the pacer (Node owns
 * the clock), the layout epochs (one FFmpeg per layout that composes and encodes, swapped
 * make-before-break) and the one audio encoder; encoded pictures and AAC frames go out to the
 * server (RecordingOutput). Its status only moves forward; stop() is a drain.
 *
 * The invariant that keeps audio and video in sync and the file's duration equal to wall time:
 * every video tick has a timestamp of its own (tick / fps) and every 20 ms of audio is one mixed
 * block; a tick with no picture of its own (shed, or its epoch died) extends the previous one.
 */
export class Recording extends EventEmitter<Events> {
  readonly id: string;
  readonly roomId: string;
  readonly stats: RecordingStats = { framesDuplicated: 0, framesDropped: 0, compositorRestarts: 0, decoderRestarts: 0, encoderSpeed: 0, distinctFps: 0, preset: '', framesShed: 0, cores: 0 };
  #o: RecordingOptions;
  #log: Logger;
  #status: RecordingStatus = 'starting';
  /** Times, participants, layouts and gaps: what the manifest says about the recording. */
  #ledger: RecordingLedger;
  /** Per source: decoders, name card, video for direct epochs; the tile order. */
  #sources: RecordingSources;
  /** What each tile shows: live pictures or cards, leavers' tiles, the waiting tile. */
  #content: TileContent;
  #layoutName: string;
  #fps: number;
  /** Mixed audio and its encoder; set at start (the clock runs from then). */
  #audio: RecordingAudio | null = null;
  /** When a dead epoch is replaced, and when its deaths fail the recording. */
  #restarts = new EpochRestarts();
  /** The layout epochs and the order pictures leave in (make-before-break; see EpochSchedule). */
  #epochs: EpochSchedule<EpochEncoder>;
  /** debugHangCompositor before the first epoch: stop it as it begins. */
  #hangNext = false;
  /** Date.now() at the pacer's t0. */
  #t0Wall = 0;
  /** Frames made by the workers before this one (see RecordingResume). */
  #tickBase = 0;
  #stopAt = 0;
  #pacer: Pacer;
  #stopPromise: Promise<RecordingInfo> | null = null;
  #drainResolve: (() => void) | null = null;
  #speakers = new SpeakerDetector();
  #closed = false;
  /** Hung, far behind or falling behind: epochs replaced and work shed (see #checkLag). */
  #load: LoadGovernor<Epoch>;
  /** One tick in `stride` (on average) is composed; the others repeat the last composite. */
  #strides: StrideController;
  /** A new epoch waiting for its tiles' keyframes or pictures before it is fed (see #relayout). */
  #waiting = new WaitingEpoch<EpochEncoder>();
  #quietNow: () => number;

  constructor(opts: RecordingOptions) {
    super();
    this.#o = opts;
    this.id = opts.id;
    this.roomId = opts.roomId;
    this.#log = opts.logger.child({ recordingId: opts.id, roomId: opts.roomId });
    const preset = opts.presets.get(opts.layout);
    if (!preset) throw new TesseraError('REC_ERR_UNKNOWN_LAYOUT', `unknown layout "${opts.layout}"; known: ${[...opts.presets.keys()].join(', ')}`);
    this.#layoutName = opts.layout;
    this.#fps = opts.config.video.fps;
    this.#pacer = new Pacer({ fps: this.#fps, hooks: { video: (t) => this.#videoTick(t), audio: (b) => this.#audioTick(b), checked: () => this.#checkLag() } });
    this.#load = new LoadGovernor<Epoch>({
      fps: this.#fps,
      stallTimeoutMs: opts.config.stallTimeoutMs,
      economy: opts.config.x264Economy && economyAllowed({ preset: opts.config.x264Preset, x264Params: opts.config.x264Params }),
      smallTiles: opts.config.smallTiles,
      startShort: opts.startShort,
      startGraceMs: opts.startShort ? 0 : START_GRACE_MS,
      logger: this.#log,
    });
    this.#strides = this.#load.strides;
    // Quietness (a source's video live, an epoch hung) is judged on the quiet clock: see RecordingOptions.quietNow.
    const quietNow = opts.quietNow ?? (() => performance.now());
    this.#quietNow = quietNow;
    this.#epochs = new EpochSchedule<EpochEncoder>({
      now: quietNow,
      ticks: () => this.#pacer.ticks,
      emit: (tick, au, key) => {
        this.#restarts.produced();
        this.#o.out.video(this.#tickBase + tick, au, key);
        if (this.#status === 'starting') this.#setStatus('recording');
      },
      drained: () => this.#drainResolve?.(),
    });
    // Shed ticks are counted where they leave (the schedule); the stats read them live.
    Object.defineProperty(this.stats, 'framesShed', { enumerable: true, get: () => this.#epochs.shed });
    this.#content = new TileContent({ source: (id) => this.#sources.get(id), videoTimeoutMs: opts.config.videoTimeoutMs, stallTimeoutMs: opts.config.stallTimeoutMs, camera: TILE_SIZE.camera, now: quietNow });
    this.#sources = new RecordingSources({
      config: opts.config,
      ffmpegPath: opts.ffmpegPath,
      logger: this.#log,
      fps: this.#fps,
      quietNow,
      content: this.#content,
      onFrame: (s, f) => this.#routeFrame(s, f),
      // Decoded tiles: shown from the tick of their capture time too, once the clock runs.
      frameTick: (s, f) => (this.#pacer.started ? this.#frameTick(s, f, performance.now()) : undefined),
      onCodecChange: (s) => this.#onCodecChange(s),
      onRestart: () => this.stats.decoderRestarts++,
      onClose: (id) => this.removeSource(id),
    });
    this.#ledger = new RecordingLedger({ resume: opts.resume });
    this.#tickBase = opts.resume?.tickBase ?? 0;
  }

  /** Date.now() of the clock's tick 0 (0 before start). */
  get t0Wall(): number {
    return this.#t0Wall;
  }

  /** Video ticks the recording holds: the earlier workers' and this one's. */
  get framesEncoded(): number {
    return this.#tickBase + this.#epochs.next;
  }

  /** Wall-clock ms the recording captured: from its clock's start to the stop request. */
  get capturedMs(): number {
    return (this.#stopAt || performance.now()) - this.#pacer.t0;
  }

  /** Refreshes the per-source counters in `stats` (tile repeats and drops, summed over sources). */
  #updateFrameStats(): void {
    const { repeated, dropped } = this.#sources.frameCounts();
    this.stats.framesDuplicated = repeated + this.#epochs.repeats + this.#epochs.shed;
    this.stats.framesDropped = dropped;
  }

  get status(): RecordingStatus {
    return this.#status;
  }

  info(): RecordingInfo {
    const { startedAt, participants, endedAt, availableAt, bytes, error } = this.#ledger.info();
    const info: RecordingInfo = { id: this.id, roomId: this.roomId, status: this.#status, startedAt, layout: this.#layoutName, location: this.#o.out.location, participants };
    if (endedAt) info.endedAt = endedAt;
    if (availableAt) info.availableAt = availableAt;
    if (this.#epochs.next || this.#tickBase) info.durationMs = Math.round((this.framesEncoded * 1000) / this.#fps);
    if (bytes) info.bytes = bytes;
    if (error) info.error = error;
    return info;
  }

  manifest(endReason?: Manifest['endReason']): Manifest {
    const { width, height, fps } = this.#o.config.video;
    return {
      version: 1,
      ...this.info(),
      ...(endReason ? { endReason } : {}),
      video: { width, height, fps, codec: 'h264', frames: this.framesEncoded },
      audio: { codec: 'aac', sampleRate: 48000, channels: 1 },
      ...this.#ledger.manifest(),
    };
  }

  /** The x264 settings every epoch shares (so their streams splice into one). */
  #encoderSettings(): EncoderSettings {
    const { config } = this.#o;
    const s = encoderSettingsOf(config, { width: config.video.width, height: config.video.height, fps: this.#fps });
    return this.#strides.economy ? { ...s, economy: true } : s;
  }

  /** Spawn the audio encoder and the first epoch, start the clock. Sources may be added before or after. */
  async start(): Promise<void> {
    const { config, ffmpegPath } = this.#o;
    fs.mkdirSync(this.#o.workDir, { recursive: true });
    // The clock must not wait for cosmetics: the card is rendered in the background.
    this.#sources.renderWaitingCard();

    if (this.#closed) return;
    const enc = new AudioEncoder({ ffmpegPath, audioBitrate: config.audioBitrate, drainMs: config.stopTimeoutMs, logger: this.#log.child({ proc: 'aenc' }) });
    this.#audio = new RecordingAudio(enc, {
      tickBase: this.#tickBase,
      fps: this.#fps,
      out: (pos, frame) => this.#o.out.audio(pos, frame),
      onExit: (exit) => {
        if (exit.kind === 'stopped') return;
        const code = exit.kind === 'failed-to-start' ? 'REC_ERR_FFMPEG_START' : 'REC_ERR_ENCODER_DIED';
        this.#fail(new TesseraError(code, `encoder ${exit.kind === 'died' ? 'died' : 'failed to start'} (code ${exit.code}, signal ${exit.signal}): ${exit.stderr}`));
      },
    });
    let t0 = performance.now();
    this.#t0Wall = Date.now();
    if (this.#o.resume) {
      // Continue the first worker's clock: the ticks between the last picture the server got
      // and now are due at once and get made from name cards (the pacer's catch-up).
      t0 -= this.#t0Wall - this.#o.resume.t0Wall;
      this.#t0Wall = this.#o.resume.t0Wall;
      this.#relayout();
      this.#pacer.start(t0);
      return;
    }
    // startedAt becomes the file's t = 0 (it was the request's time; the worker's start lies between).
    this.#log.debug({ afterRequestMs: this.#ledger.clockStarted() }, 'clock started');
    this.#relayout();
    this.#pacer.start(t0);
    // The server learns the clock now, not at the first picture: a worker that dies before its
    // first picture is then continued on this clock (the call's first seconds stay in the file).
    this.#emitState();
  }

  addSource(source: MediaSource): void {
    if (this.#closed || this.#status === 'stopping' || this.#sources.has(source.id)) return;
    this.#sources.add(source);
    if (source.kind === 'camera') this.#ledger.joined(source.participantId, source.name);
    this.#log.info({ sourceId: source.id, kind: source.kind }, 'source added');
    if (this.#audio) {
      // A direct epoch's input for it needs its codec, which its first frame tells (Safari may
      // send H.264): the new layout waits for that frame, at most KEYFRAME_WAIT_MS (a source
      // without video gets its card then). Started at once with a VP8 input, an H.264
      // newcomer cost a second epoch, and in a 0.45-core quota in CI 1.9 s to appear (day 24).
      if (this.#sources.direct) {
        const timer = setTimeout(() => {
          this.#firstFrameWaits.delete(timer);
          if (this.#sources.has(source.id) && !this.#shows(source.id)) this.#relayoutSoon();
        }, KEYFRAME_WAIT_MS);
        this.#firstFrameWaits.add(timer);
      } else this.#relayoutSoon();
    }
    this.#emitState();
  }

  /** Timers of newcomers' waits for their first frame (see addSource). */
  #firstFrameWaits = new Set<NodeJS.Timeout>();

  /** Whether an epoch still fed, or the one waiting to start, has a tile for `id`. */
  #shows(id: string): boolean {
    const has = (tiles: readonly EpochTile[]) => tiles.some((t) => t.sourceId === id);
    return this.#epochs.epochs.some((e) => !e.dead && this.#pacer.ticks < e.feedUntil && has(e.handle.tiles)) || has(this.#waiting.tiles);
  }

  removeSource(sourceId: string): void {
    const s = this.#sources.remove(sourceId);
    if (!s) return;
    if (s.source.kind === 'camera') this.#ledger.left(s.source.participantId);
    const a = s.audio.buffer;
    this.#log.info({ sourceId, audio: { droppedMs: Math.round(a.droppedBytes / 96), paddedMs: Math.round(a.paddedBytes / 96), underruns: a.underruns }, pictureDelayMs: Math.round(s.pictureDelay.ms) }, 'source removed');
    if (this.#audio && this.#status !== 'stopping') this.#relayoutSoon();
    this.#emitState();
  }

  /** Per-source diagnostics (decoder and jitter-buffer counters), for logs and tests. */
  debugSources(): object[] {
    return this.#sources.debug();
  }

  /** Test and operator hooks: kill a child as if it crashed. */
  /** `compositor`: the epoch in charge (it composes and encodes the video); `encoder`: the audio encoder. */
  debugKill(what: 'compositor' | 'encoder' | { decoder: string }): void {
    if (what === 'compositor') this.#epochs.owner(this.#epochs.next)?.handle.kill();
    else if (what === 'encoder') this.#audio?.kill();
    else this.#sources.get(what.decoder)?.video.killProcess();
  }

  /**
   * For fault tests: SIGSTOP the compositor in charge (a hung graph: alive, producing nothing),
   * or the first one as it begins when none is in charge yet (a start that hangs).
   */
  debugHangCompositor(): void {
    const owner = this.#epochs.owner(this.#epochs.next);
    if (owner) owner.handle.proc.kill('SIGSTOP');
    else this.#hangNext = true;
  }

  /**
   * Drain: stop the clock, compose and encode what was captured, finish the sink. `atWall`
   * (Date.now() of the stop request, when it was made elsewhere) ends the recording there even if
   * this process gets to it later: what was made after it is left out.
   */
  stop(atWall?: number): Promise<RecordingInfo> {
    if (this.#stopPromise) return this.#stopPromise;
    this.#stopPromise = this.#drain(atWall);
    return this.#stopPromise;
  }

  // ---- video in ---------------------------------------------------------------------------

  /**
   * A direct epoch's tiles take a source's frame as it arrives (see RecordingSources); a tile
   * whose input takes another codec shows its card until a new epoch replaces it (#onCodecChange).
   */
  #routeFrame(s: SourceState, f: EncodedVideoFrame): void {
    const now = performance.now();
    const next = this.#frameTick(s, f, now);
    // How long it waits to be shown (the first composed tick from there, when ticks are shed):
    // the source's audio is made to wait as long (lip sync).
    let shown = next;
    while (!this.#strides.composes(shown) && shown < next + 4) shown++;
    s.pictureDelay.note(this.#pacer.t0 + (shown * 1000) / this.#fps - now);
    const ahead = this.#strides.composedIn(this.#pacer.ticks, next);
    // More than a tick overdue: the clock is catching up (a starved worker), not just a timer
    // about to fire (see DirectFeed.frame).
    const catchingUp = this.#pacer.nextTickAt(now) - this.#pacer.ticks >= 2;
    for (const e of this.#epochs.epochs) {
      const feed = e.handle.direct;
      if (!feed || e.dead || next < e.feedFrom || next >= e.feedUntil) continue;
      e.handle.tiles.forEach((t, i) => {
        if (t.sourceId === s.source.id && (t.codec ?? 'vp8') === f.codec && !feed.frame(i, f.data, f.keyframe, ahead, catchingUp)) s.tile.askKeyframe();
      });
    }
  }

  /**
   * A source's codec is known from its frames (its first good frame; a Safari participant's first
   * H.264 frame; a renegotiation). A newcomer waiting for it gets its layout. An
   * epoch input has one codec for life, so tiles of it in epochs still fed, or in the one
   * waiting to start, need a new epoch. Until it takes over they show the source's card.
   */
  #onCodecChange(s: SourceState): void {
    // A newcomer's first frame: the layout with its tile (see addSource).
    if (this.#audio && !this.#shows(s.source.id)) return this.#relayoutSoon();
    const stale = (tiles: readonly EpochTile[]) => tiles.some((t) => t.sourceId === s.source.id && (t.codec ?? 'vp8') !== s.tile.codec);
    const fed = this.#epochs.epochs.some((e) => !!e.handle.direct && !e.dead && this.#pacer.ticks < e.feedUntil && stale(e.handle.tiles));
    if (fed || (this.#waiting.handle?.direct && stale(this.#waiting.tiles))) this.#relayoutSoon();
  }

  /**
   * The tick that shows a source's video frame arriving `now`: its own by its capture time
   * (FrameTicks), or the first the clock can still make. The same for direct epochs (#routeVp8)
   * and decoded tiles (VideoDecoder.take).
   */
  #frameTick(s: SourceState, f: EncodedVideoFrame, now: number): number {
    // The first tick that can show it: the clock's next, or a later one by wall time while the
    // clock catches up (pictures of the ticks between are composed without it).
    let next = this.#pacer.nextTickAt(now);
    // Its own tick by its capture time (FrameTicks), unless that tick is made already. While the
    // clock catches up (a starved worker read it late), that can be a tick before the one due
    // now by wall time: a frame captured in time for a tick still to be made is shown there, so
    // the ticks made in the catch-up are not all repeats (a join in 0.45 cores: day 18).
    if (this.#pacer.started) {
      const own = s.frameTicks.place(f.rtpTimestamp, ((now - this.#pacer.t0) * this.#fps) / 1000);
      if (own < this.#pacer.ticks) s.frameTicks.late++;
      next = Math.max(own, this.#pacer.ticks);
    }
    return next;
  }

  // ---- the clock -------------------------------------------------------------------------

  #videoTick(tick: number): void {
    if (!this.#audio) return;
    this.#startPendingEpoch();
    const frameFor = this.#content.rawTick(tick, this.#pacer.t0 + (tick * 1000) / this.#fps);
    // A shed tick composes nothing: raw tiles are not written, and a direct epoch's decoders
    // take the frames that arrive meanwhile into its next picture (see DirectFeed).
    // Short of CPU, an epoch being replaced composes nothing while its successor starts.
    // (Or already behind when a layout change comes: two epochs decoding at once is what a
    // starved recording cannot afford; measured in 0.30 cores, a join at full rate froze it.)
    const idleSuperseded = this.#strides.stride > 1 || this.#load.behind > this.#fps / 6;
    // A tick with nothing new in the tiles of the epochs it would compose moves to the next
    // (StrideController.compose).
    const fresh = this.#fresh(tick, idleSuperseded);
    const shed = !this.#strides.compose(tick, fresh);
    this.#epochs.feed(tick, shed, (e) => {
      const feed = e.handle.direct;
      if (!feed) return e.handle.write(e.handle.tiles.map((t) => frameFor(t.sourceId)));
      const tiles = e.handle.tiles;
      feed.tick((i) => this.#content.live(tiles[i].sourceId, tiles[i].codec), (i) => this.#content.codedCard(tiles[i].sourceId, tiles[i].codec));
    }, idleSuperseded);
    // Forget a departed tile once no graph that is still fed has it.
    this.#content.forgetDeparted((id) => this.#epochs.stillFed(tick, (e) => e.handle.tiles.some((t) => t.sourceId === id)));
    this.#updateFrameStats();
  }

  /**
   * Whether a tick would show anything new: a direct epoch that would compose it has a frame for
   * its next picture (or has made none yet); not one being replaced that composes nothing while
   * its successor starts (its frames wait for a picture it will not make). Raw tiles are written
   * whole every composed tick: always.
   */
  #fresh(tick: number, idleSuperseded: boolean): boolean {
    const composing = this.#epochs.composing(tick, idleSuperseded);
    return composing.length === 0 || composing.some((e) => !e.handle.direct || e.handle.direct.fresh());
  }

  #audioTick(block: number): void {
    if (!this.#audio) return;
    const ids = this.#sources.ids();
    // Each source's block as old as its pictures' wait for their tick says (lip sync: RecordingAudio).
    const levels = this.#audio.block(this.#pacer.t0 + block * AUDIO_BLOCK_MS, ids.map((id) => {
      const s = this.#sources.get(id)!;
      return { buffer: s.audio.buffer, pictureDelayMs: s.pictureDelay.ms };
    }));
    this.#speakers.addLevels(ids, levels);
    if ((block + 1) % 25 === 0) this.#updateSpeaker();
  }

  // ---- compositor epochs -----------------------------------------------------------------

  #preset(): GridPreset {
    const presets = this.#o.presets;
    const hasScreen = this.#sources.order.some((id) => this.#sources.get(id)?.source.kind === 'screen');
    return hasScreen ? presets.get('screenshare')! : presets.get(this.#layoutName)!;
  }

  #currentLayout(): { layout: Layout; tiles: EpochTile[] } {
    const { width, height } = this.#o.config.video;
    const ids = this.#sources.order.length ? [...this.#sources.order] : [WAITING_ID];
    const whole = computeLayout(this.#preset(), {
      width,
      height,
      tiles: ids.map((id) => ({ id, kind: this.#sources.get(id)?.source.kind ?? 'camera' })),
      speakerId: this.#speakers.speaker,
    });
    const layout = this.#strides.smallTiles ? shrinkTiles(whole, SMALL_TILE_SCALE) : whole;
    const tiles = layout.tiles.map((t) => {
      const s = this.#sources.get(t.id);
      const size = TILE_SIZE[s?.source.kind ?? 'camera'];
      return { sourceId: t.id, name: s ? s.source.name : '', w: size.w, h: size.h, codec: s?.tile.codec ?? 'vp8' };
    });
    return { layout, tiles };
  }

  #relayoutPending = false;

  /**
   * Joins and leaves arrive in bursts (a room's participants when a recording starts, a
   * meeting's first minute, a socket.io reconnect storm). Each relayout spawns a compositor and
   * kills the one still warming up, so N joins in one turn would start N graphs, each costing a
   * process start, for one layout in the end. Coalesce them: one relayout after this turn's I/O.
   */
  #relayoutSoon(): void {
    if (this.#relayoutPending) return;
    this.#relayoutPending = true;
    setImmediate(() => {
      this.#relayoutPending = false;
      this.#relayout();
    });
  }

  /**
   * Start an epoch for the current layout. It takes over from its first tick once its first
   * picture (an IDR) is out; until then nothing from that tick on is sent (the schedule holds them),
   * so the old epoch's pictures for those ticks can still be used if the new one fails.
   */
  #relayout(): void {
    if (this.#closed || this.#epochs.finalTick >= 0 || !this.#audio) return;
    const { layout, tiles } = this.#currentLayout();
    const direct = this.#sources.direct;
    const comp = new EpochEncoder({
      ffmpegPath: this.#o.ffmpegPath,
      layout,
      tiles,
      fps: this.#fps,
      background: this.#preset().background,
      fontFile: this.#o.config.fontFile,
      workDir: this.#o.workDir,
      settings: this.#encoderSettings(),
      logger: this.#log.child({ proc: 'epoch' }),
      direct: direct ? { cardOf: (i) => this.#content.codedCard(tiles[i].sourceId, tiles[i].codec) } : undefined,
    });
    let epoch: Epoch | null = null;
    comp.on('frame', (au, key) => epoch && this.#onEncoded(epoch, au, key));
    comp.on('progress', (p) => {
      if (p.speed !== undefined && epoch && this.#epochs.owner(this.#epochs.next) === epoch) this.stats.encoderSpeed = p.speed;
    });
    comp.on('psnr', (db) => (this.stats.psnrDb = db));
    comp.on('decodeError', (i) => {
      // That tile's decoder lost the stream; its next frames would come out as nothing or garbage.
      const t = tiles[i];
      comp.direct?.desync(i);
      const s = t && this.#sources.get(t.sourceId);
      if (s) {
        s.tile.gop.clear();
        s.tile.askKeyframe();
      }
    });
    comp.on('exit', (exit) => {
      if (epoch) return this.#onCompositorExit(epoch, exit);
      // Died while waiting for keyframes (the current epoch goes on): try again.
      if (!this.#waiting.died(comp) || this.#closed) return;
      this.stats.compositorRestarts++;
      if (!this.#epochDied(exit)) setTimeout(() => this.#relayout(), this.#restarts.nextDelayMs());
    });
    const begin = (w?: WaitOutcome) => {
      const readyOnce = w?.readyOnce ?? new Set<number>();
      epoch = this.#epochs.begin(comp);
      if (this.#hangNext) comp.proc.kill('SIGSTOP');
      this.#hangNext = false;
      this.#ledger.layout(layout.preset, tiles.map((t) => t.sourceId), !!layout.tileScale);
      // waitedMs/notReady: a make-before-break wait, and how many tiles it gave up on (cards).
      this.#log.debug({ tick: this.#pacer.ticks, tiles: tiles.length, direct, waitedMs: w?.waitedMs, notReady: w?.notReady }, 'epoch starting');
      if (comp.direct) {
        // Each tile starts from its source's frames since their last keyframe, or its card.
        const gops = tiles.map((t, i) => {
          const s = this.#sources.get(t.sourceId);
          const gop = s && s.tile.codec === t.codec ? s.tile.gop.frames(this.#replayLimit(readyOnce.has(i))) : null;
          if (s && !gop) s.tile.askKeyframe();
          return gop;
        });
        comp.direct.begin(gops, (i) => this.#content.codedCard(tiles[i].sourceId, tiles[i].codec));
      }
    };
    this.#waiting.kill();
    const live = this.#epochs.owner(this.#pacer.ticks);
    // Waiting is worth it only while the current epoch shows someone (not just cards: the first
    // layout of a continuing worker, a replacement for a dead epoch).
    const showsSomeone = !!live && !live.dead && live.handle.tiles.some((t) => this.#content.live(t.sourceId));
    if (!showsSomeone) return begin();
    // Make-before-break: while the current epoch goes on, the new one waits (at most
    // KEYFRAME_WAIT_MS or DECODER_WAIT_MS) until every tile has something to show. Direct: the epoch's decoders
    // start empty, so each tile needs a keyframe to start from. Decoded tiles
    // (TESSERA_DIRECT_DECODE=false): each source with video needs its decoder's first picture.
    // The first poll asks the senders of direct tiles with nothing to replay for keyframes.
    this.#waiting.wait(comp, tiles, this.#quietNow(), begin);
    this.#startPendingEpoch();
  }

  /**
   * How many of a source's frames a new direct epoch replays rather than wait for a keyframe.
   * Short of CPU, replaying 4 × 2 s of frames cost a switch seconds in 0.25 cores (the new epoch
   * decodes them while the old one runs): then only a short group is replayed.
   */
  #replayLimit(wasReady = false): number {
    // A tile found ready during the wait (its group was short enough then) stays ready: its group
    // has grown by at most the wait (1 s) since, and asking again would need every tile's short
    // window at the same poll (WaitingEpoch).
    return this.#strides.stride > 1 && !wasReady ? GOP_REPLAY_FRAMES_SHEDDING : GOP_REPLAY_FRAMES;
  }

  /** Starts the waiting epoch once its tiles have keyframes or pictures (or it waited long enough). */
  #startPendingEpoch(): void {
    const now = this.#quietNow();
    this.#waiting.poll(now, (t, direct, wasReady) => {
      const s = this.#sources.get(t.sourceId);
      if (!s) return true;
      if (direct) {
        // A source that sent nothing yet (or another codec) has nothing to wait for either.
        if (s.tile.codec !== t.codec || s.tile.gop.frames(this.#replayLimit(wasReady))) return true;
        // Asked at every poll (SourceVideo spaces the asks), not only when the epoch was made: a
        // group that could be replayed then may have grown past the limit since, and nobody
        // would ask for it. At 15 fps with 2-s groups that made most layout changes wait the
        // whole KEYFRAME_WAIT_MS and start with cards (day 33).
        s.tile.askKeyframe();
        return false;
      }
      // A source without recent video (camera off, audio only) has nothing to wait for.
      return s.video.latestAt > 0 || s.tile.codec === null || now - s.tile.lastVideoAt > DECODER_WAIT_MS;
    });
  }

  #onEncoded(epoch: Epoch, au: Buffer, key: boolean): void {
    if (!this.#audio) return;
    if (this.#epochs.output(epoch, au, key)) this.#log.debug({ switchTick: epoch.ownFrom, preset: epoch.handle.layout.preset }, 'layout switched');
  }

  #onCompositorExit(epoch: Epoch, exit: FfmpegExit): void {
    // Ended after its last tick, killed by us (superseded while warming up), or draining: expected.
    const lost = this.#epochs.unanswered(epoch);
    const { unexpected, replace } = this.#epochs.exited(epoch, this.#closed);
    if (!unexpected) {
      // Nothing to replace, but pictures it was fed and did not put out are a freeze in the file:
      // say so, with how it ended (a grace run out shows as SIGINT), since no other line would.
      if (lost.length) this.#log.warn({ pictures: lost.length, fromTick: lost[0], toTick: lost[lost.length - 1], exit: { kind: exit.kind, code: exit.code, signal: exit.signal } }, 'an ended epoch exited without pictures it was fed; their ticks repeat the picture before');
      return;
    }
    this.stats.compositorRestarts++;
    if (this.#load.countsAsDeath(epoch) && this.#epochDied(exit)) return;
    this.#log.warn({ exit }, 'epoch died; replacing it');
    if (replace) setTimeout(() => this.#relayout(), this.#restarts.nextDelayMs());
  }

  /** Counts an epoch's death; true when that many mean its encoder cannot run here (the recording failed). */
  #epochDied(exit: { stderr: string }): boolean {
    if (!this.#restarts.died()) return false;
    this.#fail(new TesseraError('REC_ERR_ENCODER_DIED', `the video encoder died ${this.#restarts.recentDeaths} times within ${EPOCH_DEATH_WINDOW_MS / 1000} s: ${exit.stderr}`));
    return true;
  }

  /** After each run of due ticks: replace an epoch that is hung or far behind, shed or restore work (LoadGovernor). */
  #checkLag(): void {
    if (this.#closed) return;
    const owner = this.#epochs.owner(this.#epochs.next);
    const live = this.#epochs.epochs.filter((e) => !e.dead).length;
    const { replace, relayout } = this.#load.check(owner, {
      owed: this.#pacer.ticks - this.#epochs.next,
      owner: !!owner && !owner.dead,
      starting: this.#epochs.starting(owner),
      // On the quiet clock: an epoch fed nothing because nothing came from the server is not hung.
      silentMs: owner ? this.#quietNow() - owner.lastOutputAt : 0,
      depth: owner?.depth ?? 0,
      pictures: owner?.fed.length ?? 0,
      settled: !this.#waiting.handle && live <= 1,
      inEffect: (level) => !owner || (!!owner.handle.settings.economy === level.economy && !!owner.handle.layout.tileScale === level.smallTiles),
    }, performance.now(), { epochs: this.#epochs.epochs.length, pending: !!this.#waiting.handle });
    if (owner && replace) owner.handle.kill();
    if (relayout) this.#relayout();
    // One decimal: 13⅓ a second is reported as 13.3 (it also labels a metric's series).
    this.stats.distinctFps = Math.round(this.#strides.distinctFps * 10) / 10;
    // What the epoch making the next pictures uses; kept as it was while none does (the end).
    if (owner) {
      this.stats.preset = owner.handle.settings.economy ? 'economy' : this.#o.config.x264Preset;
      this.stats.tiles = owner.handle.layout.tileScale ? 'small' : 'full';
    } else this.stats.preset ||= this.#o.config.x264Preset;
  }

  #updateSpeaker(): void {
    if (this.#preset().kind !== 'speaker') return;
    if (this.#speakers.decide(Date.now(), (id) => this.#sources.has(id))) this.#relayout();
  }

  // ---- lifecycle -------------------------------------------------------------------------

  async #drain(atWall?: number): Promise<RecordingInfo> {
    if (this.#status === 'failed' || this.#closed) return this.info();
    this.#setStatus('stopping');
    this.#ledger.ended();
    this.#pacer.stop();
    const audio = this.#audio;
    if (!audio) {
      this.#fail(new TesseraError('REC_ERR_INTERNAL', 'stopped before the encoder started'));
      return this.info();
    }
    const watchdog = setTimeout(() => {
      this.#fail(new TesseraError('REC_ERR_STOP_TIMEOUT', `the pipeline did not drain within ${this.#o.config.stopTimeoutMs} ms`));
    }, this.#o.config.stopTimeoutMs);
    try {
      // Capture everything up to the stop request, then stop feeding. A request read late (this
      // worker was starved of CPU) still ends the recording at its time: ticks made since are dropped.
      const late = atWall === undefined ? 0 : Math.max(0, Date.now() - atWall);
      this.#stopAt = performance.now() - late;
      this.#pacer.stop(this.#stopAt);
      const stopTick = Math.ceil(((this.#stopAt - this.#pacer.t0) * this.#fps) / 1000);
      if (late > 100) this.#log.warn({ lateMs: Math.round(late), ticksDropped: Math.max(0, this.#pacer.ticks - stopTick) }, 'stop request read late; the recording ends at its time');
      const drained = new Promise<void>((r) => (this.#drainResolve = r));
      this.#waiting.kill();
      this.#epochs.drain(Math.max(0, Math.min(this.#pacer.ticks, stopTick)));
      // Audio beyond the last picture is not kept either.
      audio.endAt(Math.round(((this.#tickBase + this.#epochs.finalTick) * 48000) / this.#fps));
      await drained;
      if (this.#isFailed()) return this.info();
      // Every picture is out; the audio encoder flushes its last frames and exits.
      const exit = await audio.finish();
      if (this.#isFailed()) return this.info();
      // Only a clean exit (code 0, after flushing everything it was given) makes a complete file;
      // an encoder that had to be interrupted left the end out, which must not pass as available.
      if (exit.code !== 0) throw new TesseraError('REC_ERR_ENCODER_DIED', `encoder did not finish cleanly (code ${exit.code}, signal ${exit.signal}): ${exit.stderr}`);
      // How each source's audio was kept in step with its pictures (drops and silence added).
      this.#log.info({ sources: this.#sources.debug(), deferredTicks: this.#strides.deferred }, 'sources at the end');
      this.#sources.closeAll();
      // The manifest stored is the final one: available (the server adds the bytes it wrote).
      const availableAt = new Date();
      const final: Manifest = { ...this.manifest('stopped'), status: 'available', availableAt: availableAt.toISOString() };
      const result = await this.#o.out.finish(final);
      this.#ledger.available(availableAt, result.bytes);
      this.#setStatus('available');
    } catch (err) {
      this.#fail(toTesseraError(err, 'REC_ERR_SINK'));
    } finally {
      clearTimeout(watchdog);
      this.#close();
    }
    return this.info();
  }

  #fail(err: TesseraError): void {
    if (this.#status === 'failed' || this.#status === 'available') return;
    this.#log.error({ code: err.code, err: err.message }, 'recording failed');
    this.#ledger.failed(err.toJSON());
    this.#setStatus('failed');
    void this.#o.out.abort(err, this.manifest('failed'));
    this.#drainResolve?.();
    this.#close();
  }

  #isFailed(): boolean {
    return this.#status === 'failed';
  }

  #setStatus(s: RecordingStatus): void {
    const next = nextStatus(this.#status, s);
    if (next === this.#status) return;
    this.#status = next;
    this.#log.info({ status: s }, 'recording status');
    this.#emitState();
  }

  #emitState(): void {
    const info = this.info();
    // The server keeps the latest manifest: a crash-recovered or continued recording still
    // names its participants and layouts.
    if (info.status === 'starting' || info.status === 'recording') this.#o.out.checkpoint(this.manifest());
    for (const l of this.listeners('state')) {
      try {
        (l as (i: RecordingInfo) => void)(info);
      } catch (err) {
        this.#log.error({ err }, 'state listener threw');
      }
    }
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#firstFrameWaits) clearTimeout(t);
    this.#firstFrameWaits.clear();
    this.#pacer.stop();
    this.#epochs.clear((e) => !e.handle.proc.hasExited);
    this.#waiting.kill();
    this.#sources.closeAll();
    if (this.#audio && this.#status === 'failed') this.#audio.kill();
    fs.rm(this.#o.workDir, { recursive: true, force: true }, () => undefined);
    this.emit('close');
  }
}

export function workDirFor(base: string, id: string): string {
  return path.join(base, id);
}
