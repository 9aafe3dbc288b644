import type { Logger } from '../logger';
import type { EncodedVideoFrame, MediaSource, OpusPacket } from '../media/types';
import { TrackWriter, type TrackCodec, type TrackInfo, type TrackKind, type TrackMeta, type TrackTarget } from './TrackWriter';

/** Makes the target of one track: `file` is its name within the recording's tracks. */
export type TrackTargetFactory = (meta: TrackMeta, file: string) => TrackTarget;

interface Attached {
  source: MediaSource;
  writers: Map<TrackKind, TrackWriter>;
  off: () => void;
}

/**
 * A recording's individual tracks: every source the recording taps (a camera with its
 * microphone, a screen share with any audio it carries) is also written as it arrives, one file
 * per kind, without decoding. Runs in the server beside the worker's taps, so a worker's death
 * does not touch it, and costs a copy of the encoded media (a few hundred KB/s for a meeting).
 *
 * One file per source and kind: a source that pauses (mute, camera off) keeps its file, the gap
 * carried in the timestamps; a participant who leaves and comes back is a new source, so a new file.
 */
export class TrackRecorder {
  #create: TrackTargetFactory;
  #log: Logger;
  #attached = new Map<string, Attached>();
  /** Every writer ever made, in the order made (the manifest's order). */
  #writers: TrackWriter[] = [];
  /** Ends in flight (a source left): awaited before the recording finishes. */
  #ending: Promise<unknown>[] = [];
  #t0Wall = 0;
  #closed = false;
  #seq = 0;

  constructor(o: { create: TrackTargetFactory; logger: Logger }) {
    this.#create = o.create;
    this.#log = o.logger.child({ component: 'tracks' });
  }

  /** The recording's clock origin (wall ms of the MP4's time 0), once known. */
  setClock(t0Wall: number): void {
    if (!this.#t0Wall) this.#t0Wall = t0Wall;
  }

  add(source: MediaSource): void {
    if (this.#closed || this.#attached.has(source.id)) return;
    const a: Attached = { source, writers: new Map(), off: () => undefined };
    const onVideo = (f: EncodedVideoFrame) => this.#writer(a, source.kind, f.codec, f.keyframe)?.video(f);
    const onAudio = (p: OpusPacket) => this.#writer(a, source.kind === 'screen' ? 'screen-audio' : 'microphone', 'opus', true)?.audio(p);
    source.on('video', onVideo);
    source.on('audio', onAudio);
    a.off = () => {
      source.off('video', onVideo);
      source.off('audio', onAudio);
    };
    this.#attached.set(source.id, a);
    // The video track starts at a keyframe: ask for one now rather than wait for the next.
    source.requestKeyframe();
  }

  /** The source left: its tracks end (their files complete now, not at the recording's end). */
  remove(sourceId: string): void {
    const a = this.#attached.get(sourceId);
    if (!a) return;
    a.off();
    this.#attached.delete(sourceId);
    for (const w of a.writers.values()) this.#ending.push(w.end(this.#t0Wall));
  }

  /** Every track as it stands (for checkpoints and the live Recording). */
  snapshot(): TrackInfo[] {
    return this.#writers.filter((w) => w.startWall).map((w) => w.snapshot(this.#t0Wall));
  }

  /** The recording ends: every track is completed. Resolves to the manifest's list. Never throws. */
  async end(): Promise<TrackInfo[]> {
    this.#detachAll();
    await Promise.all([...this.#writers.map((w) => w.end(this.#t0Wall)), ...this.#ending]);
    return this.snapshot();
  }

  /** The recording failed: keep what was written (files as they are, uploads left for recovery). */
  async abort(reason: Error): Promise<TrackInfo[]> {
    this.#detachAll();
    await Promise.all([...this.#writers.map((w) => w.abort(this.#t0Wall, reason)), ...this.#ending]);
    return this.snapshot();
  }

  #detachAll(): void {
    this.#closed = true;
    for (const a of this.#attached.values()) a.off();
    this.#attached.clear();
  }

  /** The source's writer of this kind, made at its first usable media. */
  #writer(a: Attached, kind: TrackKind, codec: TrackCodec, keyframe: boolean): TrackWriter | undefined {
    const have = a.writers.get(kind);
    if (have) return have;
    if (kind !== 'microphone' && kind !== 'screen-audio' && !keyframe) return undefined;
    const n = ++this.#seq;
    const id = `t${n}`;
    const ext = codec === 'h264' ? 'mkv' : 'webm';
    const file = `${String(n).padStart(3, '0')}-${kind}-${safe(a.source.participantId)}.${ext}`;
    const meta: TrackMeta = { id, participantId: a.source.participantId, name: a.source.name, sourceId: a.source.id, kind, codec };
    let target: TrackTarget;
    try {
      target = this.#create(meta, file);
    } catch (err) {
      // Without a target this track is not kept; the composite and the other tracks go on.
      this.#log.error({ err: (err as Error).message, file }, 'cannot create a track');
      a.writers.set(kind, new TrackWriter({ ...meta, target: nullTarget(file) }));
      return undefined;
    }
    const w = new TrackWriter({ ...meta, target, requestKeyframe: () => a.source.requestKeyframe() });
    a.writers.set(kind, w);
    this.#writers.push(w);
    return w;
  }
}

/** File-name safe form of a participant id (ids are chosen by clients). */
function safe(id: string): string {
  return id.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40) || 'p';
}

function nullTarget(file: string): TrackTarget {
  return { location: { kind: 'file', key: file }, write: () => undefined, finish: async () => 0, abort: async () => undefined };
}
