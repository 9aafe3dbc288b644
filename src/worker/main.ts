/**
 * A recording's worker process: everything that touches a recording's pixels runs here, so the
 * server's event loop (the SFU) carries none of it and a crash here never reaches the meeting.
 *
 * The server spawns this file with fd 3 as a socket pair (see protocol.ts), sends `Init`, then the
 * room's sources and their encoded media. This process runs the pipeline (decoders, pacer, layout
 * epochs that compose and encode, the audio encoder) and sends back encoded pictures and AAC
 * frames, its status and its counters. The MP4 muxer and the sink stay in the server (RemoteOutput
 * below is their stand-in): the file or the S3 upload is the recording's durable state, and a
 * worker that dies must not take any of it along.
 *
 * A worker may start as a spare, before it has a recording: it loads its modules and says
 * `Ready`, so that starting a recording (or replacing a dead worker) costs no process start.
 * After a recording that ended `available` it may say `Ready` again and wait for the next one
 * (config `workerReuse`); one process never runs two recordings at once.
 */
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { Recording } from '../pipeline/Recording';
import type { RecordingOutput, RecordingResume } from '../pipeline/RecordingOptions';
import { loadPresets } from '../../compositor/presets';
import { logger } from '../logger';
import { TesseraError, toTesseraError } from '../errors';
import { treeCpuSeconds } from '../pipeline/cpu';
import { BEAT_SLACK_MS, flush, LAZY_MS, FromWorker, MessageReader, send, ToWorker, type Message } from './protocol';
import { UpstreamClock } from '../pipeline/UpstreamClock';
import type { Config } from '../config';
import type { MediaSource, MediaSourceEvents, SourceKind, RecordingLocation, VideoCodec } from '../media/types';
import type { Manifest } from '../pipeline/types';

export interface InitMessage {
  id: string;
  roomId: string;
  layout: string;
  config: Config;
  ffmpegPath: string;
  workDir: string;
  location: RecordingLocation;
  resume?: RecordingResume;
  /** Start degraded: the recording does not fit the server's CPU budget at full quality, or continues one that was degraded. */
  startShort?: boolean;
  /** The sources present at the start (so the first layout has them, not a waiting card). */
  sources: SourceMessage[];
}

export interface SourceMessage {
  /** Small integer naming the source on the wire (media headers carry it, not the id). */
  n: number;
  id: string;
  participantId: string;
  name: string;
  kind: SourceKind;
  /** Its video's negotiated codec, if the server knew it when the source was added (MediaSource.videoCodec). */
  c?: VideoCodec;
}

/** A source whose media arrives from the server. */
class RemoteSource extends EventEmitter<MediaSourceEvents> implements MediaSource {
  constructor(
    readonly id: string,
    readonly participantId: string,
    readonly name: string,
    readonly kind: SourceKind,
    readonly videoCodec: VideoCodec | null,
    private readonly onKeyframe: () => void,
  ) {
    super();
  }
  requestKeyframe(): void {
    this.onKeyframe();
  }
}

/** The server's muxer and sink, seen from here. */
class RemoteOutput implements RecordingOutput {
  #pending: { resolve: (r: { bytes: number }) => void; reject: (e: Error) => void } | null = null;
  constructor(readonly location: RecordingLocation, private readonly out: net.Socket) {}
  video(tick: number, au: Buffer, key: boolean): void {
    send(this.out, FromWorker.Video, { t: tick, k: key }, au, LAZY_MS);
  }
  audio(pos: number, frame: Buffer): void {
    send(this.out, FromWorker.Audio, { p: pos }, frame, LAZY_MS);
  }
  checkpoint(manifest: Manifest): void {
    send(this.out, FromWorker.Checkpoint, manifest);
  }
  finish(manifest: Manifest): Promise<{ bytes: number }> {
    send(this.out, FromWorker.SinkFinish, manifest);
    return new Promise((resolve, reject) => (this.#pending = { resolve, reject }));
  }
  async abort(reason: Error, manifest: Manifest): Promise<void> {
    send(this.out, FromWorker.SinkAbort, { error: toTesseraError(reason, 'REC_ERR_INTERNAL').toJSON(), manifest });
  }
  done(result: { bytes: number } | { error: { code: string; message: string } }): void {
    const p = this.#pending;
    this.#pending = null;
    if (!p) return;
    if ('error' in result) p.reject(new TesseraError(result.error.code as never, result.error.message));
    else p.resolve(result);
  }
}

/** A worker using more memory than this after its recording exits instead of waiting for another. */
const IDLE_RSS_MB = 160;

/** The process's live handles and requests (child processes, pipes, timers, ...) by type. */
function resourceCounts(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

/** What is live now beyond what was live while idle, e.g. ['ProcessWrap×1']. */
function leftover(idle: Map<string, number>): string[] {
  return [...resourceCounts()].filter(([k, n]) => n > (idle.get(k) ?? 0)).map(([k, n]) => `${k}×${n - (idle.get(k) ?? 0)}`);
}

function main(): void {
  const sock = new net.Socket({ fd: 3, readable: true, writable: true });
  const reader = new MessageReader();
  const sources = new Map<number, RemoteSource>();
  let recording: Recording | null = null;
  let output: RemoteOutput | null = null;
  let statsTimer: NodeJS.Timeout | null = null;
  let exiting = false;
  // Reuse (config `workerReuse`): recordings this process has run, and what it holds while idle.
  let served = 0;
  let maxUses = 1;
  let idleResources: Map<string, number> | null = null;
  // Everything from the server (media, control, its heartbeat) keeps this clock running.
  // A new one per recording: the wait for it (a spare's, or a reused worker's) is not a stall.
  let upstream = new UpstreamClock({ slackMs: BEAT_SLACK_MS });

  const exit = (code: number) => {
    if (exiting) return;
    exiting = true;
    if (statsTimer) clearInterval(statsTimer);
    // Let the last messages leave before the process does.
    flush(sock);
    sock.end(() => process.exit(code));
    setTimeout(() => process.exit(code), 2000).unref();
  };

  let cpu = { at: performance.now(), s: treeCpuSeconds() };
  const sendStats = () => {
    const now = { at: performance.now(), s: treeCpuSeconds() };
    if (recording && now.at - cpu.at > 500) recording.stats.cores = Math.round(((now.s - cpu.s) * 1000 * 1000) / (now.at - cpu.at)) / 1000;
    cpu = now;
    if (recording) recording.stats.upstreamStalledMs = Math.round(upstream.stalledMs);
    if (recording) send(sock, FromWorker.Stats, { stats: recording.stats, sources: recording.debugSources() });
  };

  /**
   * A recording ended `available`: go back to the pool warm, or exit. Warm means V8 has compiled
   * and optimised the per-frame code and libopus's WebAssembly already (about 0.4 CPU-s that a new
   * process spends again, docs/workers.md day 16). Only a process that is as it was before its
   * recording is offered again: every FFmpeg, pipe and timer the recording started is gone (waited
   * for up to 2 s) and its memory is back under IDLE_RSS_MB. Anything else exits, as before.
   */
  const release = async (log: typeof logger) => {
    if (statsTimer) clearInterval(statsTimer);
    statsTimer = null;
    recording = null;
    output = null;
    sources.clear();
    if (served >= maxUses || !idleResources) return exit(0);
    flush(sock);
    const deadline = performance.now() + 2000;
    let left: string[] = leftover(idleResources);
    while (left.length > 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      left = leftover(idleResources);
    }
    const rssMB = process.memoryUsage().rss / 1e6;
    if (left.length > 0 || rssMB > IDLE_RSS_MB) {
      log.info({ left, rssMB: Math.round(rssMB) }, 'worker not reused');
      return exit(0);
    }
    send(sock, FromWorker.Ready, { pid: process.pid, served });
  };

  const onInit = (m: InitMessage) => {
    if (recording || exiting) return; // one recording at a time
    idleResources ??= resourceCounts();
    served++;
    maxUses = Math.max(1, m.config.workerReuse ?? 1);
    cpu = { at: performance.now(), s: treeCpuSeconds() };
    upstream = new UpstreamClock({ slackMs: BEAT_SLACK_MS });
    const log = logger.child({ worker: process.pid });
    output = new RemoteOutput(m.location, sock);
    const rec = new Recording({
      id: m.id,
      roomId: m.roomId,
      layout: m.layout,
      presets: loadPresets(),
      config: m.config,
      ffmpegPath: m.ffmpegPath,
      out: output,
      logger: log,
      workDir: m.workDir,
      resume: m.resume,
      startShort: m.startShort,
      quietNow: () => upstream.now(),
    });
    recording = rec;
    for (const s of m.sources) addSource(s);
    rec.on('state', (info) => {
      send(sock, FromWorker.State, { info, t0Wall: rec.t0Wall, frames: rec.framesEncoded });
      if (info.status === 'available') {
        sendStats();
        rec.removeAllListeners();
        void release(log);
      } else if (info.status === 'failed') {
        sendStats();
        // The server decides whether a new worker continues the recording.
        exit(1);
      }
    });
    statsTimer = setInterval(sendStats, 1000);
    rec.start().catch((err) => {
      send(sock, FromWorker.Fatal, { error: toTesseraError(err, 'REC_ERR_INTERNAL').toJSON() });
      exit(1);
    });
  };

  const addSource = (h: SourceMessage) => {
    const src = new RemoteSource(h.id, h.participantId, h.name, h.kind, h.c ?? null, () => send(sock, FromWorker.Keyframe, { n: h.n }));
    sources.set(h.n, src);
    recording?.addSource(src);
  };

  const onMessage = (m: Message) => {
    switch (m.type) {
      case ToWorker.Init:
        return onInit(m.header as InitMessage);
      case ToWorker.AddSource:
        return addSource(m.header as SourceMessage);
      case ToWorker.RemoveSource: {
        const src = sources.get(m.header.n);
        sources.delete(m.header.n);
        return src?.emit('close');
      }
      case ToWorker.Video: {
        const h = m.header as { n: number; c: VideoCodec; t: number; k: boolean; w?: number; h?: number };
        return sources.get(h.n)?.emit('video', { codec: h.c, data: m.payload ?? Buffer.alloc(0), rtpTimestamp: h.t, keyframe: h.k, width: h.w, height: h.h });
      }
      case ToWorker.Audio:
        return sources.get(m.header.n)?.emit('audio', { data: m.payload ?? Buffer.alloc(0), rtpTimestamp: m.header.t });
      case ToWorker.Stop:
        return void recording?.stop(typeof m.header.at === 'number' ? m.header.at : undefined);
      case ToWorker.Debug:
        if (m.header.what === 'hang-compositor') return recording?.debugHangCompositor();
        return recording?.debugKill(m.header.what);
      case ToWorker.SinkDone:
        return output?.done(m.header);
      case ToWorker.Beat:
        return;
    }
  };

  sock.on('data', (chunk: Buffer) => {
    upstream.heard();
    try {
      reader.push(chunk, onMessage);
    } catch (err) {
      send(sock, FromWorker.Fatal, { error: toTesseraError(err, 'REC_ERR_INTERNAL').toJSON() });
      exit(1);
    }
  });
  // The server is gone (or gave up on this worker): nothing to record for.
  sock.on('close', () => process.exit(recording ? 1 : 0));
  sock.on('error', () => undefined);
  send(sock, FromWorker.Ready, { pid: process.pid });
}

main();
