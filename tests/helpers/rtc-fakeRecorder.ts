import { EventEmitter } from 'node:events';
import { TesseraError } from '../../src/errors';
import type { MediaSource } from '../../src/media/types';
import type { RecordingInfo } from '../../src/pipeline/types';
import type { RecorderApi, RecordingApi } from '../../src/server/recorderApi';

/**
 * A stand-in for the pipeline's Recorder in tests of the SFU and signalling alone: it keeps the
 * sources it is given and counts what they deliver, and walks the contract's status machine.
 */
export class RecordingProbe extends EventEmitter implements RecordingApi {
  readonly id: string;
  readonly roomId: string;
  readonly sources = new Map<string, MediaSource>();
  readonly stats = new Map<string, { frames: number; keyframes: number; audio: number; firstKeyframeAt?: number; sizes: string[] }>();
  status: RecordingInfo['status'] = 'recording';
  readonly startedAt = new Date().toISOString();
  readonly removed: string[] = [];
  constructor(id: string, roomId: string, sources: MediaSource[], private readonly onState: (i: RecordingInfo) => void) {
    super();
    this.id = id;
    this.roomId = roomId;
    for (const s of sources) this.addSource(s);
  }
  info(): RecordingInfo {
    return {
      id: this.id,
      roomId: this.roomId,
      status: this.status,
      startedAt: this.startedAt,
      layout: 'grid',
      location: { kind: 'file', key: `${this.id}.mp4` },
      participants: [...this.sources.values()].map((s) => ({ id: s.participantId, name: s.name, joinedAt: this.startedAt })),
    };
  }
  addSource(src: MediaSource): void {
    this.sources.set(src.id, src);
    const st = { frames: 0, keyframes: 0, audio: 0, sizes: [] as string[] } as { frames: number; keyframes: number; audio: number; firstKeyframeAt?: number; sizes: string[] };
    this.stats.set(src.id, st);
    src.on('video', (f) => {
      st.frames++;
      if (f.keyframe) {
        st.keyframes++;
        st.firstKeyframeAt ??= Date.now();
        if (f.width) st.sizes.push(`${f.width}x${f.height}`);
      }
    });
    src.on('audio', () => st.audio++);
    src.requestKeyframe();
  }
  removeSource(id: string): void {
    this.removed.push(id);
    this.sources.delete(id);
  }
  async stop(): Promise<RecordingInfo> {
    this.status = 'available';
    this.onState(this.info());
    return this.info();
  }
}

export class FakeRecorder extends EventEmitter implements RecorderApi {
  readonly recordings = new Map<string, RecordingProbe>();
  #n = 0;
  capacity = 4;
  get activeCount(): number {
    return [...this.recordings.values()].filter((r) => r.status === 'recording').length;
  }
  start(roomId: string, opts: { layout?: string; sources: MediaSource[] }): RecordingProbe {
    if (opts.layout && !['grid', 'speaker', 'screenshare'].includes(opts.layout)) throw new TesseraError('REC_ERR_UNKNOWN_LAYOUT', `unknown layout ${opts.layout}`);
    if (this.activeFor(roomId)) throw new TesseraError('REC_ERR_ALREADY_RECORDING', 'already');
    const r = new RecordingProbe(`rec${++this.#n}`, roomId, opts.sources, (i) => this.emit('state', i));
    this.recordings.set(r.id, r);
    this.emit('state', r.info());
    return r;
  }
  activeFor(roomId: string): RecordingProbe | undefined {
    return [...this.recordings.values()].find((r) => r.roomId === roomId && r.status === 'recording');
  }
  async get(id: string) {
    return this.recordings.get(id)?.info();
  }
  async list(roomId?: string) {
    return [...this.recordings.values()].filter((r) => !roomId || r.roomId === roomId).map((r) => r.info()).reverse();
  }
  async page(opts: { roomId?: string; limit: number; cursor?: string }) {
    return { recordings: (await this.list(opts.roomId)).slice(0, opts.limit) };
  }
  async delete(id: string) {
    if (!this.recordings.delete(id)) throw new TesseraError('REC_ERR_NOT_FOUND', 'no such recording');
  }
  async openMedia() {
    return null;
  }
  async presignMedia() {
    return null;
  }
  async drain() {
    for (const r of this.recordings.values()) if (r.status === 'recording') await r.stop();
  }
}
