import type { EventEmitter } from 'node:events';

/**
 * The seam between media in (werift tracks, synthetic participants) and the recording pipeline.
 *
 * A source delivers what werift's depacketizers deliver: whole encoded video frames (a VP8 frame
 * or an H.264 access unit in Annex-B) and Opus packets, each with its 90 kHz / 48 kHz RTP
 * timestamp. The pipeline never sees RTP; loss, jitter and reordering are the source's business.
 */
export type VideoCodec = 'vp8' | 'h264';
export type SourceKind = 'camera' | 'screen';

export interface EncodedVideoFrame {
  codec: VideoCodec;
  /** One whole frame: a VP8 frame, or an H.264 access unit in Annex-B (start codes). */
  data: Buffer;
  /** 90 kHz RTP timestamp. */
  rtpTimestamp: number;
  keyframe: boolean;
  /** Coded size when the source knows it (VP8 keyframes carry it). */
  width?: number;
  height?: number;
}

export interface OpusPacket {
  data: Buffer;
  /** 48 kHz RTP timestamp. */
  rtpTimestamp: number;
}

export interface MediaSourceEvents {
  video: [EncodedVideoFrame];
  audio: [OpusPacket];
  /** The source is gone for good (participant left, track ended). */
  close: [];
}

/**
 * One thing that gets a tile: a participant's camera (with their microphone) or a screen share.
 * `id` is unique within a room; `participantId` ties a screen share to its owner.
 */
export interface MediaSource extends EventEmitter<MediaSourceEvents> {
  readonly id: string;
  readonly participantId: string;
  readonly name: string;
  readonly kind: SourceKind;
  /**
   * The codec its video was negotiated in, when known before its first frame arrives (null or
   * absent: not known). A hint for the recording's first layout, so a tile's input starts in the
   * right codec; the frames themselves decide.
   */
  readonly videoCodec?: VideoCodec | null;
  /** Ask the sender for a keyframe (RTCP PLI for WebRTC sources). Called when a decoder starts. */
  requestKeyframe(): void;
}

export interface RecordingLocation {
  kind: 'file' | 's3';
  bucket?: string;
  key: string;
}
