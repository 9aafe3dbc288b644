import type { Socket } from 'node:dgram';
import type { RTCPeerConnection } from 'werift';
import type { Logger } from '../logger';

/** What werift (0.24, 0.25) keeps inside an RTCPeerConnection down to its UDP sockets (not public API). */
interface IceInternals {
  iceTransports?: Array<{ connection?: { protocols?: Array<{ transport?: { socket?: Socket } }> } }>;
}

const enlarged = new WeakSet<Socket>();

/**
 * Ask for a bigger kernel receive buffer on every UDP socket of `pc` (see
 * RtcOptions.udpRecvBufferBytes). werift does not expose its sockets, so this walks its internals
 * defensively: a future werift that moves them only loses the tuning, never the connection.
 */
export function enlargeRecvBuffers(pc: RTCPeerConnection, bytes: number, log: Logger): void {
  if (bytes <= 0) return;
  const transports = (pc as unknown as IceInternals).iceTransports ?? [];
  for (const t of transports) {
    for (const p of t.connection?.protocols ?? []) {
      const socket = p.transport?.socket;
      if (!socket || enlarged.has(socket)) continue;
      try {
        // A connection that failed or closed while gathering has closed its sockets; Node then
        // throws a TypeError ("reading 'bufferSize'") rather than a socket error.
        socket.address();
      } catch {
        continue;
      }
      try {
        socket.setRecvBufferSize(bytes);
        enlarged.add(socket);
        log.debug({ asked: bytes, got: socket.getRecvBufferSize() }, 'udp receive buffer');
      } catch (err) {
        log.debug({ err }, 'udp receive buffer not set');
      }
    }
  }
}
