/**
 * Tuning of the media server. These are not public variables (the README's configuration table fixes those); they are
 * the limits and timeouts of the WebRTC edge, in one place, overridable per Room for tests.
 */
export interface RtcOptions {
  /** How long the recording source waits for a missing packet (NACK retransmission) before it
   * gives up on the frame and asks for a keyframe. Loopback/LAN RTTs are far below this. */
  jitterLatencyMs: number;
  /** Packets a source keeps at most while waiting (bounds memory under garbage input). */
  jitterMaxPackets: number;
  /** Largest frame the depacketizer assembles (bytes); bigger is garbage. */
  maxFrameBytes: number;
  /** At most one PLI per publisher track per this interval. */
  pliMinIntervalMs: number;
  /** While a source waits for a keyframe, re-send the PLI this often. */
  pliRetryMs: number;
  maxSdpBytes: number;
  /** Remote ICE candidates a connection takes from its client (each is an address the server checks with STUN). */
  maxRemoteCandidates: number;
  maxMediaSections: number;
  /** ICE + DTLS must connect within this, or the participant is told and dropped. */
  connectTimeoutMs: number;
  /** Participants per room. */
  maxParticipants: number;
  /**
   * SO_RCVBUF asked for each media UDP socket (the kernel caps it at net.core.rmem_max). The
   * default (~208 KiB) overflows while the one event loop is busy for a few hundred ms (a DTLS
   * handshake, a burst of forwarding): the kernel then drops packets for every participant.
   */
  udpRecvBufferBytes: number;
}

export const RTC_DEFAULTS: RtcOptions = {
  jitterLatencyMs: 150,
  jitterMaxPackets: 2000,
  maxFrameBytes: 4 * 1024 * 1024,
  pliMinIntervalMs: 300,
  pliRetryMs: 1000,
  maxSdpBytes: 64 * 1024,
  maxRemoteCandidates: 32,
  maxMediaSections: 64,
  connectTimeoutMs: 20_000,
  maxParticipants: 16,
  udpRecvBufferBytes: 4 * 1024 * 1024,
};
