import { EventEmitter } from 'node:events';
import { RTCPeerConnection, type RTCRtpSender, type RTCRtpTransceiver } from 'werift';
import type { Config } from '../config';
import { TesseraError, toTesseraError } from '../errors';
import type { Logger } from '../logger';
import { codecForForwarding, endForward, parseSignal, peerConfig, preferOfferedVideoCodecs, publishedTracks, reuseInactiveSection, withoutDefaultStun, type ServerSignal, type TrackPurpose } from './negotiation';
import { usableCandidate, usableCandidatesOnly } from './candidates';
import type { RtcOptions } from './options';
import { Publication } from './Publication';
import { announcedCandidatesOnly, bundleOnlyAsBundled, parseMediaSections, withoutMdnsCandidates } from './sdp';
import { enlargeRecvBuffers } from './udpBuffers';
import './weriftFixes'; // before any connection exists (see the file)

export interface PeerEvents {
  signal: [ServerSignal];
  published: [Publication];
  unpublished: [Publication];
  /** ICE/DTLS failed or never connected: the participant has no media. */
  failed: [TesseraError];
  /** The same identity joined again elsewhere and took this seat (the Peer closes next). */
  replaced: [];
  close: [];
}

interface Forward {
  pub: Publication;
  transceiver: RTCRtpTransceiver;
  sender: RTCRtpSender;
  negotiated: boolean;
  /** Our listener on the publication's 'close', removed when we stop forwarding it (else each
   * departed subscriber's Peer, connections and all, stayed reachable from a publication that
   * outlived it). */
  onPubClose: () => void;
}

/**
 * One participant's WebRTC side: two werift peer connections so each has exactly one offerer
 * and renegotiation never collides (glare): `pub` (the browser offers what it sends, we answer)
 * and `sub` (we offer the other participants' tracks, the browser answers). All operations on a
 * peer's connections run one at a time, in arrival order, so out-of-order or concurrent
 * signalling cannot interleave inside werift.
 */
export class Peer extends EventEmitter<PeerEvents> {
  readonly id: string;
  readonly name: string;
  /** Who this is, from the room token (one seat per identity); null in development mode. */
  readonly identity: string | null;
  readonly joinedAt = new Date();
  readonly #opts: RtcOptions;
  readonly #log: Logger;
  readonly #pub: RTCPeerConnection;
  readonly #sub: RTCPeerConnection;
  readonly #publications = new Map<string, Publication>(); // by mid
  readonly #forwards = new Map<string, Forward>(); // by publication key
  #queue: Promise<unknown> = Promise.resolve();
  /** Remote candidates taken per connection (trickled and in SDPs), see maxRemoteCandidates. */
  readonly #remoteCandidates = { pub: 0, sub: 0 };
  #closed = false;
  #subOfferPending = false; // an offer is out, waiting for the answer
  #subDirty = false; // something changed since the last offer
  #connectTimer: NodeJS.Timeout | null = null;
  #pubConnected = false;
  /** PUBLIC_IP: the only address our SDP announces (see announcedCandidatesOnly). */
  readonly #publicIp: string | null;

  /** Display names of other participants, for the tiles of the sub offer. */
  readonly #nameOf: (peerId: string) => string;

  constructor(init: { id: string; name: string; identity?: string | null; config: Readonly<Config>; options: RtcOptions; logger: Logger; nameOf: (peerId: string) => string }) {
    super();
    this.identity = init.identity ?? null;
    this.#nameOf = init.nameOf;
    this.#publicIp = init.config.publicIp;
    this.id = init.id;
    this.name = init.name;
    this.#opts = init.options;
    this.#log = init.logger.child({ participantId: init.id });
    this.#pub = new RTCPeerConnection(peerConfig(init.config, 'pub'));
    this.#sub = new RTCPeerConnection(peerConfig(init.config, 'sub'));
    for (const [role, conn] of [['pub', this.#pub], ['sub', this.#sub]] as const) {
      conn.connectionStateChange.subscribe((state) => {
        this.#log.debug({ pc: role, state }, 'connection state');
        if (role === 'pub' && state === 'connected') {
          this.#pubConnected = true;
          if (this.#connectTimer) clearTimeout(this.#connectTimer);
        }
        if (state === 'failed') this.#fail(new TesseraError('REC_ERR_BAD_SIGNAL', `WebRTC ${role} connection failed (ICE/DTLS)`));
      });
    }
  }

  get publications(): Publication[] {
    return [...this.#publications.values()];
  }

  /** Whether the publishing connection has come up (ICE and DTLS done): its media can flow. */
  get publishConnected(): boolean {
    return this.#pubConnected;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** One client `signal` message; resolves when applied, rejects with a TesseraError. */
  handleSignal(raw: unknown): Promise<void> {
    if (this.#closed) return Promise.reject(new TesseraError('REC_ERR_NOT_JOINED', 'participant has left'));
    const msg = parseSignal(raw, this.#opts); // throws synchronously on bad input: nothing queued
    return this.#enqueue(async () => {
      if (msg.type === 'candidate') {
        const pc = msg.pc === 'pub' ? this.#pub : this.#sub;
        if (!msg.candidate || msg.candidate.candidate === '') return;
        if (!usableCandidate(msg.candidate.candidate)) {
          this.#log.debug({ candidate: msg.candidate.candidate.slice(0, 120) }, 'candidate skipped');
          return;
        }
        // Each candidate is an address the server sends STUN checks to: a client gets a few
        // (a browser sends one per interface and family), not a scan of a network.
        if (++this.#remoteCandidates[msg.pc] > this.#opts.maxRemoteCandidates) {
          this.#log.debug({ pc: msg.pc }, 'candidate skipped: too many');
          return;
        }
        try {
          await pc.addIceCandidate({ candidate: msg.candidate.candidate, sdpMid: msg.candidate.sdpMid ?? undefined, sdpMLineIndex: msg.candidate.sdpMLineIndex ?? undefined });
        } catch (err) {
          throw new TesseraError('REC_ERR_BAD_SIGNAL', `signal: ICE candidate refused: ${(err as Error).message}`);
        }
        return;
      }
      const sdp = usableCandidatesOnly(msg.sdp, this.#opts.maxRemoteCandidates - this.#remoteCandidates[msg.pc]);
      this.#remoteCandidates[msg.pc] += (sdp.match(/^a=candidate:/gm) ?? []).length;
      if (msg.pc === 'pub') await this.#onPubOffer(sdp, msg.tracks);
      else await this.#onSubAnswer(sdp);
    });
  }

  #enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(() => {
      if (this.#closed) throw new TesseraError('REC_ERR_NOT_JOINED', 'participant has left');
      return fn();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #onPubOffer(sdp: string, tracks: Record<string, TrackPurpose>): Promise<void> {
    if (this.#pub.signalingState !== 'stable') throw new TesseraError('REC_ERR_BAD_SIGNAL', 'signal: publish offer while another is being applied');
    // Checked before werift sees the offer: what it accepts becomes transceivers and, while
    // recording, decoder processes.
    const sending = publishedTracks(parseMediaSections(sdp), tracks);
    try {
      preferOfferedVideoCodecs(this.#pub, sdp);
      await this.#pub.setRemoteDescription({ type: 'offer', sdp: bundleOnlyAsBundled(this.#withoutMdns('pub', sdp)) });
    } catch (err) {
      throw new TesseraError('REC_ERR_BAD_SIGNAL', `signal: offer refused: ${(err as Error).message}`);
    }
    let answerSdp: string;
    try {
      const answer = await this.#pub.createAnswer();
      withoutDefaultStun(this.#pub);
      await this.#pub.setLocalDescription(answer);
      await this.#gathered(this.#pub);
      answerSdp = announcedCandidatesOnly(this.#pub.localDescription!.sdp, this.#publicIp);
    } catch (err) {
      throw toTesseraError(err);
    }
    if (!this.#pubConnected && !this.#connectTimer) {
      this.#connectTimer = setTimeout(() => {
        if (!this.#pubConnected) this.#fail(new TesseraError('REC_ERR_BAD_SIGNAL', `WebRTC did not connect within ${this.#opts.connectTimeoutMs} ms`));
      }, this.#opts.connectTimeoutMs);
      this.#connectTimer.unref();
    }
    this.emit('signal', { pc: 'pub', type: 'answer', sdp: answerSdp });

    for (const [mid, pub] of this.#publications) {
      if (!sending.has(mid)) {
        this.#publications.delete(mid);
        this.emit('unpublished', pub);
        pub.close();
      }
    }
    for (const [mid, info] of sending) {
      if (this.#publications.has(mid)) continue;
      const t = this.#pub.getTransceivers().find((x) => x.mid === mid);
      if (!t) continue;
      const { purpose } = info;
      const mimeType = t.codecs[0]?.mimeType ?? (info.kind === 'audio' ? 'audio/opus' : 'video/VP8');
      const pub = new Publication({
        peerId: this.id,
        mid,
        purpose,
        kind: info.kind,
        track: t.receiver.track,
        receiver: t.receiver,
        mimeType,
        ssrcHint: info.ssrc,
        options: this.#opts,
        logger: this.#log,
      });
      this.#publications.set(mid, pub);
      this.#log.info({ mid, purpose, mimeType }, 'published');
      this.emit('published', pub);
    }
  }

  /** Forward another participant's publication to this participant (renegotiates `sub`). */
  subscribe(pub: Publication): void {
    if (this.#closed || this.#forwards.has(pub.key)) return;
    const reused = reuseInactiveSection(this.#sub, pub.kind);
    if (reused) this.#log.debug({ mid: reused.mid, from: pub.key }, 'forward takes a departed one\'s section');
    const transceiver = reused ?? this.#sub.addTransceiver(pub.kind, { direction: 'sendonly' });
    transceiver.codecs = codecForForwarding(pub.kind, pub.mimeType);
    const sender = transceiver.sender;
    const onPubClose = () => this.unsubscribe(pub.key);
    this.#forwards.set(pub.key, { pub, transceiver, sender, negotiated: false, onPubClose });
    pub.addSubscriber(this.id, sender);
    pub.once('close', onPubClose);
    this.#renegotiate();
  }

  unsubscribe(pubKey: string): void {
    const f = this.#forwards.get(pubKey);
    if (!f || this.#closed) return;
    this.#forwards.delete(pubKey);
    f.pub.removeSubscriber(this.id);
    f.pub.off('close', f.onPubClose);
    endForward(f.transceiver);
    this.#renegotiate();
  }

  #renegotiate(): void {
    if (this.#closed) return;
    this.#subDirty = true;
    if (this.#subOfferPending) return;
    this.#enqueue(() => this.#offerSub()).catch((err: unknown) => {
      if (this.#closed) return;
      this.#log.warn({ err }, 'subscriber offer failed');
      this.#fail(toTesseraError(err));
    });
  }

  async #offerSub(): Promise<void> {
    if (!this.#subDirty || this.#subOfferPending) return;
    this.#subDirty = false;
    if (this.#sub.getTransceivers().length === 0) return;
    const offer = await this.#sub.createOffer();
    withoutDefaultStun(this.#sub);
    await this.#sub.setLocalDescription(offer);
    await this.#gathered(this.#sub);
    this.#subOfferPending = true;
    const sources: Record<string, { participantId: string; name: string; purpose: TrackPurpose }> = {};
    for (const f of this.#forwards.values()) {
      if (f.transceiver.mid !== null) sources[f.transceiver.mid] = { participantId: f.pub.peerId, name: this.#nameOf(f.pub.peerId), purpose: f.pub.purpose };
    }
    this.emit('signal', { pc: 'sub', type: 'offer', sdp: announcedCandidatesOnly(this.#sub.localDescription!.sdp, this.#publicIp), sources });
  }

  async #onSubAnswer(sdp: string): Promise<void> {
    if (!this.#subOfferPending || this.#sub.signalingState !== 'have-local-offer') {
      throw new TesseraError('REC_ERR_BAD_SIGNAL', 'signal: answer without a pending offer from the server');
    }
    try {
      await this.#sub.setRemoteDescription({ type: 'answer', sdp: this.#withoutMdns('sub', sdp) });
    } catch (err) {
      throw new TesseraError('REC_ERR_BAD_SIGNAL', `signal: answer refused: ${(err as Error).message}`);
    }
    this.#subOfferPending = false;
    for (const f of this.#forwards.values()) {
      if (f.negotiated) continue;
      f.negotiated = true;
      if (f.pub.kind !== 'video') continue;
      const dtls = f.sender.transport;
      if (dtls && dtls.state === 'connected') f.pub.requestKeyframe('subscriber-start', true);
      else f.sender.onReady.once(() => f.pub.requestKeyframe('subscriber-start', true));
    }
    if (this.#subDirty) this.#renegotiate();
  }

  #withoutMdns(pc: 'pub' | 'sub', sdp: string): string {
    const r = withoutMdnsCandidates(sdp);
    if (r.skipped) this.#log.debug({ pc, skipped: r.skipped }, 'mDNS candidates skipped; the browser\'s checks will be answered');
    return r.sdp;
  }

  async #gathered(pc: RTCPeerConnection): Promise<void> {
    if (pc.iceGatheringState !== 'complete') await pc.iceGatheringStateChange.watch((s) => s === 'complete', this.#opts.connectTimeoutMs);
    // The sockets exist once candidates are gathered.
    enlargeRecvBuffers(pc, this.#opts.udpRecvBufferBytes, this.#log);
  }

  /** Fail this participant's media as a lost connection would (tests of the client's recovery). */
  debugFail(): void {
    this.#fail(new TesseraError('REC_ERR_BAD_SIGNAL', 'WebRTC pub connection failed (ICE/DTLS)'));
  }

  #fail(err: TesseraError): void {
    if (this.#closed) return;
    this.#log.warn({ err: err.message }, 'peer failed');
    this.emit('failed', err);
  }

  /** Idempotent; closes both connections and every publication of this participant. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#connectTimer) clearTimeout(this.#connectTimer);
    for (const pub of this.#publications.values()) {
      this.emit('unpublished', pub);
      pub.close();
    }
    this.#publications.clear();
    for (const f of this.#forwards.values()) {
      f.pub.removeSubscriber(this.id);
      f.pub.off('close', f.onPubClose);
    }
    this.#forwards.clear();
    this.#pub.close().catch(() => undefined);
    this.#sub.close().catch(() => undefined);
    this.emit('close');
    this.removeAllListeners();
  }
}
