import type { ErrorBody } from '../errors';
import type { RecordingInfo } from '../pipeline/types';
import type { ParticipantInfo } from '../rtc/Room';

/**
 * socket.io events, typed on both ends (docs/api.md describes them). The page (public/meeting.js)
 * speaks exactly these shapes.
 */
export type Ack<T extends object = object> = (res: ({ ok: true } & T) | { ok: false; error: ErrorBody }) => void;

export interface JoinRequest {
  roomId: string;
  name?: string;
  /** Room token (JWT) when AUTH_SECRET is set. */
  token?: string;
}

export interface ClientToServerEvents {
  join: (req: JoinRequest, ack: Ack<{ participantId: string; roomId: string; name: string; participants: ParticipantInfo[]; recording: RecordingInfo | null; canRecord: boolean }>) => void;
  /** SDP and ICE; shape in src/rtc/negotiation.ts (SignalMessage). */
  signal: (msg: unknown, ack: Ack) => void;
  /** `consent: "required"`: only those who accept are recorded (a host may ask; a host token may impose it). */
  'record:start': (req: { layout?: string; consent?: 'required' }, ack: Ack<{ recording: RecordingInfo }>) => void;
  /** The answer to `consent:request`: accepted people are recorded from now on, others not at all. */
  consent: (req: { accept: boolean }, ack: Ack) => void;
  'record:stop': (req: object, ack: Ack<{ recording: RecordingInfo }>) => void;
  leave: (req: object, ack: Ack) => void;
}

export interface Notice {
  level: 'info' | 'error';
  code?: string;
  message: string;
  /**
   * The server lost this person's media (ICE/DTLS failed, never connected, renegotiation
   * failed) and has taken them out of the room: join again on this socket and publish anew.
   * The page and `npm run participant` do so at once.
   */
  rejoin?: boolean;
}

export interface ServerToClientEvents {
  'recording:state': (s: { roomId: string; recording: RecordingInfo | null }) => void;
  participants: (list: ParticipantInfo[]) => void;
  /** ServerSignal of src/rtc/negotiation.ts. */
  signal: (msg: unknown) => void;
  /** Addition: something the person should see (connection failed, recording failed, server draining). */
  notice: (n: Notice) => void;
  /** The room's recording needs this person's consent (at its start, or on joining during it). */
  'consent:request': (r: { roomId: string; recordingId: string }) => void;
}
