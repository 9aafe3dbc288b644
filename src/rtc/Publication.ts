import { EventEmitter } from 'node:events';
import type { MediaStreamTrack, RTCRtpReceiver, RTCRtpSender, RtpPacket } from 'werift';
import type { Logger } from '../logger';
import { metrics } from '../metrics';
import type { TrackPurpose } from './negotiation';
import type { RtcOptions } from './options';

export interface PublicationEvents {
  close: [];
}

/**
 * One track a participant publishes (camera video, microphone, screen) and its forwarding to the
 * other participants' subscriber connections.
 *
 * werift (since 0.25) clones each packet in `RTCRtpSender.sendRtp` before rewriting it for its
 * subscriber (SSRC, payload type, sequence number), so one packet object can go to every sender.
 * But the sender still copies each header extension of the packet it is given over its own, by
 * id, and the ids are each connection's own: Chrome offers abs-send-time as 2, which is our
 * subscriber connections' mid, so a Chrome publisher's send time would replace the mid the
 * subscriber demultiplexes by. So each packet is cloned once (other taps of the track, the
 * recording among them, see the original) and its extensions are stripped.
 */
export class Publication extends EventEmitter<PublicationEvents> {
  readonly key: string;
  readonly peerId: string;
  readonly mid: string;
  readonly purpose: TrackPurpose;
  readonly kind: 'audio' | 'video';
  readonly track: MediaStreamTrack;
  readonly mimeType: string;
  readonly #receiver: RTCRtpReceiver;
  readonly #ssrcHint: number | undefined;
  readonly #opts: RtcOptions;
  readonly #log: Logger;
  readonly #subscribers = new Map<string, RTCRtpSender>();
  readonly #pliSubscriptions = new Map<string, { unSubscribe: () => void }>();
  readonly #unsubscribe: () => void;
  #closed = false;
  #lastPliAt = 0;

  constructor(init: {
    peerId: string;
    mid: string;
    purpose: TrackPurpose;
    kind: 'audio' | 'video';
    track: MediaStreamTrack;
    receiver: RTCRtpReceiver;
    mimeType: string;
    ssrcHint?: number;
    options: RtcOptions;
    logger: Logger;
  }) {
    super();
    this.peerId = init.peerId;
    this.mid = init.mid;
    this.key = `${init.peerId}:${init.mid}`;
    this.purpose = init.purpose;
    this.kind = init.kind;
    this.track = init.track;
    this.mimeType = init.mimeType;
    this.#receiver = init.receiver;
    this.#ssrcHint = init.ssrcHint;
    this.#opts = init.options;
    this.#log = init.logger.child({ mid: init.mid, purpose: init.purpose });
    const counter = metrics.rtcPacketsForwarded.labels({ kind: init.kind });
    const { unSubscribe } = this.track.onReceiveRtp.subscribe((rtp: RtpPacket) => {
      if (this.#closed || this.#subscribers.size === 0) return;
      const copy = rtp.clone();
      copy.header.extensions = [];
      for (const sender of this.#subscribers.values()) {
        sender.sendRtp(copy).catch(() => {
          /* the subscriber's transport closed under us: its Peer cleans up */
        });
        counter.inc();
      }
    });
    this.#unsubscribe = unSubscribe;
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  addSubscriber(peerId: string, sender: RTCRtpSender): void {
    if (this.#closed) return;
    this.#subscribers.set(peerId, sender);
    if (this.kind === 'video') {
      // the subscriber asks for keyframes (decoder start, loss); its Peer asks once negotiated.
      // Unsubscribed when the forward ends: the sender outlives it in the subscriber's connection
      // and would otherwise keep this publication (and its publisher's connection) in memory.
      this.#pliSubscriptions.set(peerId, sender.onPictureLossIndication.subscribe(() => this.requestKeyframe('subscriber')));
    }
  }

  removeSubscriber(peerId: string): void {
    this.#subscribers.delete(peerId);
    this.#pliSubscriptions.get(peerId)?.unSubscribe();
    this.#pliSubscriptions.delete(peerId);
  }

  /** Sends a PLI to the publisher, at most once per pliMinIntervalMs. */
  requestKeyframe(reason: string, force = false): void {
    if (this.#closed || this.kind !== 'video') return;
    const now = Date.now();
    if (!force && now - this.#lastPliAt < this.#opts.pliMinIntervalMs) return;
    this.#lastPliAt = now;
    const ssrc = this.track.ssrc ?? this.#ssrcHint;
    if (ssrc === undefined) return;
    if (reason.startsWith('subscriber')) metrics.rtcKeyframeRequests.inc({ reason });
    this.#receiver.sendRtcpPLI(ssrc).catch((err: unknown) => this.#log.debug({ err }, 'PLI not sent'));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    for (const id of [...this.#subscribers.keys()]) this.removeSubscriber(id);
    this.emit('close');
    this.removeAllListeners();
  }
}
