/**
 * H.264 Annex B, as x264 writes it with access unit delimiters (`aud=1`): cut a byte stream into
 * access units (one per encoded picture), tell keyframes, and read the codec string. Pure.
 */

/** Offsets of every start code (00 00 01, or 00 00 00 01) in `buf` from `from`, with their NAL type. */
function* nalStarts(buf: Buffer, from = 0): Generator<{ at: number; type: number }> {
  for (let i = from; i + 3 < buf.length; i++) {
    if (buf[i] !== 0 || buf[i + 1] !== 0) continue;
    if (buf[i + 2] === 1) {
      yield { at: i, type: buf[i + 3] & 0x1f };
      i += 2;
    } else if (buf[i + 2] === 0 && buf[i + 3] === 1 && i + 4 < buf.length) {
      yield { at: i, type: buf[i + 4] & 0x1f };
      i += 3;
    }
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
