import type { RecordingLocation } from '../media/types';
import type { TrackMeta, TrackTarget } from '../tracks/TrackWriter';

/**
 * A piece of the encoder's fragmented MP4, cut on box boundaries by Mp4Splitter:
 * `init` is ftyp+moov (exactly once, first), each `fragment` is one moof+mdat pair (plus any
 * boxes in between). Every prefix made of init + whole fragments is a playable MP4, which is
 * what lets a sink cut upload parts on fragment boundaries.
 */
export interface Mp4Segment {
  kind: 'init' | 'fragment';
  data: Buffer;
  /** 0 for init, 1.. for fragments. */
  index: number;
}

export interface SinkResult {
  bytes: number;
  location: RecordingLocation;
}

/** Where one recording's MP4 goes. Created per recording by a Storage. */
export interface Sink {
  readonly location: RecordingLocation;
  /** Called once before the first write. */
  open(): Promise<void>;
  /** Append a segment. The returned promise is backpressure: the pipeline awaits it. */
  write(segment: Mp4Segment): Promise<void>;
  /** The MP4 is complete: make it durable and visible, write the manifest beside it. */
  finish(manifest: object): Promise<SinkResult>;
  /** The recording failed: keep what can be kept, never throw. */
  abort(reason: Error, manifest: object): Promise<void>;
}

export interface MediaRange {
  start: number;
  end?: number; // inclusive
}

/** Storage backs the REST API: creates sinks, serves and deletes media, lists manifests. */
export interface Storage {
  readonly kind: 'file' | 's3';
  createSink(recordingId: string, roomId: string): Sink;
  /** Where one track of a recording goes, beside its MP4 (`<recording>.tracks/<file>`). */
  createTrackTarget?(recording: { id: string; location: RecordingLocation }, track: TrackMeta, file: string): TrackTarget;
  /** Manifests of every recording stored (for listing after a restart). */
  listManifests(): Promise<object[]>;
  /** Size and a stream of the MP4 (or of a byte range of it). */
  openMedia(location: RecordingLocation, range?: MediaRange): Promise<{ size: number; stream: NodeJS.ReadableStream } | null>;
  /** A URL to redirect a player to instead of proxying, when the storage has one. */
  presignMedia?(location: RecordingLocation): Promise<string | null>;
  /** Deletes the MP4, its manifest, its tracks and its re-renders. */
  deleteRecording(location: RecordingLocation): Promise<void>;
  /**
   * For /readyz: what the storage found when it checked itself (S3: the bucket's capabilities).
   * `ok: false` = it cannot store recordings as configured; null = not known yet.
   */
  status?(): { kind: 'file' | 's3'; ok: boolean | null };
  /** Stores a finished local file at `location` (a re-render beside its recording). Resolves to its size. */
  putFile?(location: RecordingLocation, file: string, contentType: string): Promise<number>;
  /** Merges fields into a recording's manifest. */
  updateManifest?(location: RecordingLocation, patch: object): Promise<void>;
  /** Retention expired: mark for the store's own deletion (S3 lifecycle) instead of deleting. */
  markExpired?(location: RecordingLocation): Promise<void>;
  /** The audit trail beside the recordings: append one JSON line; read them all, in order. */
  appendAudit?(line: string): Promise<void>;
  readAudit?(): Promise<string[]>;
  /** Startup recovery (crash-interrupted uploads and the like). */
  recover?(): Promise<void>;
  close(): Promise<void>;
}
