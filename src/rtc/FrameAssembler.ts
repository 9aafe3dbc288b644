import type { EncodedVideoFrame, VideoCodec } from '../media/types';
import { depacketize, isH264KeyframeStart, isVp8FrameStart, isVp8KeyframeStart } from './depacketize';

/**
 * Jitter buffer + frame assembly for one video RTP stream. Pure: time comes in as arguments.
 *
 * - Packets are reordered by (extended) sequence number; a frame is emitted only when every
 *   packet from the previous frame's end to its marker is present, so a frame never depends on a
 *   frame we lost.
 * - A gap is waited for `latencyMs` (NACK retransmissions fill it); then the partial frames are
 *   discarded, the assembler is out of sync and asks for a keyframe, and it emits nothing until a
 *   packet that starts a keyframe arrives (we check keyframes ourselves: VP8 frame tag / H.264
 *   SPS or IDR, never the first packet that happens to arrive).
 * - Garbage payloads make a frame malformed: it is discarded the same way.
 */
export interface RtpIn {
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payload: Buffer;
}

export interface AssemblerOptions {
  latencyMs: number;
  maxPackets: number;
  maxFrameBytes: number;
}

export interface AssemblerOutput {
  frames: EncodedVideoFrame[];
  /** The caller should send a PLI (the assembler lost sync, or just started). */
  needKeyframe: boolean;
  /** Frames given up: incomplete after the latency, malformed, or not decodable (no keyframe). */
  discarded: number;
}

interface Slot {
  pkt: RtpIn;
  arrival: number;
}

export class FrameAssembler {
  readonly #codec: VideoCodec;
  readonly #opts: AssemblerOptions;
  readonly #buf = new Map<number, Slot>();
  /** Extended sequence number of the first packet not yet consumed (undefined before the first packet). */
  #next: number | undefined;
  #highest: number | undefined;
  #synced = false;
  #pendingKeyframeRequest = true;

  constructor(codec: VideoCodec, opts: AssemblerOptions) {
    this.#codec = codec;
    this.#opts = opts;
  }

  get synced(): boolean {
    return this.#synced;
  }

  get buffered(): number {
    return this.#buf.size;
  }

  push(pkt: RtpIn, now: number): AssemblerOutput {
    const out: AssemblerOutput = { frames: [], needKeyframe: false, discarded: 0 };
    const ext = this.#extend(pkt.sequenceNumber);
    if (this.#next === undefined) this.#next = ext;
    if (ext < this.#next || this.#buf.has(ext)) return this.#finish(out); // late or duplicate
    this.#buf.set(ext, { pkt, arrival: now });
    if (this.#buf.size > this.#opts.maxPackets) {
      this.#desync(out);
      this.#buf.clear();
      this.#next = ext + 1;
    }
    this.#drain(now, out);
    return this.#finish(out);
  }

  /** Call periodically: gives up on gaps older than the latency. */
  poll(now: number): AssemblerOutput {
    const out: AssemblerOutput = { frames: [], needKeyframe: false, discarded: 0 };
    this.#drain(now, out);
    return this.#finish(out);
  }

  #finish(out: AssemblerOutput): AssemblerOutput {
    if (this.#pendingKeyframeRequest) {
      out.needKeyframe = true;
      this.#pendingKeyframeRequest = false;
    }
    return out;
  }

  #extend(seq: number): number {
    if (this.#highest === undefined) {
      this.#highest = seq + 65536; // room below for reordering at start
      return this.#highest;
    }
    const base = this.#highest - (this.#highest & 0xffff);
    let ext = base + seq;
    if (ext - this.#highest > 32768) ext -= 65536;
    else if (this.#highest - ext > 32768) ext += 65536;
    if (ext > this.#highest) this.#highest = ext;
    return ext;
  }

  #desync(out: AssemblerOutput): void {
    if (this.#synced) out.discarded++;
    this.#synced = false;
    this.#pendingKeyframeRequest = true;
  }

  #isKeyStart(p: Buffer): boolean {
    return this.#codec === 'vp8' ? isVp8KeyframeStart(p) : isH264KeyframeStart(p);
  }

  #drain(now: number, out: AssemblerOutput): void {
    for (;;) {
      if (!this.#synced && !this.#resync(now, out)) return;
      const r = this.#tryFrame(now, out);
      if (r === 'wait') return;
    }
  }

  /** Out of sync: find the start of a keyframe and continue from it. */
  #resync(now: number, out: AssemblerOutput): boolean {
    const seqs = [...this.#buf.keys()].sort((a, b) => a - b);
    for (const s of seqs) {
      const slot = this.#buf.get(s)!;
      if (this.#isKeyStart(slot.pkt.payload)) {
        for (const old of seqs) {
          if (old >= s) break;
          this.#buf.delete(old);
        }
        this.#next = s;
        this.#synced = true;
        return true;
      }
    }
    // No keyframe start yet: forget packets too old to belong to one we could still complete.
    for (const s of seqs) {
      if (now - this.#buf.get(s)!.arrival > this.#opts.latencyMs) {
        this.#buf.delete(s);
        this.#next = s + 1;
      }
    }
    return false;
  }

  /** In sync at #next: emit the frame starting there when complete. */
  #tryFrame(now: number, out: AssemblerOutput): 'emitted' | 'wait' | 'resync' {
    const start = this.#next!;
    // skip padding-only packets between frames
    let s = start;
    while (this.#buf.get(s)?.pkt.payload.length === 0) {
      this.#buf.delete(s);
      s++;
      this.#next = s;
    }
    const first = this.#buf.get(s);
    if (!first) return this.#maybeGiveUp(now, out);
    if (this.#codec === 'vp8' && !isVp8FrameStart(first.pkt.payload)) {
      this.#drop(s, s, out);
      return 'resync';
    }
    const ts = first.pkt.timestamp;
    const payloads: Buffer[] = [];
    let bytes = 0;
    let end = s;
    for (;;) {
      const slot = this.#buf.get(end);
      if (!slot) return this.#maybeGiveUp(now, out);
      if (slot.pkt.timestamp !== ts) {
        if (slot.pkt.payload.length === 0) {
          end++;
          continue;
        }
        end--; // the frame ended without a marker: the next frame started
        break;
      }
      payloads.push(slot.pkt.payload);
      bytes += slot.pkt.payload.length;
      if (bytes > this.#opts.maxFrameBytes) {
        this.#drop(s, end, out);
        return 'resync';
      }
      if (slot.pkt.marker) break;
      end++;
    }
    const frame = depacketize(this.#codec, payloads);
    for (let i = s; i <= end; i++) this.#buf.delete(i);
    this.#next = end + 1;
    if (!frame) {
      this.#desync(out);
      return 'resync';
    }
    out.frames.push({ codec: this.#codec, data: frame.data, rtpTimestamp: ts >>> 0, keyframe: frame.keyframe, width: frame.width, height: frame.height });
    return 'emitted';
  }

  #drop(from: number, to: number, out: AssemblerOutput): void {
    for (let i = from; i <= to; i++) this.#buf.delete(i);
    this.#next = to + 1;
    this.#desync(out);
  }

  /** A packet is missing at the head. It is a gap (not just a frame still arriving) when a later
   * packet is here; give up once that later packet has waited longer than the latency. */
  #maybeGiveUp(now: number, out: AssemblerOutput): 'wait' | 'resync' {
    let missing = this.#next!;
    while (this.#buf.has(missing)) missing++;
    let gapSince = Infinity;
    for (const [k, slot] of this.#buf) if (k > missing) gapSince = Math.min(gapSince, slot.arrival);
    if (gapSince === Infinity || now - gapSince <= this.#opts.latencyMs) return 'wait';
    // give up on the missing packet: drop the partial frame before it and continue after it;
    // resync then looks for a keyframe start beyond the gap
    for (const k of [...this.#buf.keys()]) if (k < missing) this.#buf.delete(k);
    this.#next = missing + 1;
    this.#desync(out);
    return 'resync';
  }
}
