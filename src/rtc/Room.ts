import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Config } from '../config';
import { TesseraError } from '../errors';
import type { Logger } from '../logger';
import type { MediaSource } from '../media/types';
import { metrics } from '../metrics';
import { videoCodecOf } from './negotiation';
import type { RtcOptions } from './options';
import { Peer } from './Peer';
import type { Publication } from './Publication';
import { WebRtcSource } from './WebRtcSource';

export interface ParticipantInfo {
  id: string;
  name: string;
  joinedAt: string;
  publishing: string[];
}

/** What the room needs of a running recording (the pipeline's Recording satisfies it). */
export interface RecordingTap {
  readonly id: string;
  addSource(src: MediaSource): void;
  removeSource(sourceId: string): void;
}

export interface RoomEvents {
  participants: [ParticipantInfo[]];
  /** The last participant left. */
  empty: [];
  close: [];
}

/**
 * An SFU room: its participants (Peer), every published track forwarded to every other
 * participant, and — while the room records — one MediaSource per camera (with its
 * microphone) and per screen share, handed to the recording as people come and go.
 */
export class Room extends EventEmitter<RoomEvents> {
  readonly id: string;
  readonly #config: Readonly<Config>;
  readonly #opts: RtcOptions;
  readonly #log: Logger;
  readonly #peers = new Map<string, Peer>();
  #closed = false;
  #tap: RecordingTap | null = null;
  /** Recording sources: `${peerId}:camera` and `${peerId}:screen:${mid}`. */
  readonly #sources = new Map<string, WebRtcSource>();
  /**
   * Consent required for the running recording: only those who accepted are recorded (tile,
   * voice, screen); whoever declined or has not answered is left out entirely.
   */
  #consentRequired = false;
  readonly #consented = new Set<string>();

  constructor(init: { id: string; config: Readonly<Config>; options: RtcOptions; logger: Logger }) {
    super();
    this.id = init.id;
    this.#config = init.config;
    this.#opts = init.options;
    this.#log = init.logger.child({ roomId: init.id });
    metrics.rtcRooms.inc();
  }

  get size(): number {
    return this.#peers.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get recordingId(): string | null {
    return this.#tap?.id ?? null;
  }

  peer(id: string): Peer | undefined {
    return this.#peers.get(id);
  }

  participants(): ParticipantInfo[] {
    return [...this.#peers.values()].map((p) => ({
      id: p.id,
      name: p.name,
      joinedAt: p.joinedAt.toISOString(),
      publishing: p.publications.map((x) => x.purpose),
    }));
  }

  /** What a participant publishes and in which codec (operators' and tests' view; not sent to clients). */
  publicationsOf(peerId: string): Array<{ purpose: string; mimeType: string }> {
    return (this.#peers.get(peerId)?.publications ?? []).map((x) => ({ purpose: x.purpose, mimeType: x.mimeType }));
  }

  /**
   * `identity` (from the room token) holds one seat: joining again with it — a reload, a second
   * device, or one token handed around to fill the room — replaces the earlier participant.
   */
  join(name: string, identity: string | null = null): Peer {
    if (this.#closed) throw new TesseraError('REC_ERR_ROOM_NOT_FOUND', `room ${this.id} is closed`);
    const earlier = identity === null ? undefined : [...this.#peers.values()].find((p) => p.identity === identity);
    if (earlier) {
      this.#log.info({ participantId: earlier.id }, 'same identity joined again: replacing');
      earlier.emit('replaced');
      this.leave(earlier.id, false);
    }
    if (this.#peers.size >= this.#opts.maxParticipants) {
      throw new TesseraError('REC_ERR_CAPACITY', `room ${this.id} is full (${this.#opts.maxParticipants} participants)`);
    }
    const peer = new Peer({
      id: randomUUID(),
      name,
      identity,
      config: this.#config,
      options: this.#opts,
      logger: this.#log,
      nameOf: (id) => this.#peers.get(id)?.name ?? '',
    });
    this.#peers.set(peer.id, peer);
    metrics.rtcParticipants.inc();
    this.#log.info({ participantId: peer.id, name }, 'joined');
    peer.on('published', (pub) => this.#onPublished(peer, pub));
    peer.on('unpublished', (pub) => this.#onUnpublished(peer, pub));
    // everything already published here reaches the newcomer
    for (const other of this.#peers.values()) {
      if (other === peer) continue;
      for (const pub of other.publications) peer.subscribe(pub);
    }
    if (this.#tap && this.#recorded(peer.id)) this.#addCameraSource(peer);
    this.#emitParticipants();
    return peer;
  }

  leave(peerId: string, emptyEnds = true): void {
    const peer = this.#peers.get(peerId);
    if (!peer) return;
    this.#peers.delete(peerId);
    this.#consented.delete(peerId);
    metrics.rtcParticipants.dec();
    this.#dropSourcesOf(peerId);
    peer.close(); // closes its publications: the other peers' forwards go with them
    this.#log.info({ participantId: peerId }, 'left');
    this.#emitParticipants();
    // A replacement about to join keeps the room (and its recording) alive.
    if (this.#peers.size === 0 && emptyEnds) this.emit('empty');
  }

  #dropSourcesOf(peerId: string): void {
    for (const [key, src] of this.#sources) {
      if (src.participantId !== peerId) continue;
      this.#sources.delete(key);
      this.#removeFromTap(src.id);
      src.close();
    }
  }

  /** Whether this participant is in the running recording (always, unless consent is required). */
  #recorded(peerId: string): boolean {
    return !this.#consentRequired || this.#consented.has(peerId);
  }

  get consentRequired(): boolean {
    return this.#tap !== null && this.#consentRequired;
  }

  /**
   * A participant's answer while consent is required: accepting adds their camera, microphone
   * and screen to the recording from now on; declining (also after accepting) takes them out.
   */
  setConsent(peerId: string, accepted: boolean): void {
    const peer = this.#peers.get(peerId);
    if (!peer || !this.consentRequired) return;
    if (accepted) {
      if (this.#consented.has(peerId)) return;
      this.#consented.add(peerId);
      this.#addCameraSource(peer);
      for (const pub of peer.publications) if (pub.purpose === 'screen') this.#addScreenSource(peer, pub);
    } else {
      this.#consented.delete(peerId);
      this.#dropSourcesOf(peerId);
    }
  }

  #emitParticipants(): void {
    if (!this.#closed) this.emit('participants', this.participants());
  }

  #onPublished(peer: Peer, pub: Publication): void {
    for (const other of this.#peers.values()) if (other !== peer) other.subscribe(pub);
    if (this.#tap && this.#recorded(peer.id)) {
      if (pub.purpose === 'screen') this.#addScreenSource(peer, pub);
      else this.#attachToCamera(peer, pub);
    }
    this.#emitParticipants();
  }

  #onUnpublished(peer: Peer, pub: Publication): void {
    if (pub.purpose === 'screen') {
      const key = `${peer.id}:screen:${pub.mid}`;
      const src = this.#sources.get(key);
      if (src) {
        this.#sources.delete(key);
        this.#removeFromTap(src.id);
        src.close();
      }
    } else {
      const cam = this.#sources.get(`${peer.id}:camera`);
      if (cam) {
        if (pub.purpose === 'camera') cam.detachVideo();
        else cam.detachAudio();
      }
    }
    this.#emitParticipants();
  }

  // --- recording tap -----------------------------------------------------------------------

  /** Sources for everyone present, to start a recording with. Call attachRecording() next. */
  createRecordingSources(consentRequired = false): MediaSource[] {
    if (this.#tap) throw new TesseraError('REC_ERR_ALREADY_RECORDING', `room ${this.id} is already recording`);
    this.#closeSources();
    this.#consentRequired = consentRequired;
    this.#consented.clear();
    for (const peer of this.#peers.values()) {
      if (!this.#recorded(peer.id)) continue;
      this.#addCameraSource(peer, false);
      for (const pub of peer.publications) if (pub.purpose === 'screen') this.#addScreenSource(peer, pub, false);
    }
    return [...this.#sources.values()];
  }

  attachRecording(tap: RecordingTap): void {
    this.#tap = tap;
    this.#log.info({ recordingId: tap.id }, 'recording tapped');
  }

  /** The recording ended (or failed to start): drop its sources. */
  detachRecording(recordingId?: string): void {
    if (recordingId && this.#tap && this.#tap.id !== recordingId) return;
    this.#tap = null;
    this.#consentRequired = false;
    this.#consented.clear();
    this.#closeSources();
  }

  #closeSources(): void {
    for (const src of this.#sources.values()) src.close();
    this.#sources.clear();
  }

  #removeFromTap(sourceId: string): void {
    try {
      this.#tap?.removeSource(sourceId);
    } catch (err) {
      this.#log.warn({ err, sourceId }, 'removeSource failed');
    }
  }

  #addToTap(src: WebRtcSource): void {
    try {
      this.#tap?.addSource(src);
    } catch (err) {
      this.#log.warn({ err, sourceId: src.id }, 'addSource failed');
    }
  }

  #newSource(peer: Peer, id: string, kind: 'camera' | 'screen', pliTarget: () => Publication | undefined): WebRtcSource {
    return new WebRtcSource({
      id,
      participantId: peer.id,
      name: peer.name,
      kind,
      options: this.#opts,
      logger: this.#log,
      sendPli: (reason) => pliTarget()?.requestKeyframe(reason, true),
    });
  }

  #addCameraSource(peer: Peer, toTap = true): void {
    const id = `${peer.id}:camera`;
    if (this.#sources.has(id)) return;
    const src = this.#newSource(peer, id, 'camera', () => peer.publications.find((p) => p.purpose === 'camera'));
    this.#sources.set(id, src);
    for (const pub of peer.publications) if (pub.purpose !== 'screen') this.#attachToCamera(peer, pub);
    if (toTap) this.#addToTap(src);
  }

  #attachToCamera(peer: Peer, pub: Publication): void {
    const src = this.#sources.get(`${peer.id}:camera`);
    if (!src) return;
    if (pub.purpose === 'mic') src.attachAudio(pub.track);
    else {
      const codec = videoCodecOf(pub.mimeType);
      if (codec) src.attachVideo(pub.track, codec);
      else this.#log.warn({ mimeType: pub.mimeType }, 'camera codec not recordable');
    }
  }

  #addScreenSource(peer: Peer, pub: Publication, toTap = true): void {
    const id = `${peer.id}:screen:${pub.mid}`;
    if (this.#sources.has(id)) return;
    const codec = videoCodecOf(pub.mimeType);
    if (!codec) return;
    const src = this.#newSource(peer, id, 'screen', () => pub);
    src.attachVideo(pub.track, codec);
    this.#sources.set(id, src);
    if (toTap) this.#addToTap(src);
  }

  /** Idempotent: every participant is disconnected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const id of [...this.#peers.keys()]) this.leave(id);
    this.#closeSources();
    this.#tap = null;
    metrics.rtcRooms.dec();
    this.emit('close');
    this.removeAllListeners();
  }
}
