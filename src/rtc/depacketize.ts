import type { VideoCodec } from '../media/types';

/**
 * Pure RTP payload parsing for VP8 (RFC 7741) and H.264 (RFC 6184, packetization-mode 1).
 * Ours rather than werift's: werift's depacketizer emitted a corrupt first keyframe with
 * `waitForKeyframe`, and we need to know exactly where frames start to resynchronise after loss.
 * Every function returns null on malformed input instead of throwing.
 */

export interface Vp8Descriptor {
  /** Start of a VP8 partition. */
  start: boolean;
  partitionId: number;
  /** Offset of the VP8 payload in the RTP payload. */
  headerSize: number;
}

export function parseVp8Descriptor(p: Buffer): Vp8Descriptor | null {
  if (p.length < 1) return null;
  let i = 0;
  const b0 = p[i++];
  const x = (b0 & 0x80) !== 0;
  const start = (b0 & 0x10) !== 0;
  const partitionId = b0 & 0x07;
  if (x) {
    if (p.length < i + 1) return null;
    const b1 = p[i++];
    const I = (b1 & 0x80) !== 0;
    const L = (b1 & 0x40) !== 0;
    const T = (b1 & 0x20) !== 0;
    const K = (b1 & 0x10) !== 0;
    if (I) {
      if (p.length < i + 1) return null;
      const m = (p[i] & 0x80) !== 0;
      i += m ? 2 : 1;
    }
    if (L) i += 1;
    if (T || K) i += 1;
  }
  if (i > p.length) return null;
  return { start, partitionId, headerSize: i };
}

/** True when this RTP payload begins a VP8 keyframe (S=1, PID=0, P bit of the frame tag = 0). */
export function isVp8KeyframeStart(p: Buffer): boolean {
  const d = parseVp8Descriptor(p);
  if (!d || !d.start || d.partitionId !== 0 || p.length <= d.headerSize) return false;
  return (p[d.headerSize] & 0x01) === 0;
}

export function isVp8FrameStart(p: Buffer): boolean {
  const d = parseVp8Descriptor(p);
  return !!d && d.start && d.partitionId === 0 && p.length > d.headerSize;
}

/** Coded size from a VP8 keyframe header (frame tag, start code 9d 01 2a, 14-bit sizes). */
export function vp8KeyframeSize(frame: Buffer): { width: number; height: number } | null {
  if (frame.length < 10 || (frame[0] & 0x01) !== 0) return null;
  if (frame[3] !== 0x9d || frame[4] !== 0x01 || frame[5] !== 0x2a) return null;
  return { width: frame.readUInt16LE(6) & 0x3fff, height: frame.readUInt16LE(8) & 0x3fff };
}

const START_CODE = Buffer.from([0, 0, 0, 1]);

/** NAL unit types present at the start of this H.264 RTP payload (STAP-A: all aggregated ones). */
export function h264NalTypes(p: Buffer): number[] {
  if (p.length < 1) return [];
  const type = p[0] & 0x1f;
  if (type >= 1 && type <= 23) return [type];
  if (type === 24) {
    const types: number[] = [];
    let i = 1;
    while (i + 2 < p.length) {
      const size = p.readUInt16BE(i);
      i += 2;
      if (size === 0 || i + size > p.length) break;
      types.push(p[i] & 0x1f);
      i += size;
    }
    return types;
  }
  if (type === 28 && p.length >= 2 && (p[1] & 0x80) !== 0) return [p[1] & 0x1f];
  return [];
}

/** An access unit that can be decoded from scratch starts with SPS (Chrome sends SPS, PPS, IDR). */
export function isH264KeyframeStart(p: Buffer): boolean {
  const types = h264NalTypes(p);
  return types.includes(7) || types[0] === 5;
}

export interface DepacketizedFrame {
  data: Buffer;
  keyframe: boolean;
  width?: number;
  height?: number;
}

/** Joins the payloads of one frame's packets (in sequence order). Null when malformed. */
export function depacketize(codec: VideoCodec, payloads: Buffer[]): DepacketizedFrame | null {
  return codec === 'vp8' ? depacketizeVp8(payloads) : depacketizeH264(payloads);
}

function depacketizeVp8(payloads: Buffer[]): DepacketizedFrame | null {
  const parts: Buffer[] = [];
  let first = true;
  for (const p of payloads) {
    if (p.length === 0) continue;
    const d = parseVp8Descriptor(p);
    if (!d) return null;
    if (first && !(d.start && d.partitionId === 0)) return null;
    first = false;
    parts.push(p.subarray(d.headerSize));
  }
  if (parts.length === 0) return null;
  const data = Buffer.concat(parts);
  if (data.length < 3) return null;
  const keyframe = (data[0] & 0x01) === 0;
  if (keyframe) {
    const size = vp8KeyframeSize(data);
    if (!size || size.width === 0 || size.height === 0) return null;
    return { data, keyframe, ...size };
  }
  return { data, keyframe };
}

function depacketizeH264(payloads: Buffer[]): DepacketizedFrame | null {
  const parts: Buffer[] = [];
  let keyframe = false;
  let inFu = false;
  for (const p of payloads) {
    if (p.length === 0) continue;
    const type = p[0] & 0x1f;
    if (type >= 1 && type <= 23) {
      if (inFu) return null;
      parts.push(START_CODE, p);
      if (type === 5) keyframe = true;
    } else if (type === 24) {
      if (inFu) return null;
      let i = 1;
      while (i < p.length) {
        if (i + 2 > p.length) return null;
        const size = p.readUInt16BE(i);
        i += 2;
        if (size === 0 || i + size > p.length) return null;
        const nal = p.subarray(i, i + size);
        if ((nal[0] & 0x1f) === 5) keyframe = true;
        parts.push(START_CODE, nal);
        i += size;
      }
    } else if (type === 28) {
      if (p.length < 3) return null;
      const s = (p[1] & 0x80) !== 0;
      const e = (p[1] & 0x40) !== 0;
      const nalType = p[1] & 0x1f;
      if (s) {
        if (inFu) return null;
        parts.push(START_CODE, Buffer.from([(p[0] & 0xe0) | nalType]));
        if (nalType === 5) keyframe = true;
        inFu = true;
      } else if (!inFu) {
        return null;
      }
      parts.push(p.subarray(2));
      if (e) inFu = false;
    } else {
      return null; // STAP-B, MTAP, FU-B: not used in packetization-mode 1 from browsers
    }
  }
  if (inFu || parts.length === 0) return null;
  return { data: Buffer.concat(parts), keyframe };
}
