import type { ErrorBody } from '../errors';
import type { RecordingLocation } from '../media/types';
import type { TrackInfo } from '../tracks/TrackWriter';

export type RecordingStatus = 'starting' | 'recording' | 'stopping' | 'available' | 'failed';

export interface RecordingParticipant {
  id: string;
  name: string;
  joinedAt: string;
  leftAt?: string;
}

/** The public `Recording` (docs/api.md): what the REST API, socket.io and the manifest carry. */
export interface RecordingInfo {
  id: string;
  roomId: string;
  status: RecordingStatus;
  startedAt: string;
  endedAt?: string;
  availableAt?: string;
  durationMs?: number;
  bytes?: number;
  layout: string;
  location: RecordingLocation;
  participants: RecordingParticipant[];
  error?: ErrorBody;
  /** Deleted by the server (file storage) or tagged for the bucket's lifecycle (S3) after this. */
  retainUntil?: string;
  /** Held: neither deleted nor expired while true. */
  legalHold?: boolean;
  /** With consent required: who was asked, and what they answered when (the last answer counts). */
  consent?: { required: true; answers: Array<{ participantId: string; name: string; accepted: boolean; at: string }> };
  /** Set when retention expired on S3 (the lifecycle rule deletes it). */
  expiredAt?: string;
  /** With `tracks: true`: every participant's camera, screen and microphone as they arrived (docs/tracks.md). */
  tracks?: TrackInfo[];
  /** MP4s composed later from the tracks with another layout. */
  renders?: RenderInfo[];
}

/** The manifest beside the MP4: the Recording plus how it was made. */
export interface Manifest extends RecordingInfo {
  version: 1;
  endReason?: 'stopped' | 'failed' | 'interrupted' | 'shutdown';
  video: { width: number; height: number; fps: number; codec: 'h264'; frames?: number };
  audio: { codec: 'aac'; sampleRate: number; channels: number };
  /** Each epoch's layout from when it started; `smallTiles`: composed at the small-tiles level. */
  layouts: { at: string; preset: string; tiles: string[]; smallTiles?: boolean }[];
  /**
   * Where the recording's worker died and a new one continued it: `at` is the media time (ms from
   * the file's start) where the new worker's first frame lies, `gapMs` how much before it was
   * lost (made from name cards instead of the participants' pictures).
   */
  interruptions?: { at: number; gapMs: number; reason: string }[];
}

export interface RenderInfo {
  id: string;
  layout: string;
  status: 'rendering' | 'available' | 'failed';
  createdAt: string;
  availableAt?: string;
  location: RecordingLocation;
  bytes?: number;
  durationMs?: number;
  error?: ErrorBody;
}
