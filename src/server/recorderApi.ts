import type { EventEmitter } from 'node:events';
import type { MediaSource } from '../media/types';
import type { RecordingInfo, RenderInfo } from '../pipeline/types';
import type { MediaRange } from '../storage/Sink';

/**
 * What the server needs of the recording pipeline (src/pipeline/Recorder.ts satisfies it
 * structurally). Kept as an interface so the signalling and REST layers can be tested with the
 * real Recorder or, for pure server tests, a stand-in.
 */
export interface RecordingApi extends EventEmitter {
  readonly id: string;
  readonly roomId: string;
  info(): RecordingInfo;
  addSource(src: MediaSource): void;
  removeSource(sourceId: string): void;
  stop(): Promise<RecordingInfo>;
}

export interface RecorderApi extends EventEmitter {
  start(roomId: string, opts: { layout?: string; sources: MediaSource[]; retentionDays?: number; tracks?: boolean }): RecordingApi;
  activeFor(roomId: string): RecordingApi | undefined;
  get(id: string): Promise<RecordingInfo | undefined>;
  list(roomId?: string): Promise<RecordingInfo[]>;
  /** Newest first; `nextCursor` continues with older ones. */
  page(opts: { roomId?: string; limit: number; cursor?: string }): Promise<{ recordings: RecordingInfo[]; nextCursor?: string }>;
  /** Resolves with the recording deleted (the real Recorder) or nothing. */
  delete(id: string): Promise<RecordingInfo | void>;
  // Retention, legal hold, erasure and consent (the real Recorder; stand-ins may lack them).
  setHold?(id: string, hold: boolean): Promise<RecordingInfo>;
  findByPerson?(who: { participantId?: string; name?: string }): Promise<RecordingInfo[]>;
  noteConsent?(recordingId: string, answer?: { participantId: string; name: string; accepted: boolean; at: string }): void;
  // Re-renders from a recording's tracks (the real Recorder; stand-ins may lack them).
  startRender?(id: string, layout: string): Promise<RenderInfo>;
  openRender?(id: string, renderId: string, range?: MediaRange): Promise<{ size: number; stream: NodeJS.ReadableStream } | null>;
  presignRender?(id: string, renderId: string): Promise<string | null>;
  openMedia(id: string, range?: MediaRange): Promise<{ size: number; stream: NodeJS.ReadableStream } | null>;
  presignMedia(id: string): Promise<string | null>;
  /** One of a recording's tracks (the real Recorder). */
  openTrack?(id: string, trackId: string, range?: MediaRange): Promise<{ size: number; stream: NodeJS.ReadableStream } | null>;
  drain(): Promise<void>;
  /** For /readyz: the storage's own check (S3: what the bucket supports); ok false = cannot store recordings. */
  storageStatus?(): { kind: 'file' | 's3'; ok: boolean | null };
  readonly activeCount: number;
  readonly capacity: number;
}

export type { RecordingInfo };
