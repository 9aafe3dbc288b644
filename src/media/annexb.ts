/**
 * H.264 Annex B, as x264 writes it with access unit delimiters (`aud=1`): cut a byte stream into
 * access units (one per encoded picture), tell keyframes, and read the codec string. Pure.
 */

const START = Buffer.from([0, 0, 1]);

/**
 * Offsets of every start code (00 00 01, or 00 00 00 01) in `buf` from `from`, with their NAL
 * type. Searched with Buffer.indexOf (native): the worker scans every byte x264 writes, and a
 * byte loop in JavaScript was its largest own cost after Opus decoding and writes (day 13).
 */
function* nalStarts(buf: Buffer, from = 0): Generator<{ at: number; type: number }> {
  for (let j = buf.indexOf(START, from); j >= 0 && j + 3 < buf.length; j = buf.indexOf(START, j + 3)) {
    const four = j - 1 >= from && buf[j - 1] === 0;
    yield { at: four ? j - 1 : j, type: buf[j + 3] & 0x1f };
  }
}

/** NAL unit types in an access unit. */
export function nalTypes(au: Buffer): number[] {
  return [...nalStarts(au)].map((n) => n.type);
}

/** An access unit is a keyframe when it holds an IDR slice (type 5). */
export function isKeyframe(au: Buffer): boolean {
  return nalTypes(au).includes(5);
}

/** `avc1.PPCCLL` from the SPS (type 7) in an access unit, or null without one. */
export function avcCodecString(au: Buffer): string | null {
  for (const n of nalStarts(au)) {
    if (n.type !== 7) continue;
    const p = n.at + (au[n.at + 2] === 1 ? 4 : 5);
    if (p + 3 > au.length) return null;
    return `avc1.${[au[p], au[p + 1], au[p + 2]].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
  }
  return null;
}

/** Offset of a NAL unit's header byte from its start code's first byte. */
function headerAt(buf: Buffer, at: number): number {
  return at + (buf[at + 2] === 1 ? 3 : 4);
}

/**
 * Whether a sender's H.264 access unit may reach a decoder inside a direct epoch
 * (src/pipeline/DirectFeed.ts): Annex B from its first byte, every NAL unit's header sane (the
 * forbidden bit clear, a type from 1 to 23), at least one slice; a keyframe holds an IDR slice,
 * an SPS (declaring at most `maxPixels`) and a PPS. A decoder that puts out nothing for a frame
 * stalls every tile of its epoch, so junk stops in the worker.
 */
export function h264FrameOk(au: Buffer, keyframe: boolean, maxPixels: number): boolean {
  if (au.length < 5 || au[0] !== 0 || au[1] !== 0 || !(au[2] === 1 || (au[2] === 0 && au[3] === 1))) return false;
  const types = new Set<number>();
  for (const n of nalStarts(au)) {
    const h = headerAt(au, n.at);
    if (h >= au.length || au[h] & 0x80 || n.type === 0 || n.type > 23) return false;
    types.add(n.type);
  }
  if (!keyframe) return types.has(1) || types.has(5);
  if (!types.has(5) || !types.has(7) || !types.has(8)) return false;
  const size = avcPictureSize(au);
  return !!size && size.width > 0 && size.height > 0 && size.width * size.height <= maxPixels;
}

/** The SPS and PPS NAL units of an access unit (start codes included), or null without both. */
export function h264ParameterSets(au: Buffer): Buffer | null {
  const starts = [...nalStarts(au)];
  const parts = starts.flatMap((n, k) => (n.type === 7 || n.type === 8 ? [au.subarray(n.at, k + 1 < starts.length ? starts[k + 1].at : au.length)] : []));
  const types = new Set(starts.filter((n) => n.type === 7 || n.type === 8).map((n) => n.type));
  return types.size === 2 ? Buffer.concat(parts) : null;
}

/**
 * Cuts an Annex B stream into access units at access unit delimiters (NAL type 9). An access
 * unit is complete when the next delimiter arrives, or at end().
 */
export class AccessUnitSplitter {
  #buf: Buffer = Buffer.alloc(0);
  /** Offset in #buf of the current access unit's delimiter, or -1 before the first one. */
  #auStart = -1;
  /** Bytes of #buf already scanned for start codes. */
  #scanned = 0;

  push(chunk: Buffer): Buffer[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    const out: Buffer[] = [];
    // A start code may straddle the previous end: rescan its last 4 bytes.
    for (const n of nalStarts(this.#buf, Math.max(this.#auStart + 1, this.#scanned - 4))) {
      if (n.type !== 9) continue;
      if (this.#auStart >= 0) out.push(Buffer.from(this.#buf.subarray(this.#auStart, n.at)));
      this.#auStart = n.at;
    }
    this.#scanned = this.#buf.length;
    if (this.#auStart > 0) {
      this.#buf = this.#buf.subarray(this.#auStart);
      this.#scanned -= this.#auStart;
      this.#auStart = 0;
    }
    return out;
  }

  /** The last access unit (the stream ended). */
  end(): Buffer | null {
    const rest = this.#auStart >= 0 ? this.#buf.subarray(this.#auStart) : Buffer.alloc(0);
    this.#buf = Buffer.alloc(0);
    this.#auStart = -1;
    this.#scanned = 0;
    return rest.length > 5 && nalTypes(rest).some((t) => t === 1 || t === 5) ? Buffer.from(rest) : null;
  }
}

/**
 * The picture size an access unit's SPS (type 7) declares, cropping applied, or null without an
 * SPS. Written for the per-track recordings, whose container header states the size (browsers
 * send H.264 without telling it otherwise). Follows the SPS syntax of ITU-T H.264 7.3.2.1.1.
 */
export function avcPictureSize(au: Buffer): { width: number; height: number } | null {
  for (const n of nalStarts(au)) {
    if (n.type !== 7) continue;
    const start = n.at + (au[n.at + 2] === 1 ? 4 : 5);
    let end = au.length;
    for (const m of nalStarts(au, start)) {
      end = m.at;
      break;
    }
    try {
      return readSpsSize(unescapeRbsp(au.subarray(start, end)));
    } catch {
      return null;
    }
  }
  return null;
}

/** Removes emulation prevention bytes (00 00 03 → 00 00). */
function unescapeRbsp(b: Buffer): Buffer {
  const out = Buffer.alloc(b.length);
  let o = 0;
  let zeros = 0;
  for (const byte of b) {
    if (zeros >= 2 && byte === 3) {
      zeros = 0;
      continue;
    }
    out[o++] = byte;
    zeros = byte === 0 ? zeros + 1 : 0;
  }
  return out.subarray(0, o);
}

function readSpsSize(rbsp: Buffer): { width: number; height: number } {
  let bit = 0;
  const u = (n: number): number => {
    let v = 0;
    for (let i = 0; i < n; i++, bit++) {
      if (bit >> 3 >= rbsp.length) throw new Error('SPS ends early');
      v = v * 2 + ((rbsp[bit >> 3] >> (7 - (bit & 7))) & 1);
    }
    return v;
  };
  const ue = (): number => {
    let zeros = 0;
    while (u(1) === 0) if (++zeros > 31) throw new Error('bad exp-Golomb code');
    return (1 << zeros) - 1 + u(zeros);
  };
  const se = (): number => {
    const k = ue();
    return k & 1 ? (k + 1) / 2 : -k / 2;
  };
  const profile = u(8);
  u(16); // constraint flags, level
  ue(); // seq_parameter_set_id
  let chroma = 1;
  let separatePlanes = 0;
  if ([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].includes(profile)) {
    chroma = ue();
    if (chroma === 3) separatePlanes = u(1);
    ue(); // bit_depth_luma_minus8
    ue(); // bit_depth_chroma_minus8
    u(1); // qpprime_y_zero_transform_bypass_flag
    if (u(1)) {
      for (let i = 0; i < (chroma !== 3 ? 8 : 12); i++) {
        if (!u(1)) continue;
        let last = 8;
        let next = 8;
        for (let j = 0; j < (i < 6 ? 16 : 64); j++) {
          if (next !== 0) next = (last + se() + 256) % 256;
          last = next === 0 ? last : next;
        }
      }
    }
  }
  ue(); // log2_max_frame_num_minus4
  const pocType = ue();
  if (pocType === 0) ue();
  else if (pocType === 1) {
    u(1);
    se();
    se();
    const cycle = ue();
    for (let i = 0; i < cycle; i++) se();
  }
  ue(); // max_num_ref_frames
  u(1); // gaps_in_frame_num_value_allowed_flag
  const widthMbs = ue() + 1;
  const heightMapUnits = ue() + 1;
  const frameMbsOnly = u(1);
  if (!frameMbsOnly) u(1);
  u(1); // direct_8x8_inference_flag
  let crop = [0, 0, 0, 0];
  if (u(1)) crop = [ue(), ue(), ue(), ue()];
  const arrayType = separatePlanes ? 0 : chroma;
  const cropX = arrayType === 0 ? 1 : arrayType === 3 ? 1 : 2;
  const cropY = (arrayType === 0 ? 1 : arrayType === 1 ? 2 : 1) * (2 - frameMbsOnly);
  const width = widthMbs * 16 - cropX * (crop[0] + crop[1]);
  const height = (2 - frameMbsOnly) * heightMapUnits * 16 - cropY * (crop[2] + crop[3]);
  if (width <= 0 || height <= 0) throw new Error('bad SPS size');
  return { width, height };
}
