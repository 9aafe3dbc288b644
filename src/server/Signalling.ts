import type { Server as HttpServer } from 'node:http';
import { Server as IoServer, type Socket } from 'socket.io';
import type { Config } from '../config';
import { TesseraError, toTesseraError, type ErrorBody } from '../errors';
import type { Logger } from '../logger';
import { metrics } from '../metrics';
import type { Peer } from '../rtc/Peer';
import type { Room } from '../rtc/Room';
import { verifyRoomToken, type Role } from './auth';
import type { AuditActor } from './AuditLog';
import type { Conference } from './Conference';
import { developmentRequestRefusal } from './origin';
import type { ClientToServerEvents, ServerToClientEvents } from './events';
import { isObject, validateLayout, validateName, validateRoomId } from './validation';

interface SocketData {
  roomId?: string;
  peer?: Peer;
  role?: Role;
  /** A host token's `consent: "required"`: every recording this host starts asks for consent. */
  consent?: 'required';
}

type TSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export interface SignallingLimits {
  /** socket.io's maxHttpBufferSize: one message, bytes. */
  maxMessageBytes: number;
}

const channel = (roomId: string) => `room:${roomId}`;

/** The audit trail's actor for a participant's request. */
function actorOf(socket: TSocket): AuditActor {
  const { peer, role } = socket.data;
  return { kind: 'participant', id: peer?.id ?? 'unknown', name: peer?.name, role: role ?? 'guest', source: socket.handshake.address };
}

/**
 * socket.io signalling (docs/api.md): join / signal / record:start / record:stop / leave, each
 * acknowledged `{ ok: true, ... } | { ok: false, error }`. Every handler validates its input and
 * answers with an error instead of throwing; one socket's garbage never reaches another room.
 */
export class Signalling {
  readonly io: IoServer<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
  readonly #conf: Conference;
  readonly #config: Readonly<Config>;
  readonly #log: Logger;
  #closed = false;

  constructor(init: { http: HttpServer; conference: Conference; config: Readonly<Config>; logger: Logger; limits: SignallingLimits }) {
    this.#conf = init.conference;
    this.#config = init.config;
    this.#log = init.logger.child({ component: 'signalling' });
    this.io = new IoServer(init.http, {
      maxHttpBufferSize: init.limits.maxMessageBytes,
      serveClient: true,
      pingInterval: 10_000,
      pingTimeout: 10_000,
      // A cross-site page may open a WebSocket to this server (no CORS for WebSockets).
      allowRequest: (req, callback) => {
        const refusal = developmentRequestRefusal(req.headers, init.config);
        if (refusal) this.#log.info({ refusal }, 'connection refused');
        callback(refusal, refusal === null);
      },
    });
    this.io.on('connection', (s) => this.#onConnection(s));
    this.#conf.on('recording:state', (roomId, recording) => {
      this.io.to(channel(roomId)).emit('recording:state', { roomId, recording });
      if (recording?.status === 'failed') {
        this.io.to(channel(roomId)).emit('notice', { level: 'error', code: recording.error?.code, message: `Recording failed: ${recording.error?.message ?? 'unknown error'}` });
      }
    });
    this.#conf.on('participants', (roomId, list) => this.io.to(channel(roomId)).emit('participants', list));
    this.#conf.on('consent:request', (roomId, recordingId) => this.io.to(channel(roomId)).emit('consent:request', { roomId, recordingId }));
  }

  #onConnection(socket: TSocket): void {
    const log = this.#log.child({ socketId: socket.id });
    const handle = <Req, Res extends object>(event: keyof ClientToServerEvents, fn: (req: Req) => Promise<Res> | Res) => {
      (socket.on as (e: string, l: (...a: unknown[]) => void) => void)(event, (req: unknown, ack: unknown) => {
        const reply = typeof ack === 'function' ? (ack as (r: unknown) => void) : () => undefined;
        Promise.resolve()
          .then(() => {
            // The handler runs a microtask after its packet, and a close read in the same chunk
            // as the packet has disconnected the socket by then (its leave already done): a join
            // run now would seat a participant nobody can take out, a ghost that keeps its room
            // open and a drain waiting for ever (seen once in the fuzz test, day 29).
            if (socket.disconnected) throw new TesseraError('REC_ERR_NOT_JOINED', 'the connection closed before this request was handled');
            return fn(req as Req);
          })
          .then(
            (res) => reply({ ok: true, ...res }),
            (err: unknown) => {
              const e = toTesseraError(err);
              metrics.signalErrors.inc({ code: e.code });
              if (e.who === 'system') log.error({ err, event }, 'request failed');
              else log.info({ code: e.code, message: e.message, event }, 'request refused');
              reply({ ok: false, error: e.toJSON() satisfies ErrorBody });
            },
          );
      });
    };
    const joined = (): { room: Room; peer: Peer; roomId: string } => {
      const { roomId, peer } = socket.data;
      const room = roomId ? this.#conf.room(roomId) : undefined;
      if (!roomId || !peer || !room || peer.closed) throw new TesseraError('REC_ERR_NOT_JOINED', 'join a room first');
      return { room, peer, roomId };
    };

    handle('join', (req: unknown) => {
      if (socket.data.peer && !socket.data.peer.closed) throw new TesseraError('REC_ERR_BAD_REQUEST', 'already joined; leave first');
      if (!isObject(req)) throw new TesseraError('REC_ERR_BAD_REQUEST', 'join needs { roomId, name }');
      const roomId = validateRoomId(req.roomId);
      let name = validateName(req.name);
      let role: Role = 'host';
      let identity: string | null = null;
      let consent: 'required' | undefined;
      if (this.#config.authSecret) {
        const claims = verifyRoomToken(req.token, this.#config.authSecret, Date.now(), this.#config.roomTokenMaxTtlSec);
        if (claims.room !== roomId) throw new TesseraError('REC_ERR_FORBIDDEN', 'the token is for another room');
        name = validateName(claims.name);
        role = claims.role;
        identity = claims.sub ?? claims.name;
        if (claims.consent === 'required') consent = 'required';
      }
      const { room, peer } = this.#conf.join(roomId, name, identity);
      socket.data = { roomId, peer, role, consent };
      void socket.join(channel(roomId));
      peer.on('signal', (msg) => socket.emit('signal', msg));
      peer.on('replaced', () => {
        if (socket.data.peer !== peer) return;
        socket.data = {};
        void socket.leave(channel(roomId));
        socket.emit('notice', { level: 'error', code: 'REC_ERR_REPLACED', message: 'You joined this room again from elsewhere; this page has left it' });
      });
      peer.on('failed', (err) => {
        // A participant whose media is dead is neither seen by the others nor recorded, yet
        // would stay in the room (and in the recording, as a name card) for the whole call.
        // Take them out and tell the client to come back with fresh connections.
        socket.emit('notice', { level: 'error', code: err.code, message: `${err.message}; reconnecting`, rejoin: true });
        if (socket.data.peer === peer) this.#leave(socket);
      });
      const recording = this.#conf.recordingState(roomId);
      socket.emit('recording:state', { roomId, recording });
      const asking = this.#conf.consentRequest(roomId);
      if (asking) socket.emit('consent:request', { roomId, recordingId: asking });
      return { participantId: peer.id, roomId, name, participants: room.participants(), recording, canRecord: role === 'host' };
    });

    handle('signal', async (msg: unknown) => {
      const { peer } = joined();
      await peer.handleSignal(msg);
      return {};
    });

    handle('record:start', (req: unknown) => {
      const { roomId } = joined();
      if (socket.data.role !== 'host') throw new TesseraError('REC_ERR_FORBIDDEN', 'only a host may record');
      const layout = validateLayout(isObject(req) ? req.layout : undefined);
      const asked = isObject(req) ? req.consent : undefined;
      if (asked !== undefined && asked !== 'required') throw new TesseraError('REC_ERR_BAD_REQUEST', 'consent must be "required" or absent');
      const consent = asked ?? socket.data.consent;
      const tracks = isObject(req) ? req.tracks : undefined;
      if (tracks !== undefined && typeof tracks !== 'boolean') throw new TesseraError('REC_ERR_BAD_REQUEST', 'tracks must be true or false');
      return { recording: this.#conf.startRecording(roomId, layout, actorOf(socket), { consent, tracks }) };
    });

    handle('consent', (req: unknown) => {
      const { roomId, peer } = joined();
      if (!isObject(req) || typeof req.accept !== 'boolean') throw new TesseraError('REC_ERR_BAD_REQUEST', 'consent needs { accept: true | false }');
      this.#conf.consent(roomId, peer, req.accept, actorOf(socket));
      return {};
    });

    handle('record:stop', async () => {
      const { roomId } = joined();
      if (socket.data.role !== 'host') throw new TesseraError('REC_ERR_FORBIDDEN', 'only a host may stop a recording');
      return { recording: await this.#conf.stopRecording(roomId, actorOf(socket)) };
    });

    handle('leave', () => {
      this.#leave(socket);
      return {};
    });

    socket.on('disconnect', () => this.#leave(socket));
  }

  #leave(socket: TSocket): void {
    const { roomId, peer } = socket.data;
    socket.data = {};
    if (!roomId || !peer) return;
    void socket.leave(channel(roomId));
    this.#conf.leave(roomId, peer.id);
  }

  /** Tells every connected person something (e.g. the server is draining). */
  broadcastNotice(message: string, code?: string): void {
    this.io.emit('notice', { level: 'info', code, message });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.io.disconnectSockets(true);
    await new Promise<void>((resolve) => {
      // io.close() also closes the http server; the caller owns that, so only close the engine
      this.io.engine.close();
      resolve();
    });
  }
}
