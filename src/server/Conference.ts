import { EventEmitter } from 'node:events';
import type { Config } from '../config';
import { TesseraError } from '../errors';
import type { Logger } from '../logger';
import type { RecordingInfo } from '../pipeline/types';
import { RTC_DEFAULTS, type RtcOptions } from '../rtc/options';
import type { Peer } from '../rtc/Peer';
import { Room, type ParticipantInfo } from '../rtc/Room';
import type { AuditActor, AuditLog } from './AuditLog';
import type { RecorderApi } from './recorderApi';

const SYSTEM: AuditActor = { kind: 'system', id: 'server', role: 'system' };

export interface ConferenceEvents {
  'recording:state': [roomId: string, recording: RecordingInfo | null];
  participants: [roomId: string, list: ParticipantInfo[]];
  /** A recording that needs consent started: ask everyone in the room. */
  'consent:request': [roomId: string, recordingId: string];
}

const FINAL = new Set(['available', 'failed']);

/**
 * The rooms of this process and their link to the recorder: joins, leaves, Record/Stop from
 * socket.io and REST go through here, so both see the same rules (one recording per room, a
 * room with nobody cannot record, nothing new while draining).
 */
export class Conference extends EventEmitter<ConferenceEvents> {
  readonly #config: Readonly<Config>;
  readonly #recorder: RecorderApi;
  readonly #opts: RtcOptions;
  readonly #log: Logger;
  readonly #rooms = new Map<string, Room>();
  readonly #onState: (info: RecordingInfo) => void;
  readonly #onExpired: (info: RecordingInfo) => void;
  readonly audit: AuditLog;
  #draining = false;
  #closed = false;

  constructor(init: { config: Readonly<Config>; recorder: RecorderApi; logger: Logger; audit: AuditLog; options?: Partial<RtcOptions> }) {
    super();
    this.audit = init.audit;
    this.#config = init.config;
    this.#recorder = init.recorder;
    this.#opts = { ...RTC_DEFAULTS, ...init.options };
    this.#log = init.logger.child({ component: 'conference' });
    this.#onState = (info) => {
      const room = this.#rooms.get(info.roomId);
      if (FINAL.has(info.status)) room?.detachRecording(info.id);
      this.emit('recording:state', info.roomId, info);
    };
    this.#recorder.on('state', this.#onState);
    this.#onExpired = (info) => this.audit.record({ event: 'recording.expired', actor: SYSTEM, roomId: info.roomId, recordingId: info.id, detail: { retainUntil: info.retainUntil } });
    this.#recorder.on('expired', this.#onExpired);
  }

  get draining(): boolean {
    return this.#draining;
  }

  get recorder(): RecorderApi {
    return this.#recorder;
  }

  room(roomId: string): Room | undefined {
    return this.#rooms.get(roomId);
  }

  get roomCount(): number {
    return this.#rooms.size;
  }

  join(roomId: string, name: string, identity: string | null = null): { room: Room; peer: Peer } {
    if (this.#closed) throw new TesseraError('REC_ERR_DRAINING', 'this server is shutting down; join again in a moment');
    let room = this.#rooms.get(roomId);
    // Draining: the calls here go on (someone reconnecting, a late joiner), but no new room opens.
    if (!room && this.#draining) throw new TesseraError('REC_ERR_DRAINING', 'this server is shutting down and opens no new rooms; join again in a moment');
    if (!room) {
      room = new Room({ id: roomId, config: this.#config, options: this.#opts, logger: this.#log });
      this.#rooms.set(roomId, room);
      const r = room;
      r.on('participants', (list) => this.emit('participants', roomId, list));
      r.on('empty', () => this.#onEmpty(r));
    }
    const peer = room.join(name, identity);
    return { room, peer };
  }

  leave(roomId: string, peerId: string): void {
    this.#rooms.get(roomId)?.leave(peerId);
  }

  #onEmpty(room: Room): void {
    const rec = this.#recorder.activeFor(room.id);
    if (rec) {
      this.#log.info({ roomId: room.id, recordingId: rec.id }, 'room empty: stopping its recording');
      this.audit.record({ event: 'recording.stopped', actor: SYSTEM, roomId: room.id, recordingId: rec.id, detail: { reason: 'room empty' } });
      rec.stop().catch((err: unknown) => this.#log.warn({ err }, 'stop on empty room failed'));
    }
    this.#rooms.delete(room.id);
    room.close();
  }

  recordingState(roomId: string): RecordingInfo | null {
    return this.#recorder.activeFor(roomId)?.info() ?? null;
  }

  startRecording(roomId: string, layout: string | undefined, actor: AuditActor, opts: { retentionDays?: number; consent?: 'required'; tracks?: boolean } = {}): RecordingInfo {
    if (this.#draining) throw new TesseraError('REC_ERR_DRAINING', 'this server is shutting down and takes no new recordings');
    const room = this.#rooms.get(roomId);
    if (!room || room.size === 0) throw new TesseraError('REC_ERR_ROOM_EMPTY', `room ${roomId} has nobody in it`);
    if (this.#recorder.activeFor(roomId)) throw new TesseraError('REC_ERR_ALREADY_RECORDING', `room ${roomId} is already recording`);
    const consentRequired = opts.consent === 'required';
    const sources = room.createRecordingSources(consentRequired);
    try {
      const rec = this.#recorder.start(roomId, { layout, sources, retentionDays: opts.retentionDays, tracks: opts.tracks });
      room.attachRecording(rec);
      const info = rec.info();
      this.audit.record({ event: 'recording.started', actor, roomId, recordingId: rec.id, detail: { layout: info.layout, ...(info.tracks ? { tracks: true } : {}), ...(opts.retentionDays ? { retentionDays: opts.retentionDays } : {}), ...(consentRequired ? { consent: 'required' } : {}) } });
      if (consentRequired) {
        this.#recorder.noteConsent?.(rec.id); // the manifest says consent was asked, answers or not
        this.emit('consent:request', roomId, rec.id);
      }
      this.#log.info({ roomId, recordingId: rec.id, layout: info.layout, sources: sources.length }, 'recording started');
      return info;
    } catch (err) {
      room.detachRecording();
      throw err;
    }
  }

  /** The running recording of this room asks for consent: its id, else null. */
  consentRequest(roomId: string): string | null {
    const room = this.#rooms.get(roomId);
    return room?.consentRequired ? room.recordingId : null;
  }

  /** A participant's answer to the consent request of the room's running recording. */
  consent(roomId: string, peer: { id: string; name: string }, accepted: boolean, actor: AuditActor): void {
    const room = this.#rooms.get(roomId);
    const recordingId = this.consentRequest(roomId);
    if (!room || !recordingId) throw new TesseraError('REC_ERR_NOT_RECORDING', 'no recording in this room asks for consent');
    room.setConsent(peer.id, accepted);
    const at = new Date().toISOString();
    this.#recorder.noteConsent?.(recordingId, { participantId: peer.id, name: peer.name, accepted, at });
    this.audit.record({ event: accepted ? 'consent.given' : 'consent.declined', actor, roomId, recordingId });
  }

  async stopRecording(roomId: string, actor: AuditActor): Promise<RecordingInfo> {
    const rec = this.#recorder.activeFor(roomId);
    if (!rec) throw new TesseraError('REC_ERR_NOT_RECORDING', `room ${roomId} is not recording`);
    this.audit.record({ event: 'recording.stopped', actor, roomId, recordingId: rec.id });
    const info = await rec.stop();
    this.#rooms.get(roomId)?.detachRecording(rec.id);
    return info;
  }

  /**
   * SIGTERM: no new rooms or recordings; the calls and recordings running go on until they end by
   * themselves (the last person leaves; an empty room stops its recording). Resolves when there is
   * neither a room nor a recording left; `finish()` ends them sooner.
   */
  async drain(pollMs = 250): Promise<void> {
    if (!this.#draining) {
      this.#draining = true;
      this.#log.info({ rooms: this.#rooms.size, recordings: this.#recorder.activeCount }, 'draining: waiting for calls to end');
    }
    while (this.#rooms.size > 0 || this.#recorder.activeCount > 0) await new Promise((r) => setTimeout(r, pollMs));
    await this.#recorder.drain(); // nothing is running: stops the spare worker
    this.close();
  }

  /**
   * The end of the shutdown grace: stop every recording cleanly (whole fragments, `available`),
   * then close the rooms (their people are told to rejoin elsewhere by the caller).
   */
  async finish(): Promise<void> {
    this.#draining = true;
    this.#log.info({ rooms: this.#rooms.size, recordings: this.#recorder.activeCount }, 'drain deadline: stopping recordings and closing rooms');
    await this.#recorder.drain();
    this.close();
  }

  /** People in calls and recordings running: what a deletion of this process would cut. */
  load(): { participants: number; recordings: number } {
    let participants = 0;
    for (const room of this.#rooms.values()) participants += room.size;
    return { participants, recordings: this.#recorder.activeCount };
  }

  /** Idempotent: closes every room (participants are disconnected). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#draining = true;
    for (const room of this.#rooms.values()) room.close();
    this.#rooms.clear();
    this.#recorder.off('state', this.#onState);
    this.#recorder.off('expired', this.#onExpired);
  }
}
